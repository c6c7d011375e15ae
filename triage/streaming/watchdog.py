"""The stall watch: a worker that has records waiting and processes none leaves.

Seen once on the embedded broker under load: after a rebalance the consumer
stopped fetching its partitions while the worker stayed up, idle, forever. A
stuck worker holds its partitions; a worker that exits is restarted by its
supervisor and resumes from the committed offsets (outputs are delivered and
states sealed before any offset is committed, so nothing is lost or doubled
beyond exact copies). The rule is deliberately blunt: nothing processed at all
for ``timeout`` seconds while an assigned input partition has uncommitted
records on the broker, outside rebalances and table recovery.
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

    def observe(
        self, now: float, processed: int, waiting: Mapping[tuple[str, int], int], *, busy: bool
    ) -> bool:
        """Record one observation; True once the worker has been stalled ``timeout`` s.

        ``processed`` is a count that grows with every record handled, ``waiting``
        the uncommitted records of each assigned input partition, ``busy`` whether
        a rebalance or a table recovery is under way.
        """
        if busy or processed != self._processed or not any(n > 0 for n in waiting.values()):
            self._since, self._processed = now, processed
            return self.tripped
        if self._since is None:
            self._since = now
        if now - self._since >= self.timeout:
            self.tripped = True
        return self.tripped

    def stalled_for(self, now: float) -> float:
        """Seconds since the last sign of progress (0 before any observation)."""
        return 0.0 if self._since is None else now - self._since
