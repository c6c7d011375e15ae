"""Merging co-partitioned input topics in record-timestamp order.

Reports and case updates arrive on two topics. Within one partition each topic
is ordered, but a consumer may fetch one topic ahead of the other; processing
in fetch order would let an acknowledgement overtake the report it answers.
The merger holds records per partition and releases them in timestamp order:
a record goes out when every other source has a later record waiting, or when
the other sources are caught up (nothing more to fetch) and the record has
waited ``idle`` seconds. This is what Kafka Streams calls max task idle time.

Sources need not all be declared: a source first seen in :meth:`Merger.add` (a
*lane*: one upstream partition of an input topic, in the worker) is merged with the
others by timestamp, ranked by ``rank``, but never waited for when it is empty;
whoever releases says, through ``passed``, whether a lane with nothing held can still
bring an earlier record (the worker asks its forwarding stage how far in time each
lane has forwarded).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Held(Generic[T]):
    timestamp_ms: int
    arrived: float
    item: T


@dataclass(slots=True)
class _Partition(Generic[T]):
    queues: dict[str, deque[_Held[T]]] = field(default_factory=dict)


class Merger(Generic[T]):
    """Per-partition, timestamp-ordered merge of several source topics."""

    def __init__(
        self,
        sources: Sequence[str],
        *,
        idle: float = 0.0,
        rank: Callable[[str], Any] | None = None,
    ) -> None:
        if not sources and rank is None:
            raise ValueError("a merger needs at least one source")
        self.sources = tuple(sources)
        self.idle = idle
        self._rank_of = rank
        """Orders sources on equal timestamps (declared sources: their order)."""
        self._rank: dict[str, Any] = {
            name: (rank(name) if rank is not None else index)
            for index, name in enumerate(self.sources)
        }
        self._lanes: list[str] = []
        """Sources first seen in :meth:`add` (never waited for), in order of appearance."""
        self._partitions: dict[int, _Partition[T]] = {}

    def add(
        self,
        partition: int,
        source: str,
        timestamp_ms: int,
        item: T,
        arrived: float,
        *,
        stray: bool = False,
    ) -> None:
        """Hold ``item`` (from ``source``'s ``partition``) until it may be released.

        A ``stray`` record (a stamp nobody can trust: it will be dead-lettered or
        taken at the stream clock) is merged in its place: at ``timestamp_ms`` or
        the time of the record held before it on its source, whichever is later.
        """
        if source not in self._rank:
            self._rank[source] = (
                self._rank_of(source) if self._rank_of is not None else len(self._rank)
            )
            self._lanes.append(source)
        part = self._partitions.setdefault(partition, _Partition())
        queue = part.queues.setdefault(source, deque())
        if stray and queue and queue[-1].timestamp_ms > timestamp_ms:
            timestamp_ms = queue[-1].timestamp_ms
        queue.append(_Held(timestamp_ms, arrived, item))

    def held(self) -> int:
        """How many records are waiting in all partitions."""
        return sum(len(q) for p in self._partitions.values() for q in p.queues.values())

    def partitions(self) -> tuple[int, ...]:
        """Partitions that have records waiting."""
        return tuple(p for p, part in self._partitions.items() if any(part.queues.values()))

    def release(
        self,
        partition: int,
        *,
        now: float,
        caught_up: Callable[[str, float], bool],
        passed: Callable[[int, float, Set[str]], bool] | None = None,
    ) -> list[T]:
        """Records of ``partition`` that may be processed now, in order.

        ``caught_up(source, arrived)`` says whether ``source`` has nothing more to fetch,
        as known at or after ``arrived`` (when the earliest record came here): an end of
        log older than the record could miss one stamped before it.

        ``passed(timestamp_ms, arrived, waiting)``, when given, must also agree before
        the earliest record (stamped ``timestamp_ms``, held since ``arrived``) goes:
        that no source outside ``waiting`` (those with records held here) can still
        bring one earlier.
        """
        part = self._partitions.get(partition)
        if part is None:
            return []
        out: list[T] = []
        declared = len(self.sources)
        while True:
            best_source: str | None = None
            best: _Held[T] | None = None
            waiting_on: list[str] = []
            for index, source in enumerate((*self.sources, *self._lanes)):
                queue = part.queues.get(source)
                if not queue:
                    if index < declared:
                        waiting_on.append(source)
                    continue
                head = queue[0]
                if best is None or (head.timestamp_ms, self._rank[source]) < (
                    best.timestamp_ms,
                    self._rank[best_source or source],
                ):
                    best, best_source = head, source
            if best is None or best_source is None:
                return out
            if waiting_on and not (
                now - best.arrived >= self.idle
                and all(caught_up(s, best.arrived) for s in waiting_on)
            ):
                return out
            if passed is not None and not passed(
                best.timestamp_ms, best.arrived, {s for s, q in part.queues.items() if q}
            ):
                return out
            part.queues[best_source].popleft()
            out.append(best.item)

    def drop(self, partition: int) -> list[T]:
        """Forget a revoked partition; returns what was held (never processed here)."""
        part = self._partitions.pop(partition, None)
        if part is None:
            return []
        return [held.item for q in part.queues.values() for held in q]
