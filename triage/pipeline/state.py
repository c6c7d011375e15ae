"""Per-victim state: bounded history, the open case, and its assignments.

Immutable (frozen pydantic) so that the engine is a pure function; it also
serialises to JSON for the worker's table and changelog.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from triage.events.base import DecisionId, Level, QueueName, UtcDatetime, VictimRef
from triage.pipeline.ingest import RawRecord

RECENT_DECISIONS = 16
"""How many of its own decision ids a victim remembers (for late acknowledgements)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Incident(_Frozen):
    """A report or an alarm, kept for the history window."""

    event_id: str
    time: UtcDatetime
    kind: Literal["report", "alarm"]
    yes: tuple[str, ...] = ()


class Assignment(_Frozen):
    """An open work item in a queue: who must acknowledge and act, by when.

    A victim has at most one per queue. New information updates it: ``decision_id``
    becomes the latest decision (an acknowledgement must name it), ``work_item_id``
    stays the decision that opened it.
    """

    decision_id: DecisionId
    queue: QueueName
    level: Level
    kind: Literal["new", "update", "reassessment", "override"]
    routed_at: UtcDatetime
    ack_due: UtcDatetime
    action_due: UtcDatetime
    acked_at: UtcDatetime | None = None
    ack_escalated: bool = False
    action_escalated: bool = False
    work_item_id: DecisionId | None = None
    """The decision that opened this work item (``None`` in states written before work
    items: then it is :attr:`decision_id`); see :attr:`item_id`."""
    review: bool = False
    """A scheduled re-assessment under the review deadlines of its level (the rule
    set's ``review_ack``/``review_action``): a missed deadline escalates with stage
    ``review``, not ``ack``/``action``. New information on the item (a report, an
    alarm, an override) makes it ordinary work again."""

    @property
    def item_id(self) -> str:
        """The work item's stable id: the decision that opened it."""
        return self.work_item_id or self.decision_id


class Waiting(_Frozen):
    """A case update that named a case this victim does not have yet, held for its grace
    period (the rule set's ``update_grace``) in case the case is on its way.

    The record is kept as consumed (its bytes are at most ingestion's 64 KiB), so that,
    if the case never comes, its dead letter is the one it would have had at once.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    due: UtcDatetime
    reason: str
    """The refusal it would have had at once (``unknown_case`` or ``unknown_decision``)."""
    detail: str = ""
    topic: str
    key: bytes | None
    value: bytes
    timestamp: UtcDatetime
    partition: int | None = None
    offset: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def holding(cls, record: RawRecord, *, due: datetime, reason: str, detail: str) -> Waiting:
        """``record`` held until ``due``, with the refusal it would have had at once."""
        return cls(
            due=due,
            reason=reason,
            detail=detail,
            topic=record.topic,
            key=record.key,
            value=record.value,
            timestamp=record.timestamp,
            partition=record.partition,
            offset=record.offset,
            headers=record.headers,
        )

    def record(self) -> RawRecord:
        """The record this update came in, as consumed."""
        return RawRecord(
            topic=self.topic,
            key=self.key,
            value=self.value,
            timestamp=self.timestamp,
            partition=self.partition,
            offset=self.offset,
            headers=self.headers,
        )


class VictimState(_Frozen):
    """Everything the pipeline knows about one victim. Keyed by ``victim_ref``."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    victim_ref: VictimRef
    incidents: tuple[Incident, ...] = ()
    open: bool = False
    level: Level | None = None
    level_since: UtcDatetime | None = None
    """When the open case reached :attr:`level` (a decision that changed it, or opened the
    case). ``None`` in states written before urgency-1.4.0: then the next decision starts
    the count, and until then a report does not step the level down."""
    raised_level: Level | None = None
    decision_id: DecisionId | None = None
    last_total: int = 0
    last_computed: Level | None = None
    commune: str | None = None
    unit: str | None = None
    unit_area: Literal["urban", "rural"] = "rural"
    unit_flagged: bool = False
    assignments: tuple[Assignment, ...] = ()
    next_reassessment_at: UtcDatetime | None = None
    quiet_reviews: int = 0
    """Scheduled re-assessments since the last report, alarm or override (see the rule
    set's ``dormant_after_reviews``)."""
    dormant_id: str | None = None
    """Set while the open case is dormant: the id of its ``triage.case_dormant`` record.
    A dormant case keeps its level and history but has no re-assessment and no work;
    a new report, alarm or override reactivates it."""
    protections: tuple[str, ...] = ()
    recent_decisions: tuple[str, ...] = ()
    seen_ids: tuple[str, ...] = ()
    """Legacy: the last 256 event keys, as states written before :attr:`processed` hold
    them. The engine moves them into :attr:`processed` the first time it steps such a
    state; it is empty afterwards."""
    processed: bytes = b""
    """Every event this victim has processed, packed (see :mod:`triage.pipeline.processed`):
    a redelivery, however late, is recognised and not decided a second time."""
    forgotten_before: UtcDatetime | None = None
    """Set once :attr:`processed` overflowed: events dated before it may have been
    forgotten, so one of them that is not remembered cannot be told from a redelivery."""
    processed_format: Literal[1, 2] = 2
    """Layout of :attr:`processed`: 2, 16-byte entries with a payload digest; 1, the
    12-byte entries of states written before (loaded as 1 when the field is absent;
    the engine upgrades them the first time it steps such a state)."""

    waiting: tuple[Waiting, ...] = ()
    """Case updates received before their case, oldest first (see :class:`Waiting`)."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_processed(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("processed") and "processed_format" not in data:
            return {**data, "processed_format": 1}
        return data

    def assignment(self, queue: str) -> Assignment | None:
        """The open assignment in ``queue``, if any."""
        for item in self.assignments:
            if item.queue == queue:
                return item
        return None
