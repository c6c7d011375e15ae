"""The stall watch: a worker that has records waiting and processes none leaves.

Seen once on the embedded broker under load: after a rebalance the consumer
stopped fetching its partitions while the worker stayed up, idle, forever. A
stuck worker holds its partitions; a worker that exits is restarted by its
supervisor and resumes from the committed offsets (outputs are delivered and
states sealed before any offset is committed, so nothing is lost or doubled
beyond exact copies). The rule is deliberately blunt: nothing processed at all
for ``timeout`` seconds while an assigned input partition has uncommitted
records on the broker, outside rebalances and table recovery. A worker that
keeps processing other partitions is judged partition by partition too: one
whose committed offset has not moved for ``timeout`` seconds while records
wait past it is a frozen partition, and the worker leaves as well (its
next owner resumes it). :meth:`StallWatch.frozen` counts the partitions
stuck for a third of that, for the gauge the alert reads before the exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

EXIT_STALLED = 75
"""The worker's exit status after the watch tripped (EX_TEMPFAIL: try again)."""

EXIT_BROKER_INCONSISTENT = 78
"""The worker's exit status when the broker disagrees with what it must hold (EX_CONFIG):
a topic missing, a partition count other than ``TRIAGE_PARTITIONS``, a log shorter than
what was committed or read (a broker restarted empty). Restarting does not help until
someone fixes the topics or the settings (:mod:`triage.streaming.consistency`)."""


@dataclass(slots=True)
class StallWatch:
    """Decides, from periodic observations, when a worker is stalled."""

    timeout: float
    tripped: bool = False
    _since: float | None = field(default=None, repr=False)
    _processed: int = field(default=-1, repr=False)
    _stuck: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict, repr=False)
    """Per partition with records waiting: its committed offset, and since when."""
    _last: float = field(default=0.0, repr=False)

    def observe(
        self,
        now: float,
        processed: int,
        waiting: Mapping[tuple[str, int], int],
        *,
        busy: bool,
        committed: Mapping[tuple[str, int], int] | None = None,
    ) -> bool:
        """Record one observation; True once the worker has been stalled ``timeout`` s.

        ``processed`` is a count that grows with every record handled, ``waiting``
        the uncommitted records of each assigned input partition, ``busy`` whether
        a rebalance or a table recovery is under way, ``committed`` the group's
        committed offset of each partition (when known): a partition whose commit
        stays put for ``timeout`` s with records waiting trips the watch even while
        other partitions make progress.
        """
        self._last = now
        if busy:
            self._stuck.clear()
        elif committed is not None:
            stuck: dict[tuple[str, int], tuple[int, float]] = {}
            for tp, n in waiting.items():
                if n <= 0:
                    continue
                offset = committed.get(tp, -1)
                previous = self._stuck.get(tp)
                stuck[tp] = previous if previous and previous[0] == offset else (offset, now)
            self._stuck = stuck
            if any(now - since >= self.timeout for _offset, since in stuck.values()):
                self.tripped = True
        if busy or processed != self._processed or not any(n > 0 for n in waiting.values()):
            self._since, self._processed = now, processed
            return self.tripped
        if self._since is None:
            self._since = now
        if now - self._since >= self.timeout:
            self.tripped = True
        return self.tripped

    def frozen(self, now: float | None = None) -> list[tuple[str, int]]:
        """Partitions whose commit has not moved for a third of ``timeout`` while
        records wait past it (the gauge the stall alert reads)."""
        at = self._last if now is None else now
        return sorted(
            tp for tp, (_o, since) in self._stuck.items() if at - since >= self.timeout / 3
        )

    def stuck_for(self, now: float) -> float:
        """Seconds the longest-stuck partition's commit has not moved (0: none)."""
        return max((now - since for _o, since in self._stuck.values()), default=0.0)

    def stalled_for(self, now: float) -> float:
        """Seconds since the last sign of progress (0 before any observation)."""
        return 0.0 if self._since is None else now - self._since
