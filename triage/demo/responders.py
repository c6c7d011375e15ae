"""Simulated responders with limited capacity, working in event time.

Each queue has a team of a few responders. A team takes its queue records by
priority (P1 first, then the earliest acknowledgement deadline): acknowledges,
then works the case for a time that depends on the level, and only then takes
the next. With more work than people, low levels wait; that is the point.

The simulation never runs ahead of the stream: an acknowledgement or action
is emitted only once the stream clock (the latest queue record seen, or a time
the caller advanced it to) has reached its time, so the worker never sees an
event from the future. Nothing here reads the wall clock or draws a random
number: what the teams do, and when, is a function of the queue records offered
(their times, levels and deadlines) and the times the clock is moved to.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from triage.events.base import Level
from triage.events.inputs import CaseAcknowledged, CaseActionTaken
from triage.events.outputs import QueueRecord

DEFAULT_TEAMS: Mapping[str, int] = {
    "immediate": 3,
    "high-risk": 3,
    "follow-up": 3,
    "standard": 2,
    "child-protection": 3,
    "judicial": 2,
}
"""Responders per queue: deliberately short-staffed for a département-sized week."""

ACK_HANDLING = timedelta(minutes=2)
WORK: Mapping[Level, timedelta] = {
    Level.P1: timedelta(minutes=12),
    Level.P2: timedelta(hours=2),
    Level.P3: timedelta(hours=5),
    Level.P4: timedelta(hours=6),
}
"""Time from acknowledgement to the action (on scene, victim contacted…)."""

_ACTION = {
    "immediate": "on_scene",
    "high-risk": "safety_plan",
    "follow-up": "victim_contacted",
    "standard": "victim_contacted",
    "child-protection": "referral",
    "judicial": "referral",
}


@dataclass(order=True, slots=True)
class _Pending:
    priority: tuple[int, datetime, int]
    record: QueueRecord = field(compare=False)
    arrived: datetime = field(compare=False)
    """When the team learnt of the record: no responder starts on it earlier."""


@dataclass(slots=True)
class Handled:
    """One queue record a responder dealt with, for the summary."""

    queue: str
    level: Level
    ack_seconds: float
    action_seconds: float
    acknowledged: datetime
    """When the acknowledgement is stamped (it may fall after the period the caller plays)."""
    acted: datetime
    """When the action is stamped."""


class ResponderPool:
    """All teams. Feed it queue records; collect the lifecycle events it emits."""

    def __init__(self, teams: Mapping[str, int] = DEFAULT_TEAMS) -> None:
        self._free_at: dict[str, list[datetime]] = {q: [] for q in teams}
        self._size = dict(teams)
        self._pending: dict[str, list[_Pending]] = defaultdict(list)
        self._scheduled: list[tuple[datetime, int, CaseAcknowledged | CaseActionTaken]] = []
        self._seq = itertools.count()
        self.clock: datetime | None = None
        self.handled: list[Handled] = []
        self._seen: set[str] = set()

    def offer(self, record: QueueRecord, seen: datetime | None = None) -> None:
        """A queue record arrived (records of queues without a team are ignored).

        ``seen`` is when the team learns of it, if later than its own time: a
        re-assessment is stamped with its due time but written when the stream clock
        passes it, and no responder starts on it before then.
        """
        if record.queue not in self._size or record.id in self._seen:
            return
        self._seen.add(record.id)
        arrived = record.time if seen is None or seen < record.time else seen
        # Work that could start before this record arrived goes to what was waiting then.
        self.advance(arrived)
        key = (-record.level.rank, record.ack_due, next(self._seq))
        heapq.heappush(self._pending[record.queue], _Pending(key, record, arrived))
        self.advance(arrived)

    def advance(self, now: datetime) -> None:
        """Move the stream clock and let free responders take work."""
        if self.clock is None or now > self.clock:
            self.clock = now
        for queue, pending in self._pending.items():
            free = self._free_at[queue]
            while pending:
                # A responder is free at once while the team is not all busy.
                busy_until = free[0] if len(free) >= self._size[queue] else pending[0].arrived
                start = max(busy_until, pending[0].arrived)
                if start > self.clock:
                    break
                record = heapq.heappop(pending).record
                if len(free) >= self._size[queue]:
                    heapq.heappop(free)
                acked = start + ACK_HANDLING
                done = acked + WORK[record.level]
                heapq.heappush(free, done)
                self._schedule(acked, self._ack(record, acked))
                self._schedule(done, self._action(record, done))
                self.handled.append(
                    Handled(
                        record.queue,
                        record.level,
                        (acked - record.time).total_seconds(),
                        (done - record.time).total_seconds(),
                        acked,
                        done,
                    )
                )

    def due(self, before: datetime | None = None) -> list[CaseAcknowledged | CaseActionTaken]:
        """Lifecycle events whose time the stream clock has reached (and, with ``before``,
        stamped earlier than it), in time order."""
        out = []
        while (event := self.next_due(before)) is not None:
            out.append(event)
        return out

    def next_due(self, before: datetime | None = None) -> CaseAcknowledged | CaseActionTaken | None:
        """The earliest lifecycle event :meth:`due` would return, taken; or None."""
        if not self._scheduled or self.clock is None:
            return None
        when = self._scheduled[0][0]
        if when > self.clock or (before is not None and when >= before):
            return None
        return heapq.heappop(self._scheduled)[2]

    def backlog(self, level: Level | None = None) -> int:
        """Queue records waiting for a free responder (of ``level``, if given)."""
        return sum(
            1
            for pending in self._pending.values()
            for item in pending
            if level is None or item.record.level == level
        )

    def _schedule(self, when: datetime, event: CaseAcknowledged | CaseActionTaken) -> None:
        heapq.heappush(self._scheduled, (when, next(self._seq), event))

    @staticmethod
    def _ack(record: QueueRecord, when: datetime) -> CaseAcknowledged:
        return CaseAcknowledged(id=f"ack-{record.id}", **_answering(record, when))

    @staticmethod
    def _action(record: QueueRecord, when: datetime) -> CaseActionTaken:
        return CaseActionTaken(
            id=f"act-{record.id}", action=_ACTION[record.queue], **_answering(record, when)
        )


def _answering(record: QueueRecord, when: datetime) -> dict[str, Any]:
    """The fields an acknowledgement and an action of ``record`` share."""
    return {
        "source": f"urn:dv:responder:{record.queue}",
        "time": when,
        "victim_ref": record.victim_ref,
        "responder_ref": f"R-{record.queue.upper().replace('-', '')[:10]}",
        "queue": record.queue,
        "decision_id": record.decision_id,
    }
