"""Event type and schema version → model class, for inputs and outputs."""

from __future__ import annotations

from pydantic import BaseModel

from triage.events.inputs import (
    CaseAcknowledged,
    CaseActionTaken,
    CaseClosed,
    CaseOverride,
    ClockWatermark,
    DeviceAlarm,
    ProtectionGranted,
    ReportReceived,
    ReportReceivedV2,
)
from triage.events.outputs import (
    CaseDormant,
    DeadLetter,
    Decision,
    Escalation,
    OverrideRejected,
    QueueRecord,
)

INPUT_MODELS: dict[tuple[str, int], type[BaseModel]] = {
    ("report.received", 1): ReportReceived,
    ("report.received", 2): ReportReceivedV2,
    ("device.alarm", 1): DeviceAlarm,
    ("case.acknowledged", 1): CaseAcknowledged,
    ("case.action_taken", 1): CaseActionTaken,
    ("case.protection_granted", 1): ProtectionGranted,
    ("case.closed", 1): CaseClosed,
    ("case.override", 1): CaseOverride,
    ("clock.watermark", 1): ClockWatermark,
}
"""Every input event the pipeline accepts, by (type, schema_version)."""

OUTPUT_MODELS: dict[tuple[str, int], type[BaseModel]] = {
    ("triage.decision", 1): Decision,
    ("triage.queue_record", 1): QueueRecord,
    ("triage.escalation", 1): Escalation,
    ("triage.override_rejected", 1): OverrideRejected,
    ("triage.dead_letter", 1): DeadLetter,
    ("triage.case_dormant", 1): CaseDormant,
}
"""Every record the pipeline produces, by (type, schema_version)."""

ALL_MODELS = {**INPUT_MODELS, **OUTPUT_MODELS}
INPUT_TYPES = frozenset(t for t, _ in INPUT_MODELS)


def _field_names(model: type[BaseModel], into: set[str]) -> set[str]:
    for name, info in model.model_fields.items():
        into.add(name)
        for arg in getattr(info.annotation, "__args__", ()) or (info.annotation,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _field_names(arg, into)
    return into


KNOWN_FIELDS: frozenset[str] = frozenset(
    name for model in INPUT_MODELS.values() for name in _field_names(model, set())
)
"""Field names that may appear in an error location. Anything else in a location
came from the input (an unknown key) and is masked, since it might be personal."""
