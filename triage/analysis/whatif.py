"""Capacity what-if: the same work, first-in-first-out versus by triage priority.

The work is every queue record an offline replay produced (new cases,
re-assessments, overrides, fan-out referrals). A pool of ``capacity``
interchangeable responders serves it in event time, with the demo's work model
(:mod:`triage.demo.responders`): a responder takes a record, acknowledges it
after :data:`~triage.demo.responders.ACK_HANDLING`, acts after the level's
:data:`~triage.demo.responders.WORK`, and only then takes the next one.

Two policies share that pool and those records:

- ``fifo``: one line, records taken in arrival order (no triage);
- ``priority``: the most urgent level first, then the earliest acknowledgement
  deadline, as the demo's responder teams do.

Time to action is measured from the queue record to the action, as the
engine measures it. Pure: records in, figures out; no clock, no randomness.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from triage.demo.responders import ACK_HANDLING, WORK
from triage.events.base import Level
from triage.events.outputs import QueueRecord
from triage.events.wire import from_millis, to_millis
from triage.replay.summary import percentile

Policy = Literal["fifo", "priority"]
POLICIES: tuple[Policy, ...] = ("fifo", "priority")
LEVELS: tuple[Level, ...] = tuple(Level)


@dataclass(frozen=True, slots=True)
class Job:
    """One queue record as work: when it arrived, how urgent, by when it is due."""

    arrival: float
    """Seconds since the epoch (event time)."""
    level: Level
    ack_due: float
    action_due: float
    seq: int
    """Arrival order among jobs with the same arrival time."""


@dataclass(frozen=True, slots=True)
class Served:
    """What became of a job: seconds from arrival to acknowledgement and to action."""

    level: Level
    ack_seconds: float
    action_seconds: float
    on_time: bool
    """Acted on by the record's action deadline."""


def jobs_from(records: Iterable[QueueRecord]) -> list[Job]:
    """The work of ``records``, in arrival order (ties keep the records' order)."""
    ordered = sorted(enumerate(records), key=lambda pair: (pair[1].time, pair[0]))
    return [
        Job(
            arrival=to_millis(r.time) / 1000,
            level=r.level,
            ack_due=to_millis(r.ack_due) / 1000,
            action_due=to_millis(r.action_due) / 1000,
            seq=seq,
        )
        for seq, (_, r) in enumerate(ordered)
    ]


def simulate(
    jobs: Sequence[Job],
    capacity: int | None,
    policy: Policy,
    *,
    ack_handling: timedelta = ACK_HANDLING,
    work: Mapping[Level, timedelta] = WORK,
) -> list[Served]:
    """Serve ``jobs`` (in arrival order) with ``capacity`` responders under ``policy``.

    ``capacity=None`` means a responder is always free (nobody waits). Non-preemptive:
    a responder finishes the record in hand before taking the next.
    """
    if capacity is not None and capacity < 1:
        raise ValueError("capacity must be at least 1")
    handling = ack_handling.total_seconds()
    busy = {level: handling + span.total_seconds() for level, span in work.items()}
    served: list[Served] = []
    if capacity is None:
        for job in jobs:
            served.append(_served(job, job.arrival, handling, busy[job.level]))
        return served
    free_at = [float("-inf")] * capacity  # a min-heap: when each responder is next free
    waiting: list[tuple[tuple[float, ...], Job]] = []
    now, i = float("-inf"), 0
    while i < len(jobs) or waiting:
        now = max(now, free_at[0])
        if not waiting:
            now = max(now, jobs[i].arrival)
        while i < len(jobs) and jobs[i].arrival <= now:
            job = jobs[i]
            heapq.heappush(waiting, (_key(job, policy), job))
            i += 1
        _, job = heapq.heappop(waiting)
        heapq.heapreplace(free_at, now + busy[job.level])
        served.append(_served(job, now, handling, busy[job.level]))
    return served


def _key(job: Job, policy: Policy) -> tuple[float, ...]:
    if policy == "fifo":
        return (job.arrival, job.seq)
    return (-job.level.rank, job.ack_due, job.seq)


def _served(job: Job, start: float, handling: float, busy: float) -> Served:
    done = start + busy
    return Served(
        job.level, start + handling - job.arrival, done - job.arrival, done <= job.action_due
    )


@dataclass(frozen=True, slots=True)
class LevelFigures:
    """Time to action for one level under one scenario."""

    records: int
    p50_s: float | None
    p90_s: float | None
    on_time: float | None
    """Share acted on by the action deadline (0–1)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "records": self.records,
            "p50_s": self.p50_s,
            "p90_s": self.p90_s,
            "on_time": self.on_time,
        }


@dataclass(frozen=True, slots=True)
class Scenario:
    """One policy at one capacity (``None``: unlimited)."""

    policy: Policy
    capacity: int | None
    utilisation: float | None
    levels: Mapping[Level, LevelFigures]


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Every scenario over one body of work."""

    records: int
    first: datetime | None
    last: datetime | None
    offered_load: float
    """Responders kept busy on average if nobody ever waited (work ÷ period)."""
    scenarios: tuple[Scenario, ...] = field(default=())

    def scenario(self, policy: Policy, capacity: int | None) -> Scenario:
        """The scenario for ``policy`` at ``capacity``."""
        for s in self.scenarios:
            if s.policy == policy and s.capacity == capacity:
                return s
        raise KeyError((policy, capacity))

    def to_dict(self) -> dict[str, Any]:
        """Plain figures, stable order (for ``--format json``)."""
        return {
            "records": self.records,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "offered_load": round(self.offered_load, 2),
            "scenarios": [
                {
                    "policy": s.policy,
                    "capacity": s.capacity,
                    "utilisation": s.utilisation,
                    "levels": {lv.value: f.to_dict() for lv, f in s.levels.items()},
                }
                for s in self.scenarios
            ],
        }


def figures(served: Iterable[Served]) -> dict[Level, LevelFigures]:
    """Per-level time to action (nearest-rank percentiles, as the run summary)."""
    times: dict[Level, list[float]] = {lv: [] for lv in LEVELS}
    on_time: dict[Level, int] = dict.fromkeys(LEVELS, 0)
    for s in served:
        times[s.level].append(s.action_seconds)
        on_time[s.level] += s.on_time
    return {
        lv: LevelFigures(
            records=len(times[lv]),
            p50_s=percentile(times[lv], 50),
            p90_s=percentile(times[lv], 90),
            on_time=on_time[lv] / len(times[lv]) if times[lv] else None,
        )
        for lv in LEVELS
    }


def what_if(records: Iterable[QueueRecord], capacities: Sequence[int | None]) -> WhatIf:
    """FIFO and priority at every capacity in ``capacities`` over the same records."""
    jobs = jobs_from(records)
    handling = ACK_HANDLING.total_seconds()
    work = sum(handling + WORK[job.level].total_seconds() for job in jobs)
    span = (jobs[-1].arrival - jobs[0].arrival) if jobs else 0.0
    offered = work / span if span > 0 else 0.0
    scenarios = []
    for capacity in capacities:
        for policy in POLICIES:
            served = simulate(jobs, capacity, policy)
            use = offered / capacity if capacity else None
            scenarios.append(Scenario(policy, capacity, use, figures(served)))
    first = _when(jobs[0].arrival) if jobs else None
    last = _when(jobs[-1].arrival) if jobs else None
    return WhatIf(len(jobs), first, last, offered, tuple(scenarios))


def _when(seconds: float) -> datetime:
    return from_millis(round(seconds * 1000))
