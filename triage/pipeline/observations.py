"""Observations: what happened in a step, as typed values for metrics and summaries.

The engine and the processor return them beside their output records. They carry
levels, queues, units and reason codes only, never a victim reference or any
personal data.

Each kind is a frozen dataclass with the fields it means; reason codes are
``StrEnum``s whose values are the metric labels and summary keys, unchanged. Kinds
are told apart in one place, :func:`fold`: metrics, the run summary and the yearly
review are each a :class:`Fold` that overrides the methods of the kinds it counts.
Each class's ``kind`` is its name in logs and tests, not something to branch on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal, assert_never

Direction = Literal["up", "down"]
"""Which way an override moves the level."""


class EventOutcome(StrEnum):
    """What became of a record: the ``outcome`` label of ``triage_events``."""

    APPLIED = "applied"
    DECIDED = "decided"
    MERGED = "merged"
    REJECTED = "rejected"
    """An override rejected, or (``event_type`` ``invalid``) a record ingestion refused:
    one label value for both, as the dashboards have always had it."""
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REFUSED = "refused"
    WAITING = "waiting"
    WATERMARK = "watermark"
    ERROR = "error"


class RefusalReason(StrEnum):
    """Why a record went to the dead-letter topic: ingestion's verdicts
    (:data:`triage.pipeline.ingest.REASONS`), a stale redelivery, a processing error."""

    IMPLAUSIBLE_TIMESTAMP = "implausible_timestamp"
    OVERSIZE = "oversize"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NON_FINITE_NUMBER = "non_finite_number"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    DUPLICATE_KEY = "duplicate_key"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    WRONG_TOPIC = "wrong_topic"
    NAIVE_TIMESTAMP = "naive_timestamp"
    SCHEMA_VIOLATION = "schema_violation"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_CASE = "unknown_case"
    UNKNOWN_DECISION = "unknown_decision"
    CASE_CLOSED = "case_closed"
    STALE_REDELIVERY = "stale_redelivery"
    PROCESSING_ERROR = "processing_error"


class WaitOutcome(StrEnum):
    """What became of an update held for its case: the ``outcome`` of
    ``triage_updates_waiting``."""

    WAITING = "waiting"
    APPLIED = "applied"
    EXPIRED = "expired"


class IgnoredReason(StrEnum):
    """Why an update changed nothing (see :mod:`triage.pipeline.lifecycle`)."""

    NO_OPEN_ASSIGNMENT = "no_open_assignment"
    STALE_DECISION = "stale_decision"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"
    ALREADY_CLOSED = "already_closed"


class OverrideProblem(StrEnum):
    """Why an override was rejected (the ``reason_code`` of its output record)."""

    CASE_CLOSED = "case_closed"
    NOT_AN_UPGRADE = "not_an_upgrade"
    NOT_A_DOWNGRADE = "not_a_downgrade"
    MISSING_SECOND_REVIEWER = "missing_second_reviewer"
    SECOND_REVIEWER_IS_AUTHOR = "second_reviewer_is_author"


class SlaStage(StrEnum):
    """Which deadline was missed; ``review``: either deadline of a scheduled review."""

    ACK = "ack"
    ACTION = "action"
    REVIEW = "review"


class ProcessingStage(StrEnum):
    """Where processing raised: ingestion, the engine on a record, or a timer."""

    INGEST = "ingest"
    ENGINE = "engine"
    TIMER = "timer"


# Frozen and slotted: several are built per event, so no per-instance dict.


@dataclass(frozen=True, slots=True)
class EventHandled:
    """A record was handled (one per record fed, whatever became of it)."""

    kind: ClassVar[str] = "event"
    event_type: str
    outcome: EventOutcome
    channel: str = ""


@dataclass(frozen=True, slots=True)
class Refused:
    """A record went to the dead-letter topic."""

    kind: ClassVar[str] = "refused"
    reason: RefusalReason


@dataclass(frozen=True, slots=True)
class Decided:
    """A report or an alarm was decided; ``unit_flagged`` when its unit was not known."""

    kind: ClassVar[str] = "decided"
    level: str
    decision_kind: Literal["assessment", "alarm"]
    unit: str = ""
    unit_flagged: bool = False


@dataclass(frozen=True, slots=True)
class Reactivated:
    """A dormant case came back, by a report, an alarm or an override."""

    kind: ClassVar[str] = "reactivated"
    level: str
    by: Literal["assessment", "alarm", "override"]
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Routed:
    """A queue record was sent for new information (not a scheduled review)."""

    kind: ClassVar[str] = "routed"
    level: str
    queue: str
    record_kind: Literal["new", "update", "reassessment", "override"]
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Acked:
    """An assignment was acknowledged, ``seconds`` after it was routed."""

    kind: ClassVar[str] = "acked"
    level: str
    queue: str
    unit: str = ""
    seconds: float | None = None
    late: bool = False
    review: bool = False
    """A scheduled review's: timed against the review deadlines."""


