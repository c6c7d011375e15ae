"""The read model's projection: one consumed record in, row changes out. Pure.

Only what the console shows is kept. A queue record's contact block is never
projected; neither are free-text fields (the input models have none but the
contact block). Every change is keyed so that applying it twice is harmless: the
read model can be rebuilt from the topics at any time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from triage.events.inputs import (
    CaseAcknowledged,
    CaseActionTaken,
    CaseClosed,
    CaseOverride,
    ProtectionGranted,
)
from triage.events.outputs import (
    CaseDormant,
    Decision,
    Escalation,
    OverrideRejected,
    QueueRecord,
)
from triage.topics import Topics

TopicRole = Literal["decisions", "queue", "updates"]


def case_key(secret: bytes, victim_ref: str) -> str:
    """The opaque key of a victim's case in URLs: stable across rebuilds, meaningless
    without the console's secret."""
    return hmac.new(secret, victim_ref.encode(), hashlib.sha256).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class CaseSeen:
    """A case exists (first record about a victim), or its level changed."""

    case_key: str
    victim_ref: str
    time: datetime
    level: str | None = None
    decision_id: str | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class WorkUpserted:
    """An open work item opened or updated by a queue record."""

    work_item_id: str
    case_key: str
    decision_id: str
    queue: str
    unit: str
    level: str
    kind: str
    ack_due: datetime
    action_due: datetime
    time: datetime


@dataclass(frozen=True, slots=True)
class WorkAnswered:
    """A responder acknowledged or acted on the work that named ``decision_id``."""

    decision_id: str
    queue: str
    stage: Literal["ack", "action"]
    time: datetime


@dataclass(frozen=True, slots=True)
class WorkWithdrawn:
    """Work items withdrawn (the case went dormant)."""

    work_item_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WorkMoved:
    """An override moved the case to another level's queue: its work in ``queue`` (the
    previous level's) opened up to ``time`` is no longer waited on by the pipeline."""

    case_key: str
    queue: str
    time: datetime


@dataclass(frozen=True, slots=True)
class CaseClosedAt:
    """The case was closed: its work opened before ``time`` is done."""

    case_key: str
    time: datetime


@dataclass(frozen=True, slots=True)
class EscalationRaised:
    """A supervisor's item: a missed deadline or a conflicting resend."""

    escalation_id: str
    case_key: str
    decision_id: str
    queue: str
    unit: str
    level: str
    stage: str
    deadline: datetime
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OverrideRefused:
    """The pipeline rejected an override (for the supervisor view and its author)."""

    record_id: str
    case_key: str
    source_event_id: str
    reason_code: str
    direction: str
    requested_level: str
    author: str
    time: datetime


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a case's history: a decision, an update, an escalation, a refusal.

    ``detail`` holds codes and numbers only (factor names, answers, points, levels,
    deadlines), never free text.
    """

    entry_id: str
    case_key: str
    time: datetime
    kind: str
    source_event_id: str | None
    detail: dict[str, Any]


Change = (
    CaseSeen
    | WorkUpserted
    | WorkAnswered
    | WorkWithdrawn
    | WorkMoved
    | CaseClosedAt
    | EscalationRaised
    | OverrideRefused
    | TimelineEntry
)


def role_of(topic: str, topics: Topics) -> TopicRole | None:
    """Which kind of topic the console reads ``topic`` as (None: not one of ours)."""
    if topic == topics.decisions:
        return "decisions"
    if topic == topics.updates:
        return "updates"
    if topic in topics.queues:
        return "queue"
    return None


_UPDATES: dict[str, Any] = {
    "case.acknowledged": CaseAcknowledged,
    "case.action_taken": CaseActionTaken,
    "case.protection_granted": ProtectionGranted,
    "case.closed": CaseClosed,
    "case.override": CaseOverride,
}
_OUTPUTS: dict[str, Any] = {
    "triage.decision": Decision,
    "triage.override_rejected": OverrideRejected,
    "triage.case_dormant": CaseDormant,
    "triage.queue_record": QueueRecord,
    "triage.escalation": Escalation,
}


def project(
    role: TopicRole,
    value: bytes,
    secret: bytes,
    level_queues: Mapping[str, str] | None = None,
) -> list[Change]:
    """The row changes of one record; an unreadable or foreign record changes nothing
    (the worker dead-letters bad input; the console only shows what it can read).

    ``level_queues`` (level → its queue, from the rule set the workers run) lets an
    override's decision withdraw the work in the previous level's queue, as the pipeline
    does; without it that work stays listed until answered."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict):
        return []
    kind = body.get("type")
    models = _UPDATES if role == "updates" else _OUTPUTS
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        return []
    try:
        event = model.model_validate(body)
    except ValidationError:
        return []
    key = case_key(secret, event.victim_ref)
    changes = _changes(event, key)
    if isinstance(event, Decision) and event.override is not None and level_queues:
        old = level_queues.get(event.override.previous_level.value)
        if old is not None and old not in {q.queue for q in event.queues}:
            changes.append(WorkMoved(key, old, event.time))
    return changes


