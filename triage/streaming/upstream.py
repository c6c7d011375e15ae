"""Where a record read from an internal topic came from (see :mod:`.forward`).

The forwarding stage appends three headers to each record it re-writes; the
stateful stage reads them back here, so that the record is validated under its
input topic's name and a dead letter names its upstream topic, partition and offset.
"""

from __future__ import annotations

from dataclasses import dataclass

from triage.topics import Topics

UPSTREAM_TOPIC = "triage-upstream-topic"
UPSTREAM_PARTITION = "triage-upstream-partition"
UPSTREAM_OFFSET = "triage-upstream-offset"
FORWARD_HEADERS = (UPSTREAM_TOPIC, UPSTREAM_PARTITION, UPSTREAM_OFFSET)
"""Headers the forwarding stage appends, in this order, after the record's own."""


def origin_headers(topic: str, partition: int, offset: int) -> tuple[tuple[str, bytes], ...]:
    """The :data:`FORWARD_HEADERS` naming where a re-published record was read (appended
    after its own headers; :func:`unwrap` reads them back)."""
    return (
        (UPSTREAM_TOPIC, topic.encode()),
        (UPSTREAM_PARTITION, str(partition).encode()),
        (UPSTREAM_OFFSET, str(offset).encode()),
    )


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a record consumed from an internal topic came from, and its own headers."""

    topic: str
    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...]


def unwrap(
    topic: str,
    partition: int,
    offset: int,
    headers: tuple[tuple[str, bytes], ...],
    topics: Topics,
) -> Upstream:
    """The upstream coordinates and own headers of a record read from ``topic``.

    A forward carries them in its last three headers. A record without them (written
    to an internal topic by something else) is taken as it is, under the input
    topic's name so that it is validated and dead-lettered as if read there.
    """
    if len(headers) >= 3 and tuple(name for name, _ in headers[-3:]) == FORWARD_HEADERS:
        source, part, off = (value for _, value in headers[-3:])
        try:
            name = source.decode("utf-8")
            numbers = int(part), int(off)
        except (UnicodeDecodeError, ValueError):
            pass
        else:
            if name in topics.inputs:
                return Upstream(name, numbers[0], numbers[1], headers[:-3])
    return Upstream(topics.upstream_of(topic) or topic, partition, offset, headers)