@dataclass(frozen=True, slots=True)
class Actioned:
    """Action was taken on an assignment (it acknowledges too), ``seconds`` after routing."""

    kind: ClassVar[str] = "actioned"
    level: str
    queue: str
    unit: str = ""
    seconds: float | None = None
    late: bool = False
    review: bool = False
    """A scheduled review's: timed against the review deadlines."""
    action: str = ""


@dataclass(frozen=True, slots=True)
class Breached:
    """A deadline passed unanswered."""

    kind: ClassVar[str] = "breached"
    level: str
    queue: str
    stage: SlaStage
    unit: str = ""


@dataclass(frozen=True, slots=True)
class ReassessmentDue:
    """A scheduled re-assessment fell due (a review queue record was sent)."""

    kind: ClassVar[str] = "reassessment_due"
    level: str
    queue: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Overridden:
    """A professional's override changed the level."""

    kind: ClassVar[str] = "override"
    level: str
    direction: Direction
    reason: str = ""
    """The override's stated reason (``new_information``, ...)."""
    unit: str = ""


@dataclass(frozen=True, slots=True)
class OverrideRejection:
    """A professional's override was rejected."""

    kind: ClassVar[str] = "override_rejected"
    level: str
    direction: Direction
    problem: OverrideProblem


@dataclass(frozen=True, slots=True)
class Protected:
    """A protection measure was granted."""

    kind: ClassVar[str] = "protection"
    measure: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Closed:
    """A case was closed (``level`` empty when it was dormant)."""

    kind: ClassVar[str] = "closed"
    level: str
    outcome: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Dormant:
    """An open case went dormant: no report or alarm through its level's reviews."""

    kind: ClassVar[str] = "dormant"
    level: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Ignored:
    """An update changed nothing."""

    kind: ClassVar[str] = "ignored"
    reason: IgnoredReason
    queue: str = ""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A record already processed came again with the same content."""

    kind: ClassVar[str] = "duplicate"
    event_type: str = ""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A record came again under a processed id with other content."""

    kind: ClassVar[str] = "conflict"
    event_type: str
    queue: str = ""
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Merged:
    """A repeated alarm was merged into open work (no queue record)."""

    kind: ClassVar[str] = "merged"
    level: str
    queue: str
    alarm: str


@dataclass(frozen=True, slots=True)
class ProcessingError:
    """Processing raised (a bug, not a bad record)."""

    kind: ClassVar[str] = "processing_error"
    stage: ProcessingStage


@dataclass(frozen=True, slots=True)
class ClockClamped:
    """A record stamped ahead of the clock ceiling was taken at the ceiling."""

    kind: ClassVar[str] = "clock_clamped"
    event_type: str
    seconds: float
    """How far ahead it was."""
    channel: str = ""


