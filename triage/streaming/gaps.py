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

A skipped record with nothing after it yet (the last of a burst, a quiet partition) is
found by :class:`TailWatch`: records the broker holds past the expected offset while the
stage has received nothing at all for a few seconds (a busy stage is being fed: its
records may just be buffered) and the worker is not rebalancing or recovering, are read
back the same way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from triage.observability.logging import get_logger

log = get_logger("triage.worker")


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

    def expected(self, topic: str, partition: int) -> int | None:
        """The offset the partition must deliver next (None: nothing known)."""
        expected = self._next.get((topic, partition))
        if expected is None and self._committed is not None:
            expected = self._committed(topic, partition)
        return expected

    def passed(self, topic: str, partition: int, end: int) -> None:
        """Offsets before ``end`` were read back: the next one expected is ``end``."""
        tp = (topic, partition)
        self._next[tp] = max(self._next.get(tp, 0), end)

    def forget(self, tps: Iterable[tuple[str, int]]) -> None:
        """Partitions revoked: what comes after a new assignment starts afresh."""
        for tp in tps:
            self._next.pop(tp, None)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Every topic's partitions numbered ``partitions`` revoked."""
        gone = set(partitions)
        self.forget([tp for tp in self._next if tp[1] in gone])


class TailWatch:
    """Finds records a partition holds past the offset expected while the stage received
    nothing for ``quiet`` seconds: skipped with nothing after them to reveal the gap."""

    def __init__(
        self,
        guard: GapGuard,
        highwater: Callable[[str, int], int | None],
        *,
        quiet: float = 3.0,
        now: float | None = None,
        most: int = 500,
    ) -> None:
        self.guard = guard
        self.most = most
        """Larger gaps are a backlog the consumer has not reached, not a skipped tail."""
        self.quiet = quiet
        self._highwater = highwater
        self._moved: dict[tuple[str, int], float] = {}
        """When each partition last delivered a record, or was first seen behind."""
        self._last = time.monotonic() if now is None else now
        """When the stage last received any record (or started)."""

    def delivered(self, topic: str, partition: int, now: float | None = None) -> None:
        """A record of the partition reached the stage."""
        now = time.monotonic() if now is None else now
        self._last = self._moved[(topic, partition)] = now

    def overdue(
        self, assigned: Iterable[tuple[str, int]], now: float | None = None
    ) -> list[tuple[str, int, int, int]]:
        """``(topic, partition, start, end)`` of each assigned partition whose records
        from ``start`` to ``end`` (the broker's end) have waited ``quiet`` seconds."""
        now = time.monotonic() if now is None else now
        if now - self._last < self.quiet:
            return []  # the stage is being fed: what waits may only be buffered
        found = []
        for topic, partition in assigned:
            tp = (topic, partition)
            high = self._highwater(topic, partition)
            start = self.guard.expected(topic, partition)
            if high is None or start is None or start >= high or high - start > self.most:
                self._moved.pop(tp, None)
                continue
            since = self._moved.setdefault(tp, now)
            if now - since >= self.quiet:
                found.append((topic, partition, start, high))
                self._moved[tp] = now
        return found

    def forget(self, tps: Iterable[tuple[str, int]]) -> None:
        """Partitions revoked."""
        for tp in tps:
            self._moved.pop(tp, None)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Every topic's partitions numbered ``partitions`` revoked."""
        gone = set(partitions)
        self.forget([tp for tp in self._moved if tp[1] in gone])


class ReadBack:
    """One stage's reading back of skipped records: the gap before a consumed record,
    and a partition's tail. Logs ``skipped_records_read_back`` and counts each read."""

    def __init__(
        self,
        fetch: FetchRange,
        guard: GapGuard,
        *,
        stage: str,
        log_end: Callable[[str, int], int | None] | None,
        ready: Callable[[], bool] | None,
        quiet: float,
        metrics: Any = None,
    ) -> None:
        self.fetch = fetch
        self.guard = guard
        self.stage = stage
        self.metrics = metrics
        self._ready = ready
        self.tails = TailWatch(guard, log_end, quiet=quiet) if log_end is not None else None
        self._checked = 0.0

    def delivered(self, topic: str, partition: int) -> None:
        """A record of the partition reached the stage."""
        if self.tails is not None:
            self.tails.delivered(topic, partition)

    async def before(self, topic: str, partition: int, offset: int) -> list[Fetched]:
        """The records skipped before ``offset`` on the partition, read from the broker."""
        gap = self.guard.missing(topic, partition, offset)
        if gap is None:
            return []
        found = await self.fetch(topic, partition, *gap)
        self._report(topic, partition, gap[0], gap[1], len(found), "gap")
        return found

    async def overdue(
        self, assigned: Iterable[tuple[str, int]]
    ) -> list[tuple[str, int, int, int, list[Fetched]]]:
        """Read the overdue tails of ``assigned`` (at most twice a second, only when the
        worker is ready): ``(topic, partition, start, end, records)`` for :meth:`fresh`."""
        if self.tails is None:
            return []
        now = time.monotonic()
        if now - self._checked < 0.5 or (self._ready is not None and not self._ready()):
            return []
        self._checked = now
        return [
            (topic, partition, start, end, await self.fetch(topic, partition, start, end))
            for topic, partition, start, end in self.tails.overdue(assigned, now)
        ]

    def fresh(
        self, topic: str, partition: int, start: int, end: int, found: list[Fetched]
    ) -> list[Fetched]:
        """Of a tail read back, what the stage has not received meanwhile; the partition
        is then expected at ``end``. Called under the stage's lock, which then takes them."""
        expected = self.guard.expected(topic, partition)
        records = [r for r in found if expected is None or r.offset >= expected]
        self._report(topic, partition, start, end, len(records), "tail")
        self.guard.passed(topic, partition, end)
        return records

    def forget(self, tps: Iterable[tuple[str, int]]) -> None:
        """Partitions revoked."""
        gone = list(tps)
        self.guard.forget(gone)
        if self.tails is not None:
            self.tails.forget(gone)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Every topic's partitions numbered ``partitions`` revoked."""
        gone = list(partitions)
        self.guard.forget_partitions(gone)
        if self.tails is not None:
            self.tails.forget_partitions(gone)

    def _report(
        self, topic: str, partition: int, first: int, end: int, records: int, reason: str
    ) -> None:
        log.warning(
            "skipped_records_read_back", topic=topic, partition=partition, first=first,
            end=end, records=records, stage=self.stage, reason=reason,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.skipped_records.inc(records)
