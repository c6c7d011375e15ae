"""The deadline book: what is due for a victim, when, and what firing it produces.

A victim's deadlines are each open work item's acknowledgement and action (until met
or escalated), the open case's next re-assessment, and the case updates held for
their case (:class:`~triage.pipeline.state.Waiting`: the processor releases those,
they only wake it). The engine asks :func:`fire` to fire what fell due before the
stream clock: a missed deadline escalates, a re-assessment opens a review (or, after
the level's quiet reviews, makes the case dormant). Deadlines are computed here too
(:func:`assign`, :func:`next_reassessment`), from the rule set's SLA table with
:func:`~triage.pipeline.deadlines.add_span`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple, cast

from triage.events.base import Level, QueueName, evolve, trusted
from triage.pipeline import work_records
from triage.pipeline.deadlines import add_span
from triage.pipeline.effects import Effects
from triage.pipeline.lifecycle import replace_assignment
from triage.pipeline.observations import Breached, Dormant, ReassessmentDue, SlaStage
from triage.pipeline.state import Assignment, VictimState
from triage.scoring.rules import RuleSet

Stage = Literal["ack", "action", "reassess"]
"""What falls due: an item's acknowledgement or action, or the case's re-assessment."""

_STAGES: tuple[Stage, ...] = ("ack", "action", "reassess")


class Due(NamedTuple):
    """The next deadline of a victim: when, which, and the queue of its item
    (``supervisor`` for a re-assessment, which has no item yet)."""

    when: datetime
    stage: Stage
    queue: QueueName


def next_due(state: VictimState) -> Due | None:
    """The next deadline to fire: earliest time first, then ack, action, re-assessment,
    then queue; ``None`` if nothing can fall due."""
    best: tuple[datetime, int, str] | None = None
    key: tuple[datetime, int, str]
    for item in state.assignments:
        if item.acked_at is None and not item.ack_escalated:
            key = (item.ack_due, 0, item.queue)
            if best is None or key < best:
                best = key
        if not item.action_escalated:
            key = (item.action_due, 1, item.queue)
            if best is None or key < best:
                best = key
    if state.open and state.next_reassessment_at is not None:
        key = (state.next_reassessment_at, 2, "")
        if best is None or key < best:
            best = key
    if best is None:
        return None
    when, order, queue = best
    return Due(when, _STAGES[order], cast(QueueName, queue or "supervisor"))


def wakeup(state: VictimState) -> datetime | None:
    """When this victim next needs the clock: a deadline, a re-assessment, or the end
    of a held update's grace period."""
    due = next_due(state)
    best = due.when if due is not None else None
    for held in state.waiting:
        if best is None or held.due < best:
            best = held.due
    return best


def next_reassessment(rules: RuleSet, level: Level, at: datetime) -> datetime:
    """When a case decided at ``at`` at ``level`` is next re-assessed."""
    return add_span(at, rules.sla[level].reassess)


def assign(
    rules: RuleSet,
    *,
    decision_id: str,
    queue: QueueName,
    level: Level,
    area: str,
    at: datetime,
    kind: str,
    existing: Assignment | None,
    review: bool = False,
) -> Assignment:
    """The work item in ``queue`` after a decision: a new one, or ``existing`` updated.

    One open work item per victim and queue: new information updates the open one,
    which keeps its id (:attr:`Assignment.item_id`) and takes the new decision id.
    An update never lowers the item's level and never pushes a pending deadline later:
    new information cannot buy time. It asks for a fresh acknowledgement (whoever
    acknowledged the older record has not seen this one); a deadline already missed
    (escalated) is spent, and the new information gets its own.

    ``review``: a scheduled re-assessment, under the level's review deadlines
    (``review_ack``/``review_action``), when the level has them.
    """
    if existing is not None:
        level = level.at_least(existing.level)
    sla = rules.sla[level]
    review = review and sla.review_ack is not None and sla.review_action is not None
    ack_span = sla.ack
    action_span = sla.action_rural if (area == "rural" and sla.action_rural) else sla.action
    if review and sla.review_ack is not None and sla.review_action is not None:
        ack_span, action_span = sla.review_ack, sla.review_action
    ack_due, action_due, routed_at = add_span(at, ack_span), add_span(at, action_span), at
    work_item_id = decision_id
    if existing is not None:
        work_item_id = existing.item_id
        if existing.acked_at is None and not existing.ack_escalated and existing.ack_due < ack_due:
            ack_due, routed_at = existing.ack_due, existing.routed_at
        if not existing.action_escalated and existing.action_due < action_due:
            action_due = existing.action_due
    return trusted(
        Assignment,
        decision_id=decision_id,
        queue=queue,
        level=level,
        kind=kind,
        routed_at=routed_at,
        ack_due=ack_due,
        action_due=action_due,
        work_item_id=work_item_id,
        review=review,
    )


