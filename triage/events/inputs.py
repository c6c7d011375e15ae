"""Input events: reports and device alarms from upstream, case updates from responders.

Risk indicators are tri-state: ``yes``, ``no`` and ``unknown`` are different
answers ("not asked" is not "no"). Only ``yes`` adds to a score.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triage.events.base import (
    DecisionId,
    DeviceRef,
    EventModel,
    InseeCode,
    Level,
    QueueName,
    ResponderRef,
    SuspectRef,
    VictimRef,
)

Answer = Literal["yes", "no", "unknown"]

Channel = Literal[
    "call_17_112",
    "sms_114",
    "hotline_3919",
    "online_platform",
    "station_complaint",
    "hospital",
    "social_services",
    "school",
    "other",
]
ReporterRole = Literal[
    "victim",
    "relative",
    "witness",
    "neighbour",
    "health_professional",
    "social_worker",
    "school_staff",
    "police",
    "anonymous",
]
Injuries = Literal["none", "minor", "serious", "unknown"]


class Indicators(BaseModel):
    """The risk indicators recurring across DASH, DA, ODARA, VioGén and the French grid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    immediate_danger: Answer = "unknown"
    strangulation: Answer = "unknown"
    threat_to_kill: Answer = "unknown"
    weapon: Answer = "unknown"
    separation: Answer = "unknown"
    pregnancy: Answer = "unknown"
    escalation: Answer = "unknown"
    stalking: Answer = "unknown"
    coercive_control: Answer = "unknown"
    sexual_violence: Answer = "unknown"
    children_present: Answer = "unknown"
    order_breach: Answer = "unknown"
    substance_abuse: Answer = "unknown"
    suicidal_threats: Answer = "unknown"
    fears_being_killed: Answer = "unknown"
    prior_violence: Answer = "unknown"

    def answered_yes(self) -> frozenset[str]:
        """Names of the indicators answered ``yes``."""
        return frozenset(name for name, answer in self if answer == "yes")


INDICATOR_NAMES: tuple[str, ...] = tuple(Indicators.model_fields)


class ContactBlock(BaseModel):
    """Personal details for responders only. Never logged, never in the audit log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(max_length=200)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    address: Annotated[str, Field(max_length=400)] | None = None
    notes: Annotated[str, Field(max_length=4000)] | None = None


class ReportReceived(EventModel):
    """A report of domestic violence arrived through one of the reporting channels."""

    type: Literal["report.received"] = "report.received"
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    suspect_ref: SuspectRef | None = None
    channel: Channel
    commune: InseeCode
    reporter_role: ReporterRole
    indicators: Indicators = Indicators()
    injuries: Injuries = "unknown"
    complaint_filed: bool = False
    contact: ContactBlock | None = None


LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2}$")]
"""An ISO 639-1 language code in lower case, e.g. ``fr``, ``nl``, ``ar``."""


# A subclass, so the engine decides a v2 report exactly as it decides a v1 report.
# Producers may keep sending v1 while every consumer accepts both.
class ReportReceivedV2(ReportReceived):
    """A report of domestic violence (version 2): version 1 plus the reporter's language.

    The language (optional) tells responders whether to bring an interpreter; it
    takes no part in the score.
    """

    # Narrowing the inherited Literal[1] is what makes this version 2.
    schema_version: Literal[2] = 2  # type: ignore[assignment]
    language: LanguageCode | None = None


class DeviceAlarm(EventModel):
    """A protection device raised an alarm: grave-danger phone pressed, bracelet zone breach."""

    type: Literal["device.alarm"] = "device.alarm"
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    device_ref: DeviceRef
    alarm: Literal["tgd_pressed", "bar_zone_breach"]
    commune: InseeCode | None = None

    @model_validator(mode="after")
    def _device_matches_alarm(self) -> DeviceAlarm:
        expected = "TGD-" if self.alarm == "tgd_pressed" else "BAR-"
        if not self.device_ref.startswith(expected):
            raise ValueError("device_ref does not match the alarm kind")
        return self


class _CaseUpdate(EventModel):
    schema_version: Literal[1] = 1
    victim_ref: VictimRef
    responder_ref: ResponderRef


class CaseAcknowledged(_CaseUpdate):
    """A responder took a queue record in charge."""

    type: Literal["case.acknowledged"] = "case.acknowledged"
    queue: QueueName
    decision_id: DecisionId


class CaseActionTaken(_CaseUpdate):
    """A responder acted on a queue record (on scene, victim contacted…)."""

    type: Literal["case.action_taken"] = "case.action_taken"
    queue: QueueName
    decision_id: DecisionId
    action: Literal["on_scene", "victim_contacted", "suspect_detained", "safety_plan", "referral"]


class ProtectionGranted(_CaseUpdate):
    """A protection measure was granted to the victim."""

    type: Literal["case.protection_granted"] = "case.protection_granted"
    measure: Literal["tgd", "bar", "oppi", "op", "shelter"]


class CaseClosed(_CaseUpdate):
    """The case was closed; open deadlines and re-assessments stop."""

    type: Literal["case.closed"] = "case.closed"
    outcome: Literal[
        "resolved", "no_further_action", "victim_relocated", "transferred", "victim_unreachable"
    ]


OverrideReason = Literal[
    "new_information",
    "professional_judgement",
    "victim_disclosure",
    "protection_in_place",
    "data_entry_error",
    "duplicate_report",
]


class CaseOverride(_CaseUpdate):
    """A professional changes the level. Raising needs a reason; lowering also needs
    a second reviewer who is not the author."""

    type: Literal["case.override"] = "case.override"
    decision_id: DecisionId
    direction: Literal["up", "down"]
    new_level: Level
    reason: OverrideReason
    second_reviewer: ResponderRef | None = None


class ClockWatermark(EventModel):
    """Control record: the stream clock of this partition may advance to ``time``.

    Replay tools send one to every partition after the last record, so that
    every partition's clock reaches the end of the log, as it does offline.
    It carries no victim and has no Kafka key.
    """

    type: Literal["clock.watermark"] = "clock.watermark"
    schema_version: Literal[1] = 1


InputEvent = (
    ReportReceived
    | DeviceAlarm
    | CaseAcknowledged
    | CaseActionTaken
    | ProtectionGranted
    | CaseClosed
    | CaseOverride
)
"""Any event the pipeline consumes."""
