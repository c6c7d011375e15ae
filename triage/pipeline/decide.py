"""Decisions: a report or an alarm is assessed and routed; an override changes a level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from triage.events.base import Level, QueueName, decision_id_of, evolve, stable_id, trusted
from triage.events.inputs import (
    Answer,
    CaseOverride,
    ContactBlock,
    DeviceAlarm,
    Injuries,
    ReportReceived,
)
from triage.events.outputs import (
    Decision,
    FloorApplied,
    OverrideInfo,
    OverrideRejected,
    QueueAssignment,
)
from triage.pipeline import work_records
from triage.pipeline.deadline_book import assign, next_reassessment
from triage.pipeline.effects import ENGINE_SOURCE, Effects, Refusal
from triage.pipeline.lifecycle import replace_assignment
from triage.pipeline.observations import (
    Decided,
    Merged,
    Overridden,
    OverrideProblem,
    OverrideRejection,
    Reactivated,
    Routed,
)
from triage.pipeline.routing import queues_for
from triage.pipeline.state import RECENT_DECISIONS, Assignment, Incident, VictimState
from triage.routing.units import Unit, UnitDirectory
from triage.scoring.assess import Assessment, Evidence, assess
from triage.scoring.rules import RuleSet

REACTIVATED = "reactivated"
"""The first reason of a queue record whose decision reactivated a dormant case (beside
the factor names, ``floor:<rule>``, ``override:<reason>`` and ``reassessment_due``)."""


def on_report(
    rules: RuleSet,
    units: UnitDirectory,
    state: VictimState | None,
    event: ReportReceived,
    fx: Effects,
) -> VictimState:
    """Assess a report with the victim's history and route it."""
    # The validated indicators' fields, in declaration order (what iterating the model gives).
    answers: dict[str, Answer] = dict(event.indicators.__dict__)
    incident = trusted(
        Incident,
        event_id=event.id,
        time=event.time,
        kind="report",
        yes=tuple(sorted(name for name, answer in answers.items() if answer == "yes")),
    )
    unit, flagged = units.lookup(event.commune)
    occurrence = Occurrence(
        kind="assessment",
        event=event,
        incident=incident,
        answers=answers,
        injuries=event.injuries,
        commune=event.commune,
        unit=unit,
        flagged=flagged,
        complaint_filed=event.complaint_filed,
        alarm=None,
        contact=event.contact,
    )
    return _assess_and_route(rules, state, occurrence, fx)