def _changes(event: Any, key: str) -> list[Change]:
    match event:
        case Decision():
            return [
                CaseSeen(
                    key, event.victim_ref, event.time, event.level.value, event.id, event.unit
                ),
                TimelineEntry(
                    event.id, key, event.time, "decision", event.source_event_id, explain(event)
                ),
            ]
        case QueueRecord():
            return [
                CaseSeen(key, event.victim_ref, event.time),
                WorkUpserted(
                    event.work_item_id or event.decision_id,
                    key,
                    event.decision_id,
                    event.queue,
                    event.unit,
                    event.level.value,
                    event.kind,
                    event.ack_due,
                    event.action_due,
                    event.time,
                ),
                TimelineEntry(
                    event.id,
                    key,
                    event.time,
                    "queue",
                    None,
                    {
                        "queue": event.queue,
                        "kind": event.kind,
                        "level": event.level.value,
                        "unit": event.unit,
                        "ack_due": event.ack_due.isoformat(),
                        "action_due": event.action_due.isoformat(),
                        "reasons": list(event.reasons),
                    },
                ),
            ]
        case Escalation():
            return [
                CaseSeen(key, event.victim_ref, event.time),
                EscalationRaised(
                    event.id,
                    key,
                    event.decision_id,
                    event.queue,
                    event.unit,
                    event.level.value,
                    event.stage,
                    event.deadline,
                    event.fields,
                ),
                TimelineEntry(
                    event.id,
                    key,
                    event.time,
                    "escalation",
                    None,
                    {
                        "stage": event.stage,
                        "queue": event.queue,
                        "level": event.level.value,
                        "deadline": event.deadline.isoformat(),
                        "fields": list(event.fields),
                    },
                ),
            ]
        case OverrideRejected():
            return [
                CaseSeen(key, event.victim_ref, event.time),
                OverrideRefused(
                    event.id,
                    key,
                    event.source_event_id,
                    event.reason_code,
                    event.direction,
                    event.requested_level.value,
                    event.author,
                    event.time,
                ),
                TimelineEntry(
                    event.id,
                    key,
                    event.time,
                    "override_rejected",
                    event.source_event_id,
                    {
                        "reason_code": event.reason_code,
                        "direction": event.direction,
                        "requested_level": event.requested_level.value,
                        "author": event.author,
                    },
                ),
            ]
        case CaseDormant():
            return [
                CaseSeen(key, event.victim_ref, event.time),
                WorkWithdrawn(event.work_closed),
                TimelineEntry(
                    event.id,
                    key,
                    event.time,
                    "dormant",
                    None,
                    {
                        "level": event.level.value,
                        "reviews": event.reviews,
                    },
                ),
            ]
        case _:
            return _update_changes(event, key)


def _update_changes(event: Any, key: str) -> list[Change]:
    detail: dict[str, Any] = {"type": event.type, "responder": event.responder_ref}
    out: list[Change] = [CaseSeen(key, event.victim_ref, event.time)]
    match event:
        case CaseAcknowledged():
            detail |= {"queue": event.queue, "decision_id": event.decision_id}
            out.append(WorkAnswered(event.decision_id, event.queue, "ack", event.time))
        case CaseActionTaken():
            detail |= {"queue": event.queue, "action": event.action}
            out.append(WorkAnswered(event.decision_id, event.queue, "action", event.time))
        case ProtectionGranted():
            detail |= {"measure": event.measure}
        case CaseClosed():
            detail |= {"outcome": event.outcome}
            out.append(CaseClosedAt(key, event.time))
        case CaseOverride():
            detail |= {
                "direction": event.direction,
                "new_level": event.new_level.value,
                "reason": event.reason,
                "second_reviewer": event.second_reviewer,
            }
    out.append(TimelineEntry(event.id, key, event.time, "update", event.id, detail))
    return out


def explain(decision: Decision) -> dict[str, Any]:
    """A decision's explanation: every factor's answer and points, floors, rules version,
    queues with deadlines, the override if any (codes and numbers only)."""
    return {
        "kind": decision.kind,
        "rules_version": decision.rules_version,
        "total": decision.total,
        "computed_level": decision.computed_level.value,
        "level": decision.level.value,
        "incidents_12m": decision.incidents_12m,
        "unit": decision.unit,
        "unit_flagged": decision.unit_flagged,
        "contributions": [
            {"factor": c.factor, "answer": c.answer, "points": c.points, "source": c.source}
            for c in decision.contributions
        ],
        "floors": [{"rule": f.rule, "level": f.level.value} for f in decision.floors],
        "queues": [
            {
                "queue": q.queue,
                "level": q.level.value,
                "unit": q.unit,
                "ack_due": q.ack_due.isoformat(),
                "action_due": q.action_due.isoformat(),
            }
            for q in decision.queues
        ],
        "next_reassessment_at": decision.next_reassessment_at.isoformat(),
        "override": (
            None
            if decision.override is None
            else {
                "direction": decision.override.direction,
                "previous_level": decision.override.previous_level.value,
                "reason": decision.override.reason,
                "author": decision.override.author,
                "second_reviewer": decision.override.second_reviewer,
            }
        ),
    }
