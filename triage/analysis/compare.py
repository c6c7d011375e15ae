"""Rule-change impact: one log replayed under two rule sets, compared case by case.

Decisions are matched by victim and source event, never by decision id (ids
include the rule-set version). The log's lifecycle events name decisions made
under the baseline rule set A; before replaying under B they are *retargeted*
to the decision B makes for the same source event (same event, new version in
the id), so that acknowledgements, actions and overrides recorded against A
still reach their case under B. An acknowledgement for a queue B no longer
uses is then ignored by the engine, as it would be live.

Time to action is not read from the log (its responders answered A's queues):
each run's queue records go through the demo's responder capacity model
(:class:`~triage.demo.responders.ResponderPool`) in event time, with the same
teams for both runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from triage.analysis.capture import Run, capture
from triage.demo.responders import ACK_HANDLING, DEFAULT_TEAMS, WORK, ResponderPool
from triage.events.base import QUEUE_NAMES, Level, decision_id_of
from triage.events.inputs import CaseActionTaken
from triage.events.outputs import Decision, QueueRecord
from triage.pipeline.engine import Engine
from triage.replay.records import LogRecord
from triage.replay.summary import percentile

LEVELS = tuple(lv.value for lv in Level)
DECIDING_TYPES = frozenset({"report.received", "device.alarm", "case.override"})
"""Input events that make a decision (its id is derived from theirs)."""
SIZED_OCCUPANCY = 0.8
"""Sized teams carry the baseline's work at this share of their time at most."""

CaseKey = tuple[str, str]
"""(victim reference, source event id): how a decision is matched across runs."""


def retarget(records: Sequence[LogRecord], old_version: str, new_version: str) -> list[LogRecord]:
    """``records`` with every ``decision_id`` made under ``old_version`` renamed to the id
    the engine gives the same source event under ``new_version``."""
    if old_version == new_version:
        return list(records)
    renamed: dict[str, str] = {}
    for record in records:
        body = _object(record.value)
        if body is not None and body.get("type") in DECIDING_TYPES:
            event_id, source = body.get("id"), body.get("source")
            if isinstance(event_id, str) and isinstance(source, str):
                renamed[decision_id_of(source, event_id, old_version)] = decision_id_of(
                    source, event_id, new_version
                )
    out = []
    for record in records:
        body = _object(record.value) if b'"decision_id"' in record.value else None
        target = body.get("decision_id") if body is not None else None
        if body is not None and isinstance(target, str) and target in renamed:
            body["decision_id"] = renamed[target]
            record = replace(record, value=orjson.dumps(body))
        out.append(record)
    return out


