"""Fencing: what a worker that lost its partitions writes afterwards does not count.

Kafka transactions are not usable on the embedded broker (see DESIGN §6), so the
worker fences itself, with two tokens that the broker's group membership gives:

- **A lease.** The worker may process, move its clock, write states and
  acknowledge inputs only while its last successful group heartbeat is recent
  (well inside the session timeout). A worker frozen by SIGSTOP, a GC pause or
  VM steal finds its lease expired when it wakes, and does nothing until the
  broker has told it whether it is still a member; if it is not, it rejoins,
  and everything it had not finished is dropped (the new owner re-processes
  those records from the committed offsets: repeats, never losses).
- **A generation.** Every record is processed under the group generation that
  assigned its partition. Its state is written, and its input acknowledged,
  only under that same generation. Every state on the changelog carries the
  generation that wrote it (:func:`stamp`), and a table recovery keeps, for
  each victim, the state of the highest generation (:func:`newer`): a write
  that a frozen worker had in flight, landing after the new owner's, is ignored.

Outputs are deterministic (ids and contents are functions of the log), so what
a zombie had in flight when it froze is an exact copy of what the new owner
writes, never new content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")

NO_GENERATION = -1
"""What the consumer reports while it is not a member of the group."""

_MAGIC = b"\x00g"
"""Prefix of a stamped state. A state's JSON starts with ``{``: never confused."""


class Membership(Protocol):
    """What the consumer knows of its group membership."""

    def generation(self) -> int:
        """The current group generation, :data:`NO_GENERATION` when not a member."""
        ...

    def last_heartbeat(self) -> float:
        """Monotonic time at which the last successful heartbeat (or join) was sent."""
        ...


class Lease:
    """Grants the current generation while the membership is fresh, else ``None``.

    ``duration`` must be well under the broker's session timeout: the broker
    keeps a member at least a session timeout after receiving its last heartbeat,
    which was sent at or after :meth:`Membership.last_heartbeat`.
    """

    __slots__ = ("_membership", "_monotonic", "duration")

    def __init__(
        self,
        membership: Membership,
        duration: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._membership = membership
        self.duration = duration
        self._monotonic = monotonic

    def token(self) -> int | None:
        """The generation this worker may write under now, or ``None``."""
        generation = self._membership.generation()
        if generation == NO_GENERATION:
            return None
        if self._monotonic() - self._membership.last_heartbeat() > self.duration:
            return None
        return generation

    def fenced(self) -> bool:
        """True when the broker no longer counts this worker as a member."""
        return self._membership.generation() == NO_GENERATION


def stamp(generation: int, payload: bytes) -> bytes:
    """``payload`` (a state's JSON) stamped with the generation that writes it."""
    return _MAGIC + str(generation).encode() + b"|" + payload


def unstamp(value: bytes) -> tuple[int, bytes]:
    """The generation and payload of a stored state (unstamped: generation -1)."""
    if not value.startswith(_MAGIC):
        return NO_GENERATION, value
    head, _, payload = value[len(_MAGIC) :].partition(b"|")
    return int(head), payload


def newer(current: bytes | None, incoming: bytes | None) -> bool:
    """Whether a changelog record ``incoming`` replaces the stored ``current``.

    A record of a lower generation than the stored state was written by a worker
    that had lost the partition by then: it is ignored. Within a generation the
    changelog's order holds (the later record wins), and deletions always apply.
    """
    if current is None or incoming is None:
        return True
    return unstamp(incoming)[0] >= unstamp(current)[0]


def keep_newest(
    records: Iterable[tuple[bytes, bytes | None, T]],
    stored: Callable[[bytes], bytes | None],
) -> tuple[list[T], int]:
    """Which changelog records of a recovery batch to apply, and how many are stale.

    ``records`` are ``(key, value, item)`` in changelog order; ``stored(key)``
    is what the table already holds. Each record is compared with the newest
    kept one for its key (or the stored one) by :func:`newer`.
    """
    kept: list[T] = []
    latest: dict[bytes, bytes | None] = {}
    stale = 0
    for key, value, item in records:
        current = latest[key] if key in latest else stored(key)
        if newer(current, value):
            latest[key] = value
            kept.append(item)
        else:
            stale += 1
    return kept, stale
