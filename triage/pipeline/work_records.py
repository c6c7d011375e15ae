"""The engine's output records about work: queue records, escalations, dormancy.

One builder per record type, and one id scheme: every id is a
:func:`~triage.events.base.stable_id` of what makes the record unique, so that a
replay gives the same ids.

- queue record ``Q``: its decision and queue; a scheduled re-assessment reuses the
  case's decision, so it adds ``reassessment`` and its due time;
- escalation ``E``: a missed deadline, its item's decision, queue, stage (``review``
  first for a review's deadline) and the deadline; a conflicting resend, the original
  decision, ``conflict``, the resend's source, id, payload digest and differing fields;
- case dormant ``Z``: the case's decision, ``dormant`` and its due time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from triage.events.base import Level, QueueName, stable_id, trusted
from triage.events.inputs import ContactBlock
from triage.events.outputs import CaseDormant, Escalation, QueueRecord
from triage.pipeline.effects import ENGINE_SOURCE
from triage.pipeline.state import Assignment, VictimState

REASSESSMENT_DUE = "reassessment_due"
"""The reason of a scheduled re-assessment's queue record."""

DORMANT_REASON: Literal["no_incident_after_reviews"] = "no_incident_after_reviews"
"""Why a case goes dormant (the only reason so far)."""


def queue_record(
    *,
    rules_version: str,
    victim_ref: str,
    decision_id: str,
    at: datetime,
    item: Assignment,
    unit: str,
    flagged: bool,
    reasons: tuple[str, ...],
    contact: ContactBlock | None,
    kind: Literal["new", "update", "reassessment", "override"],
) -> QueueRecord:
    """The queue record of a decision's work ``item`` (a report, an alarm, an override)."""
    return trusted(
        QueueRecord,
        id=stable_id("Q", decision_id, item.queue),
        source=ENGINE_SOURCE,
        time=at,
        victim_ref=victim_ref,
        decision_id=decision_id,
        kind=kind,
        queue=item.queue,
        level=item.level,
        unit=unit,
        unit_flagged=flagged,
        ack_due=item.ack_due,
        action_due=item.action_due,
        rules_version=rules_version,
        reasons=reasons,
        contact=contact,
        work_item_id=item.item_id,
    )


def review_record(
    *, rules_version: str, state: VictimState, item: Assignment, due: datetime, unit: str
) -> QueueRecord:
    """The queue record of a scheduled re-assessment due at ``due``: the case's decision
    and level (the item may be at a higher one), no contact details."""
    assert state.decision_id is not None
    assert state.level is not None
    return trusted(
        QueueRecord,
        id=stable_id("Q", state.decision_id, item.queue, "reassessment", due.isoformat()),
        source=ENGINE_SOURCE,
        time=due,
        victim_ref=state.victim_ref,
        decision_id=state.decision_id,
        kind="reassessment",
        queue=item.queue,
        level=state.level,
        unit=unit,
        unit_flagged=state.unit_flagged,
        ack_due=item.ack_due,
        action_due=item.action_due,
        rules_version=rules_version,
        reasons=(REASSESSMENT_DUE,),
        work_item_id=item.item_id,
    )


def breach(
    *,
    victim_ref: str,
    item: Assignment,
    unit: str,
    stage: Literal["ack", "action"],
    deadline: datetime,
) -> Escalation:
    """The escalation of ``item``'s missed ``stage`` deadline; a review's deadline is a
    supervisor notice (stage ``review``), not a page."""
    label: Literal["ack", "action", "review"] = "review" if item.review else stage
    parts = ("review", stage) if item.review else (stage,)
    return trusted(
        Escalation,
        id=stable_id("E", item.decision_id, item.queue, *parts, deadline.isoformat()),
        source=ENGINE_SOURCE,
        time=deadline,
        victim_ref=victim_ref,
        decision_id=item.decision_id,
        queue=item.queue,
        level=item.level,
        unit=unit,
        stage=label,
        deadline=deadline,
    )


def conflict(
    *,
    victim_ref: str,
    decision_id: str,
    queue: QueueName,
    level: Level,
    unit: str,
    source: str,
    event_id: str,
    at: datetime,
    payload: bytes,
    fields: Sequence[str],
) -> Escalation:
    """The escalation of a resend under a processed event's ``source`` and ``event_id``
    with other content (``payload``, its digest), due at once (at ``at``)."""
    fields = tuple(fields)
    return trusted(
        Escalation,
        id=stable_id("E", decision_id, "conflict", source, event_id, payload.hex(), *fields),
        source=ENGINE_SOURCE,
        time=at,
        victim_ref=victim_ref,
        decision_id=decision_id,
        queue=queue,
        level=level,
        unit=unit,
        stage="conflict",
        deadline=at,
        source_event_id=event_id,
        fields=fields,
    )


def dormant(*, rules_version: str, state: VictimState, due: datetime, unit: str) -> CaseDormant:
    """The record of ``state``'s open case going dormant at ``due`` (reviews passed
    without a new incident); its open work withdrawn."""
    assert state.decision_id is not None
    assert state.level is not None
    return trusted(
        CaseDormant,
        id=stable_id("Z", state.decision_id, "dormant", due.isoformat()),
        source=ENGINE_SOURCE,
        time=due,
        victim_ref=state.victim_ref,
        decision_id=state.decision_id,
        level=state.level,
        unit=unit,
        reason=DORMANT_REASON,
        reviews=state.quiet_reviews,
        last_incident_at=state.incidents[-1].time if state.incidents else due,
        work_closed=tuple(a.item_id for a in state.assignments),
        rules_version=rules_version,
    )