@dataclass(frozen=True, slots=True)
class UpdateWaiting:
    """An update without its case yet was held, applied once its case came, or expired."""

    kind: ClassVar[str] = "waiting"
    outcome: WaitOutcome


Observation = (
    EventHandled
    | Refused
    | Decided
    | Reactivated
    | Routed
    | Acked
    | Actioned
    | Breached
    | ReassessmentDue
    | Overridden
    | OverrideRejection
    | Protected
    | Closed
    | Dormant
    | Ignored
    | Duplicate
    | Conflict
    | Merged
    | ProcessingError
    | ClockClamped
    | UpdateWaiting
)
"""Any observation."""


class Fold:
    """Takes observations one kind at a time (see :func:`fold`); each method does
    nothing unless a subclass overrides it."""

    def on_event(self, o: EventHandled) -> None:
        """A record was handled."""

    def on_refused(self, o: Refused) -> None:
        """A record was dead-lettered."""

    def on_decided(self, o: Decided) -> None:
        """A report or alarm was decided."""

    def on_reactivated(self, o: Reactivated) -> None:
        """A dormant case came back."""

    def on_routed(self, o: Routed) -> None:
        """A queue record was sent."""

    def on_acked(self, o: Acked) -> None:
        """An assignment was acknowledged."""

    def on_actioned(self, o: Actioned) -> None:
        """Action was taken."""

    def on_breached(self, o: Breached) -> None:
        """A deadline was missed."""

    def on_reassessment_due(self, o: ReassessmentDue) -> None:
        """A re-assessment fell due."""

    def on_overridden(self, o: Overridden) -> None:
        """An override applied."""

    def on_override_rejected(self, o: OverrideRejection) -> None:
        """An override was rejected."""

    def on_protected(self, o: Protected) -> None:
        """A protection measure was granted."""

    def on_closed(self, o: Closed) -> None:
        """A case was closed."""

    def on_dormant(self, o: Dormant) -> None:
        """A case went dormant."""

    def on_ignored(self, o: Ignored) -> None:
        """An update changed nothing."""

    def on_duplicate(self, o: Duplicate) -> None:
        """A record came again."""

    def on_conflict(self, o: Conflict) -> None:
        """A record came again with other content."""

    def on_merged(self, o: Merged) -> None:
        """An alarm was merged."""

    def on_processing_error(self, o: ProcessingError) -> None:
        """Processing raised."""

    def on_clock_clamped(self, o: ClockClamped) -> None:
        """A record was taken at the clock ceiling."""

    def on_waiting(self, o: UpdateWaiting) -> None:
        """An update was held, applied late or expired."""


def fold(observations: Iterable[Observation], into: Fold) -> None:
    """Hand each observation to the method of ``into`` for its kind, in order."""
    for o in observations:
        match o:
            case EventHandled():
                into.on_event(o)
            case Refused():
                into.on_refused(o)
            case Decided():
                into.on_decided(o)
            case Routed():
                into.on_routed(o)
            case Acked():
                into.on_acked(o)
            case Actioned():
                into.on_actioned(o)
            case Breached():
                into.on_breached(o)
            case ReassessmentDue():
                into.on_reassessment_due(o)
            case Reactivated():
                into.on_reactivated(o)
            case Overridden():
                into.on_overridden(o)
            case OverrideRejection():
                into.on_override_rejected(o)
            case Protected():
                into.on_protected(o)
            case Closed():
                into.on_closed(o)
            case Dormant():
                into.on_dormant(o)
            case Ignored():
                into.on_ignored(o)
            case Duplicate():
                into.on_duplicate(o)
            case Conflict():
                into.on_conflict(o)
            case Merged():
                into.on_merged(o)
            case ProcessingError():
                into.on_processing_error(o)
            case ClockClamped():
                into.on_clock_clamped(o)
            case UpdateWaiting():
                into.on_waiting(o)
            case _:
                assert_never(o)
