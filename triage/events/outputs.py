"""Output records: the decision audit log, queue records, escalations, dead letters.

None of these carries personal data except :attr:`QueueRecord.contact`, which
exists for the responders who must reach the victim.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from triage.events.base import (
    DecisionId,
    EventModel,
    Level,
    QueueName,
    ResponderRef,
    UtcDatetime,
    VictimRef,
)
from triage.events.inputs import Answer, ContactBlock, OverrideReason


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contribution(_Part):
    """One factor's part in a score: what was answered, where from, how many points."""

    factor: str
    answer: Answer | str
    points: int
    source: Literal["report", "history", "event"]


class FloorApplied(_Part):
    """A rule that set a minimum level regardless of the total."""

    rule: str
    level: Level


class QueueAssignment(_Part):
    """A queue the case was routed to, with its deadlines."""

    queue: QueueName
    level: Level
    unit: str
    ack_due: UtcDatetime
    action_due: UtcDatetime


class OverrideInfo(_Part):
    """Who changed the level by hand, in which direction, and why (a reason code)."""

    direction: Literal["up", "down"]
    previous_level: Level
    reason: OverrideReason
    author: ResponderRef
    second_reviewer: ResponderRef | None


class Decision(EventModel):
    """The audit record of one assessment: every factor, every floor, every queue."""

    type: Literal["triage.decision"] = "triage.decision"
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    source_event_id: str
    source_event_type: str
    kind: Literal["assessment", "alarm", "override"]
    rules_version: str
    total: int
    computed_level: Level
    level: Level
    contributions: tuple[Contribution, ...]
    floors: tuple[FloorApplied, ...]
    incidents_12m: int
    unit: str
    unit_flagged: bool
    queues: tuple[QueueAssignment, ...]
    next_reassessment_at: UtcDatetime
    override: OverrideInfo | None = None
    merged_into: DecisionId | None = None
    """Set on a repeated device alarm merged into open work (the rule set's
    ``alarm_merge_window``): the work item it joined. No queue record follows it;
    ``queues`` lists the open work with its deadlines, unchanged."""
    reactivated_from: str | None = None
    """Set on the decision that ends a dormant period (a new report or alarm, or an
    override, for a case made dormant by the rule set's ``dormant_after_reviews``): the
    id of the :class:`CaseDormant` record it ends. The case is decided with its full
    history, as if it had stayed open; its queue records carry the reason
    ``reactivated``."""


class CaseDormant(EventModel):
    """An open case made dormant: ``reviews`` scheduled re-assessments in a row, at its
    level, passed without a new report or alarm (reason ``no_incident_after_reviews``,
    the rule set's ``dormant_after_reviews``; VioGén deactivates such cases).

    No more re-assessments fall due; the open work items ``work_closed`` (their ids)
    are withdrawn, with no deadline left. The case is not closed: its history stays,
    and a new report or alarm reactivates it (its decision names this record in
    ``reactivated_from``). Published on the decisions topic. No personal data.
    """

    type: Literal["triage.case_dormant"] = "triage.case_dormant"
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    decision_id: DecisionId
    """The case's current decision (the one its last work named)."""
    level: Level
    unit: str
    reason: Literal["no_incident_after_reviews"]
    reviews: int
    """Scheduled re-assessments since the last report or alarm (or override)."""
    last_incident_at: UtcDatetime
    """When the victim's last report or alarm happened."""
    work_closed: tuple[DecisionId, ...]
    """The work items withdrawn (their ``work_item_id``), oldest first."""
    rules_version: str


class QueueRecord(EventModel):
    """Work for a protection queue. The only record that may carry contact details.

    A victim has at most one open work item per queue: ``kind`` ``new`` opens one,
    ``update`` brings new information to it (a later report or alarm: the level may
    rise, deadlines only tighten). ``work_item_id`` is the same on every record of an
    item (the decision that opened it); ``decision_id`` is this record's decision, the
    one an acknowledgement must name.
    """

    type: Literal["triage.queue_record"] = "triage.queue_record"
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    decision_id: DecisionId
    kind: Literal["new", "update", "reassessment", "override"]
    queue: QueueName
    level: Level
    unit: str
    unit_flagged: bool
    ack_due: UtcDatetime
    action_due: UtcDatetime
    rules_version: str
    reasons: tuple[str, ...]
    contact: ContactBlock | None = None
    work_item_id: DecisionId | None = None
    """The work item this record opens or updates (absent in records written before)."""


class Escalation(EventModel):
    """Something a supervisor must look at: a deadline passed without the expected
    lifecycle event (stage ``ack`` or ``action``; ``review`` when it is a deadline of a
    scheduled re-assessment, a notice rather than danger now), or a conflicting resend (stage
    ``conflict``): an event under the source and id of one already processed, with
    other content. The resend is not decided (its decision id is taken); ``fields``
    names what differs, as far as the victim's state can tell (field names, never
    values: ``indicators.<name>`` for a ``yes`` answer gained or lost, ``commune``,
    ``type``; ``payload`` when what differs is something the state does not
    keep), ``decision_id`` is the original event's decision (when the victim still
    remembers it, else the case's current one), and ``deadline`` is the resend's
    time: it is due at once.
    """

    type: Literal["triage.escalation"] = "triage.escalation"
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    decision_id: DecisionId
    queue: QueueName
    level: Level
    unit: str
    stage: Literal["ack", "action", "conflict", "review"]
    deadline: UtcDatetime
    source_event_id: str | None = None
    """Stage ``conflict``: the id shared by the original event and its resend."""
    fields: tuple[str, ...] = ()
    """Stage ``conflict``: the names of the fields that differ (never their values)."""


class OverrideRejected(EventModel):
    """An override that broke the rules (e.g. a downgrade without a second reviewer)."""

    type: Literal["triage.override_rejected"] = "triage.override_rejected"
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    source_event_id: str
    reason_code: str
    direction: Literal["up", "down"]
    requested_level: Level
    current_level: Level | None
    author: ResponderRef


class HeaderSummary(_Part):
    """One header of a dead-lettered record: its name (masked unless a plain protocol
    token) and the size of its value in bytes. Never the value."""

    name: str
    size: int


class DeadLetter(EventModel):
    """A record that could not be used, with its original bytes (or their head) so
    that nothing is lost.

    ``key_b64`` and ``value_b64`` hold the record's key and value, cut to a bounded
    head when they are large (empty in a minimal dead letter, sent when the full one
    was refused); the size and SHA-256 fields describe the whole original parts, so
    the record at its source coordinates can be checked against them. The optional
    fields are absent from dead letters written before they existed.
    """

    type: Literal["triage.dead_letter"] = "triage.dead_letter"
    schema_version: Literal[1] = 1
    reason: str
    detail: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    key_b64: str | None
    value_b64: str
    key_size: int | None = None
    key_sha256: str | None = None
    value_size: int | None = None
    value_sha256: str | None = None
    header_count: int | None = None
    headers: tuple[HeaderSummary, ...] | None = None


OutputEvent = Decision | QueueRecord | Escalation | OverrideRejected | DeadLetter | CaseDormant
"""Any record the pipeline produces."""

__all__ = [
    "CaseDormant",
    "Contribution",
    "DeadLetter",
    "Decision",
    "DecisionId",
    "Escalation",
    "FloorApplied",
    "HeaderSummary",
    "OutputEvent",
    "OverrideInfo",
    "OverrideRejected",
    "QueueAssignment",
    "QueueRecord",
]