def fire(
    rules: RuleSet, state: VictimState, now: datetime, fx: Effects, *, default_unit: str
) -> VictimState:
    """Fire every deadline of ``state`` due before ``now``, in :func:`next_due` order;
    their records and observations go to ``fx``. ``default_unit``: the unit of a
    victim whose own is not known."""
    while True:
        due = next_due(state)
        if due is None or due.when >= now:
            return state
        if due.stage == "reassess":
            state = _reassess(rules, state, due.when, fx, default_unit)
        else:
            state = _breach(state, due.queue, due.stage, due.when, fx, default_unit)


def _breach(
    state: VictimState,
    queue: str,
    stage: Literal["ack", "action"],
    deadline: datetime,
    fx: Effects,
    default_unit: str,
) -> VictimState:
    item = state.assignment(queue)
    assert item is not None
    escalation = work_records.breach(
        victim_ref=state.victim_ref,
        item=item,
        unit=state.unit or default_unit,
        stage=stage,
        deadline=deadline,
    )
    fx.outputs.append(escalation)
    fx.observe(
        Breached(item.level.value, queue, stage=SlaStage(escalation.stage), unit=state.unit or "")
    )
    flag = {"ack_escalated": True} if stage == "ack" else {"action_escalated": True}
    updated = evolve(item, **flag)
    return evolve(state, assignments=tuple(updated if a is item else a for a in state.assignments))


def _reassess(
    rules: RuleSet, state: VictimState, due: datetime, fx: Effects, default_unit: str
) -> VictimState:
    """A scheduled re-assessment: a review of the case, not new danger. It goes to
    the level's review queue (never the danger-now queue) under the review deadlines
    of the rule set; rule sets without them use the level's queue and deadlines."""
    assert state.level is not None
    assert state.decision_id is not None
    level = state.level
    sla = rules.sla[level]
    limit = sla.dormant_after_reviews
    if limit is not None and state.quiet_reviews >= limit:
        return _dormant(rules, state, due, fx, default_unit)
    queue: QueueName = sla.review_target
    item = assign(
        rules,
        decision_id=state.decision_id,
        queue=queue,
        level=level,
        area=state.unit_area,
        at=due,
        kind="reassessment",
        existing=state.assignment(queue),
        review=sla.reviewed,
    )
    fx.outputs.append(
        work_records.review_record(
            rules_version=rules.version,
            state=state,
            item=item,
            due=due,
            unit=state.unit or default_unit,
        )
    )
    fx.observe(ReassessmentDue(level.value, queue, unit=state.unit or ""))
    assert sla.reassess.delta is not None
    return evolve(
        state,
        assignments=replace_assignment(state.assignments, item),
        next_reassessment_at=add_span(due, sla.reassess),
        quiet_reviews=state.quiet_reviews + 1,
    )


def _dormant(
    rules: RuleSet, state: VictimState, due: datetime, fx: Effects, default_unit: str
) -> VictimState:
    """The level's ``dormant_after_reviews`` reviews passed without a new report or
    alarm: instead of the next one, the case goes dormant. Its work is withdrawn (no
    deadline left), no re-assessment falls due; level and history stay, for the
    report or alarm that reactivates it (see :func:`decide.on_report`)."""
    assert state.level is not None
    record = work_records.dormant(
        rules_version=rules.version, state=state, due=due, unit=state.unit or default_unit
    )
    fx.outputs.append(record)
    fx.observe(Dormant(state.level.value, unit=state.unit or ""))
    return evolve(state, assignments=(), next_reassessment_at=None, dormant_id=record.id)
