"""Records the consumer skipped, found by their offsets and read back from the broker.

Around a rebalance Faust 0.15.3 can drop a fetched record before it reaches the agent
(measured: the frozen-worker failover test lost the first record after a partition's
re-assignment, once in about eight runs). Its commit then passes the record, since it
tolerates a gap of one offset at the head of what was acknowledged: the report is lost
for good, without an error.

The topics a worker reads are written by plain producers: offsets follow each other,
except where a transaction marker or compaction left a hole. So each stage knows the
offset it must see next on each partition (the last one received plus one, or since
the assignment the group's commit). A record that arrives beyond it means records were
skipped: they are read directly from the broker (:data:`FetchRange`) and handled first,
in offset order, each with a :class:`Recovered` token that acknowledges it to Faust.
A hole that holds no record costs one read and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Fetched:
    """A record read directly from the broker (what the stages need of a Faust event)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
    """Seconds since the epoch, as Faust gives it."""
    headers: Any


@dataclass(frozen=True, slots=True)
class Recovered:
    """The acknowledgement token of a :class:`Fetched` record: Faust never delivered it,
    so acknowledging it tells Faust's commit that its offset is handled."""

    topic: str
    partition: int
    offset: int


FetchRange = Callable[[str, int, int, int], Awaitable[list[Fetched]]]
"""``fetch(topic, partition, start, end)``: the records at offsets ``start`` to ``end``
(excluded), read from the broker."""


class GapGuard:
    """Tells, per partition, which offsets were skipped before a record."""

    def __init__(self, committed: Callable[[str, int], int | None] | None = None) -> None:
        self._committed = committed
        self._next: dict[tuple[str, int], int] = {}

    def missing(self, topic: str, partition: int, offset: int) -> tuple[int, int] | None:
        """The offsets skipped before ``offset`` (start, end excluded), or None.

        A record at or below the expected offset (a re-delivery after a seek back)
        is no gap. With nothing received since the assignment and no commit known,
        nothing can be said.
        """
        tp = (topic, partition)
        expected = self._next.get(tp)
        if expected is None and self._committed is not None:
            expected = self._committed(topic, partition)
        self._next[tp] = max(expected or 0, offset + 1)
        if expected is None or offset <= expected:
            return None
        return expected, offset

    def forget(self, tps: Iterable[tuple[str, int]]) -> None:
        """Partitions revoked: what comes after a new assignment starts afresh."""
        for tp in tps:
            self._next.pop(tp, None)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Every topic's partitions numbered ``partitions`` revoked."""
        gone = set(partitions)
        self.forget([tp for tp in self._next if tp[1] in gone])
