"""Routing: level and evidence → queues, each with its unit and deadlines."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from triage.events.base import Level, QueueName, trusted
from triage.pipeline.deadlines import add_span
from triage.pipeline.state import Assignment
from triage.scoring.rules import RuleSet


def queues_for(
    rules: RuleSet,
    level: Level,
    yes: Iterable[str],
    *,
    complaint_filed: bool = False,
    alarm: str | None = None,
) -> tuple[QueueName, ...]:
    """The primary queue of ``level`` then every fan-out queue whose condition holds."""
    yes = yes if isinstance(yes, set | frozenset) else frozenset(yes)
    queues: list[QueueName] = [rules.sla[level].queue]
    for fan in rules.fanout:
        hit = (
            not yes.isdisjoint(fan.any_indicators)
            or (fan.complaint_filed and complaint_filed)
            or (alarm is not None and alarm in fan.alarms)
        )
        if hit and fan.queue not in queues:
            queues.append(fan.queue)
    return tuple(queues)


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