def on_alarm(
    rules: RuleSet, units: UnitDirectory, state: VictimState | None, event: DeviceAlarm, fx: Effects
) -> VictimState:
    """A device alarm is danger now: assess (the alarm floor applies) and route."""
    commune = event.commune if event.commune is not None else (state.commune if state else None)
    unit, flagged = units.lookup(commune)
    incident = trusted(Incident, event_id=event.id, time=event.time, kind="alarm")
    occurrence = Occurrence(
        kind="alarm",
        event=event,
        incident=incident,
        answers={},
        injuries="unknown",
        commune=commune,
        unit=unit,
        flagged=flagged,
        complaint_filed=False,
        alarm=event.alarm,
        contact=None,
    )
    return _assess_and_route(rules, state, occurrence, fx)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A report or a device alarm, as assessment and routing see it."""

    kind: Literal["assessment", "alarm"]
    event: ReportReceived | DeviceAlarm
    incident: Incident
    answers: Mapping[str, Answer]
    injuries: Injuries
    commune: str | None
    unit: Unit
    flagged: bool
    """The commune is unknown or not in the directory: routed to the fallback unit."""
    complaint_filed: bool
    alarm: str | None
    contact: ContactBlock | None

    @property
    def at(self) -> datetime:
        """When it happened (the event's time)."""
        return self.event.time


def _assess_and_route(
    rules: RuleSet, state: VictimState | None, o: Occurrence, fx: Effects
) -> VictimState:
    if state is None:
        state = trusted(VictimState, victim_ref=o.event.victim_ref)  # validated in the event
    window_start = o.at - rules.history.window
    history = tuple(i for i in state.incidents if i.time >= window_start)
    carried = frozenset(name for i in history for name in i.yes)
    decision_id = decision_id_of(o.event.source, o.event.id, rules.version)
    # A repeated alarm of one episode is assessed as part of it: not another incident.
    repeat = _repeated_alarm(rules, state, o)
    incidents = history if repeat else (*history, o.incident)[-rules.history.max_incidents :]
    result, queues = _assess(rules, state, o, carried, incidents)
    if repeat:
        merged = _merge_alarm(rules, state, o, decision_id, result, queues, len(incidents), fx)
        if merged is not None:
            return merged
        incidents = (*history, o.incident)[-rules.history.max_incidents :]
        result, queues = _assess(rules, state, o, carried, incidents)
    level = result.level
    # A case lives in one primary queue: moving level moves it out of the old one.
    primaries = rules.primary_queues
    assignments = tuple(
        a for a in state.assignments if a.queue not in primaries or a.queue in queues
    )
    routed: list[Assignment] = []
    for queue in queues:
        existing = state.assignment(queue)
        item = assign(
            rules,
            decision_id=decision_id,
            queue=queue,
            level=level,
            area=o.unit.area,
            at=o.at,
            kind="new" if existing is None else "update",
            existing=existing,
        )
        routed.append(item)
        assignments = replace_assignment(assignments, item)
    reassess_at = next_reassessment(rules, level, o.at)
    decision = _decision(
        rules,
        o.event.victim_ref,
        decision_id,
        o.event.id,
        o.event.type,
        o.at,
        o.kind,
        result,
        len(incidents),
        o.unit,
        o.flagged,
        routed,
        reassess_at,
    )
    reasons = result.reasons
    if state.dormant_id is not None:
        # A dormant case reactivated: decided with its history as if it had stayed open
        # (it did: level and incidents were kept), without the work withdrawn then.
        decision = evolve(decision, reactivated_from=state.dormant_id)
        reasons = (REACTIVATED, *reasons)
    fx.outputs.append(decision)
    fx.observe(Decided(level.value, o.kind, unit=o.unit.id, unit_flagged=o.flagged))
    if state.dormant_id is not None:
        fx.observe(Reactivated(level.value, by=o.kind, unit=o.unit.id))
    for item in routed:
        fx.outputs.append(
            work_records.queue_record(
                rules_version=rules.version,
                victim_ref=o.event.victim_ref,
                decision_id=decision_id,
                at=o.at,
                item=item,
                unit=o.unit.id,
                flagged=o.flagged,
                reasons=reasons,
                contact=o.contact,
                kind=item.kind,
            )
        )
        fx.observe(Routed(item.level.value, item.queue, record_kind=item.kind, unit=o.unit.id))
    kept = state.open and state.level == level and state.level_since is not None
    return evolve(
        state,
        incidents=incidents,
        open=True,
        level=level,
        level_since=state.level_since if kept else o.at,
        raised_level=state.raised_level if state.open else None,
        decision_id=decision_id,
        last_total=result.total,
        last_computed=result.computed_level,
        commune=o.commune,
        unit=o.unit.id,
        unit_area=o.unit.area,
        unit_flagged=o.flagged,
        assignments=assignments,
        next_reassessment_at=reassess_at,
        recent_decisions=(*state.recent_decisions, decision_id)[-RECENT_DECISIONS:],
        quiet_reviews=0,
        dormant_id=None,
    )


def _assess(
    rules: RuleSet,
    state: VictimState,
    o: Occurrence,
    carried: frozenset[str],
    incidents: tuple[Incident, ...],
) -> tuple[Assessment, tuple[QueueName, ...]]:
    """The assessment of ``o`` with the victim's history, and the queues it goes to."""
    evidence = Evidence(
        answers=o.answers,
        carried=carried,
        injuries=o.injuries,
        incidents=len(incidents),
        alarm=o.alarm,
        open_level=state.level if state.open else None,
        open_level_stood=o.kind == "assessment" and _level_stood(rules, state, o.at),
        raised_level=state.raised_level if state.open else None,
    )
    result = assess(evidence, rules)
    yes = {c.factor for c in result.contributions if c.answer == "yes"}
    queues = queues_for(rules, result.level, yes, complaint_filed=o.complaint_filed, alarm=o.alarm)
    return result, queues


def _level_stood(rules: RuleSet, state: VictimState, at: datetime) -> bool:
    """Whether the open case's level has stood for at least its re-assessment cadence at
    ``at`` (VioGén re-evaluates each level at that cadence): the earliest a report may
    step it down (the rule set's ``step_down_after_review``)."""
    if not state.open or state.level is None or state.level_since is None:
        return False
    cadence = rules.sla[state.level].reassess.delta
    return cadence is not None and at - state.level_since >= cadence


def _repeated_alarm(rules: RuleSet, state: VictimState, o: Occurrence) -> bool:
    """Whether ``o`` is an alarm within the merge window of the victim's last decided
    alarm, while the case is open (whether it merges also depends on the open work)."""
    window = rules.alarm_merge_window
    if o.alarm is None or window is None or window.delta is None or not state.open:
        return False
    for incident in reversed(state.incidents):
        if incident.kind == "alarm":
            return abs(o.at - incident.time) <= window.delta
    return False


def _merge_alarm(
    rules: RuleSet,
    state: VictimState,
    o: Occurrence,
    decision_id: str,
    result: Assessment,
    queues: tuple[QueueName, ...],
    incidents: int,
    fx: Effects,
) -> VictimState | None:
    """Merge a repeated alarm into the open work, if every queue it would go to holds
    an open item at its level or above; ``None`` if it brings work not open yet.

    The audit log still gets its assessment (a decision marked ``merged_into``, with
    the open items and their deadlines, unchanged); no queue record, no new
    acknowledgement asked, the case's decision and re-assessment date stay.
    """
    items = [state.assignment(queue) for queue in queues]
    open_items = [i for i in items if i is not None and i.level.rank >= result.level.rank]
    if len(open_items) != len(queues):
        return None
    assert state.next_reassessment_at is not None  # an open case has one
    decision = _decision(
        rules,
        o.event.victim_ref,
        decision_id,
        o.event.id,
        o.event.type,
        o.at,
        "alarm",
        result,
        incidents,
        o.unit,
        o.flagged,
        open_items,
        state.next_reassessment_at,
    )
    fx.outputs.append(evolve(decision, merged_into=open_items[0].item_id))
    fx.observe(Merged(open_items[0].level.value, open_items[0].queue, alarm=o.alarm or ""))
    return state


def on_override(
    rules: RuleSet, state: VictimState, event: CaseOverride, fx: Effects
) -> VictimState | Refusal:
    """Apply a professional's override, or reject it with a reason code."""
    if event.decision_id not in state.recent_decisions:
        return Refusal("unknown_decision", "override names a decision this victim does not have")
    current = state.level if state.open else None
    problem = _override_problem(event, current)
    if problem is not None:
        fx.outputs.append(
            trusted(
                OverrideRejected,
                id=stable_id("X", event.source, event.id),
                source=ENGINE_SOURCE,
                time=event.time,
                victim_ref=state.victim_ref,
                source_event_id=event.id,
                reason_code=problem,
                direction=event.direction,
                requested_level=event.new_level,
                current_level=current,
                author=event.responder_ref,
            )
        )
        fx.observe(
            OverrideRejection(event.new_level.value, event.direction, OverrideProblem(problem))
        )
        return state
    assert current is not None
    assert state.unit is not None
    level = event.new_level
    decision_id = decision_id_of(event.source, event.id, rules.version)
    new_queue: QueueName = rules.sla[level].queue
    old_queue = rules.sla[current].queue
    assignments = tuple(a for a in state.assignments if a.queue not in (old_queue, new_queue))
    existing = state.assignment(new_queue)
    if existing is not None and existing.review:
        # A scheduled review open in the new level's queue (a P1 review in high-risk):
        # the override is the professional's fresh look, and replaces it.
        existing = None
    item = assign(
        rules,
        decision_id=decision_id,
        queue=new_queue,
        level=level,
        area=state.unit_area,
        at=event.time,
        kind="override",
        existing=existing,
    )
    assignments = replace_assignment(assignments, item)
    reassess_at = next_reassessment(rules, level, event.time)
    result = Assessment(
        total=state.last_total,
        computed_level=state.last_computed or current,
        level=level,
        contributions=(),
        floors=(trusted(FloorApplied, rule=f"override_{event.direction}", level=level),),
    )
    info = trusted(
        OverrideInfo,
        direction=event.direction,
        previous_level=current,
        reason=event.reason,
        author=event.responder_ref,
        second_reviewer=event.second_reviewer,
    )
    decision = _decision(
        rules,
        state.victim_ref,
        decision_id,
        event.id,
        event.type,
        event.time,
        "override",
        result,
        len(state.incidents),
        None,
        state.unit_flagged,
        [item],
        reassess_at,
        unit_id=state.unit,
    )
    reasons: tuple[str, ...] = (f"override:{event.reason}",)
    if state.dormant_id is not None:
        # An override on a dormant case is a professional's fresh look: it reactivates it.
        decision = evolve(decision, reactivated_from=state.dormant_id)
        fx.observe(Reactivated(level.value, by="override", unit=state.unit))
        reasons = (REACTIVATED, *reasons)
    fx.outputs.append(evolve(decision, override=info))
    fx.outputs.append(
        work_records.queue_record(
            rules_version=rules.version,
            victim_ref=state.victim_ref,
            decision_id=decision_id,
            at=event.time,
            item=item,
            unit=state.unit,
            flagged=state.unit_flagged,
            reasons=reasons,
            contact=None,
            kind="override",
        )
    )
    fx.observe(Overridden(level.value, event.direction, reason=event.reason, unit=state.unit))
    fx.observe(Routed(level.value, new_queue, record_kind="override", unit=state.unit))
    return evolve(
        state,
        level=level,
        level_since=event.time,
        raised_level=level if event.direction == "up" else None,
        decision_id=decision_id,
        assignments=assignments,
        next_reassessment_at=reassess_at,
        recent_decisions=(*state.recent_decisions, decision_id)[-RECENT_DECISIONS:],
        quiet_reviews=0,
        dormant_id=None,
    )


def _override_problem(event: CaseOverride, current: Level | None) -> str | None:
    if current is None:
        return "case_closed"
    if event.direction == "up" and event.new_level.rank <= current.rank:
        return "not_an_upgrade"
    if event.direction == "down":
        if event.new_level.rank >= current.rank:
            return "not_a_downgrade"
        if event.second_reviewer is None:
            return "missing_second_reviewer"
        if event.second_reviewer == event.responder_ref:
            return "second_reviewer_is_author"
    return None


def _decision(
    rules: RuleSet,
    victim_ref: str,
    decision_id: str,
    event_id: str,
    event_type: str,
    at: datetime,
    kind: Literal["assessment", "alarm", "override"],
    result: Assessment,
    incidents: int,
    unit: Unit | None,
    flagged: bool,
    routed: list[Assignment],
    next_reassessment: datetime,
    *,
    unit_id: str | None = None,
) -> Decision:
    unit_name = unit.id if unit is not None else (unit_id or "")
    return trusted(
        Decision,
        id=decision_id,
        source=ENGINE_SOURCE,
        time=at,
        victim_ref=victim_ref,
        source_event_id=event_id,
        source_event_type=event_type,
        kind=kind,
        rules_version=rules.version,
        total=result.total,
        computed_level=result.computed_level,
        level=result.level,
        contributions=result.contributions,
        floors=result.floors,
        incidents_12m=incidents,
        unit=unit_name,
        unit_flagged=flagged,
        queues=tuple(
            trusted(
                QueueAssignment,
                queue=a.queue,
                level=a.level,
                unit=unit_name,
                ack_due=a.ack_due,
                action_due=a.action_due,
            )
            for a in routed
        ),
        next_reassessment_at=next_reassessment,
    )