def _object(value: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


@dataclass(frozen=True, slots=True)
class CaseChange:
    """One decision whose level or queues differ between the two runs."""

    victim_ref: str
    source_event_id: str
    source_event_type: str
    time: datetime
    level_a: str
    level_b: str
    queues_a: tuple[str, ...]
    queues_b: tuple[str, ...]

    @property
    def direction(self) -> str:
        """``up``, ``down`` or ``same`` (the level; queues may still differ)."""
        rank_a, rank_b = Level(self.level_a).rank, Level(self.level_b).rank
        return "up" if rank_b > rank_a else "down" if rank_b < rank_a else "same"


@dataclass(frozen=True, slots=True)
class ResponseTimes:
    """Time to action for one level under the responder model."""

    records: int
    p50_s: float | None
    p90_s: float | None
    on_time: float | None
    """Share of records acted on by their action deadline (0–1)."""


@dataclass(frozen=True, slots=True)
class OneSided:
    """A decision made in one run only (an override one rule set accepts, the other not)."""

    victim_ref: str
    source_event_id: str
    source_event_type: str
    level: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """Everything ``triage compare`` reports."""

    version_a: str
    version_b: str
    events: int
    decisions_a: int
    decisions_b: int
    changes: tuple[CaseChange, ...]
    only_a: tuple[OneSided, ...]
    only_b: tuple[OneSided, ...]
    matrix: Mapping[tuple[str, str], int]
    load: Mapping[str, tuple[int, int]]
    """Queue records per queue: (A, B)."""
    reassessments: Mapping[str, tuple[int, int]]
    teams: Mapping[str, int]
    response: Mapping[str, tuple[ResponseTimes, ResponseTimes]]

    @property
    def victims_changed(self) -> int:
        """Distinct victims with at least one changed decision."""
        return len({c.victim_ref for c in self.changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain figures for machines (``--format json``); every change is listed."""
        return {
            "rules": {"a": self.version_a, "b": self.version_b},
            "events": self.events,
            "decisions": {"a": self.decisions_a, "b": self.decisions_b},
            "changed": {
                "decisions": len(self.changes),
                "victims": self.victims_changed,
                "by_direction": dict(sorted(Counter(c.direction for c in self.changes).items())),
            },
            "changes": [
                {
                    "victim_ref": c.victim_ref,
                    "source_event_id": c.source_event_id,
                    "source_event_type": c.source_event_type,
                    "time": c.time.isoformat(),
                    "level": [c.level_a, c.level_b],
                    "queues": [list(c.queues_a), list(c.queues_b)],
                }
                for c in self.changes
            ],
            "only_in_a": [_one_sided(d) for d in self.only_a],
            "only_in_b": [_one_sided(d) for d in self.only_b],
            "transitions": {a: {b: self.matrix.get((a, b), 0) for b in LEVELS} for a in LEVELS},
            "queue_records": {q: {"a": a, "b": b} for q, (a, b) in self.load.items()},
            "reassessments": {q: {"a": a, "b": b} for q, (a, b) in self.reassessments.items()},
            "teams": dict(self.teams),
            "time_to_action": {
                lv: {
                    run: {
                        "records": t.records,
                        "p50_s": t.p50_s,
                        "p90_s": t.p90_s,
                        "on_time": t.on_time,
                    }
                    for run, t in zip(("a", "b"), pair, strict=True)
                }
                for lv, pair in self.response.items()
            },
        }


def compare_log(
    records: Sequence[LogRecord],
    engine_a: Engine,
    engine_b: Engine,
    teams: Mapping[str, int] | None = None,
) -> Comparison:
    """Replay ``records`` under both engines and compare (teams sized on A by default)."""
    run_a = capture(records, engine_a)
    moved = retarget(records, engine_a.rules.version, engine_b.rules.version)
    run_b = capture(moved, engine_b)
    return compare_runs(run_a, run_b, teams)


def compare_runs(run_a: Run, run_b: Run, teams: Mapping[str, int] | None = None) -> Comparison:
    """Compare two captured runs of the same log."""
    decided_a = _by_case(run_a.outputs.decisions)
    decided_b = _by_case(run_b.outputs.decisions)
    matrix: Counter[tuple[str, str]] = Counter()
    changes = []
    for key, a in decided_a.items():
        b = decided_b.get(key)
        if b is None:
            continue
        matrix[(a.level.value, b.level.value)] += 1
        queues_a, queues_b = _queues(a), _queues(b)
        if a.level != b.level or queues_a != queues_b:
            changes.append(
                CaseChange(
                    a.victim_ref,
                    a.source_event_id,
                    a.source_event_type,
                    a.time,
                    a.level.value,
                    b.level.value,
                    queues_a,
                    queues_b,
                )
            )
    changes.sort(key=lambda c: (c.victim_ref, c.time, c.source_event_id))
    sized = dict(teams) if teams is not None else sized_teams(run_a.outputs.queue_records)
    return Comparison(
        version_a=run_a.rules_version,
        version_b=run_b.rules_version,
        events=run_a.summary.events,
        decisions_a=len(decided_a),
        decisions_b=len(decided_b),
        changes=tuple(changes),
        only_a=_one_side(decided_a, decided_b),
        only_b=_one_side(decided_b, decided_a),
        matrix=dict(matrix),
        load=_pairs(_count(run_a, None), _count(run_b, None)),
        reassessments=_pairs(_count(run_a, "reassessment"), _count(run_b, "reassessment")),
        teams=sized,
        response=_zip_levels(
            responder_times(run_a.outputs.queue_records, sized),
            responder_times(run_b.outputs.queue_records, sized),
        ),
    )


def _by_case(decisions: Iterable[Decision]) -> dict[CaseKey, Decision]:
    # One decision per source event; a redelivered event makes none.
    return {(d.victim_ref, d.source_event_id): d for d in decisions}


def _one_side(
    mine: Mapping[CaseKey, Decision], other: Mapping[CaseKey, Decision]
) -> tuple[OneSided, ...]:
    return tuple(
        OneSided(d.victim_ref, d.source_event_id, d.source_event_type, d.level.value)
        for key, d in sorted(mine.items())
        if key not in other
    )


def _one_sided(d: OneSided) -> dict[str, str]:
    return {
        "victim_ref": d.victim_ref,
        "source_event_id": d.source_event_id,
        "source_event_type": d.source_event_type,
        "level": d.level,
    }


def _queues(decision: Decision) -> tuple[str, ...]:
    return tuple(sorted(q.queue for q in decision.queues))


def _count(run: Run, kind: str | None) -> Counter[str]:
    return Counter(r.queue for r in run.outputs.queue_records if kind is None or r.kind == kind)


def _pairs(a: Counter[str], b: Counter[str]) -> dict[str, tuple[int, int]]:
    return {q: (a.get(q, 0), b.get(q, 0)) for q in QUEUE_NAMES if a.get(q) or b.get(q)}


def _zip_levels(
    a: Mapping[str, ResponseTimes], b: Mapping[str, ResponseTimes]
) -> dict[str, tuple[ResponseTimes, ResponseTimes]]:
    return {lv: (a[lv], b[lv]) for lv in LEVELS}


def sized_teams(
    records: Sequence[QueueRecord], occupancy: float = SIZED_OCCUPANCY
) -> dict[str, int]:
    """The demo's teams, each grown until it carries ``records`` at ``occupancy`` at most.

    The demo's teams are sized for a week of 250 victims; a year of a whole
    département would leave them months behind, and every figure would only say so.
    """
    if not records:
        return dict(DEFAULT_TEAMS)
    first = min(r.time for r in records)
    last = max(r.time for r in records)
    hours = max((last - first) / timedelta(hours=1), 1.0)
    work: dict[str, float] = {}
    for r in records:
        work[r.queue] = work.get(r.queue, 0.0) + (ACK_HANDLING + WORK[r.level]) / timedelta(hours=1)
    return {
        queue: max(size, math.ceil(work.get(queue, 0.0) / hours / occupancy))
        for queue, size in DEFAULT_TEAMS.items()
    }


def responder_times(
    records: Iterable[QueueRecord], teams: Mapping[str, int]
) -> dict[str, ResponseTimes]:
    """Time to action per level when ``teams`` work through ``records`` in event time."""
    pool = ResponderPool(teams)
    ordered = sorted(records, key=lambda r: r.time)
    for record in ordered:
        pool.offer(record)
    if ordered:
        pool.advance(ordered[-1].time + timedelta(days=36500))  # let every team finish
    acted = {
        event.id.removeprefix("act-"): event.time
        for event in pool.due()
        if isinstance(event, CaseActionTaken)
    }
    times: dict[str, list[float]] = {lv: [] for lv in LEVELS}
    on_time: Counter[str] = Counter()
    for record in ordered:
        done = acted.pop(record.id, None)  # a redelivered record is worked once
        if done is None:
            continue
        times[record.level.value].append((done - record.time).total_seconds())
        on_time[record.level.value] += done <= record.action_due
    return {
        lv: ResponseTimes(
            len(t), percentile(t, 50), percentile(t, 90), on_time[lv] / len(t) if t else None
        )
        for lv, t in times.items()
    }
