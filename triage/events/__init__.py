"""Event contracts: what comes in (reports, alarms, case updates) and what goes out."""

from __future__ import annotations

from triage.events.base import EventModel, Level, QueueName
from triage.events.inputs import (
    CaseAcknowledged,
    CaseActionTaken,
    CaseClosed,
    CaseOverride,
    ContactBlock,
    DeviceAlarm,
    Indicators,
    InputEvent,
    ProtectionGranted,
    ReportReceived,
)
from triage.events.outputs import (
    CaseDormant,
    Contribution,
    DeadLetter,
    Decision,
    Escalation,
    FloorApplied,
    OutputEvent,
    OverrideRejected,
    QueueAssignment,
    QueueRecord,
)

__all__ = [
    "CaseAcknowledged",
    "CaseActionTaken",
    "CaseClosed",
    "CaseDormant",
    "CaseOverride",
    "ContactBlock",
    "Contribution",
    "DeadLetter",
    "Decision",
    "DeviceAlarm",
    "Escalation",
    "EventModel",
    "FloorApplied",
    "Indicators",
    "InputEvent",
    "Level",
    "OutputEvent",
    "OverrideRejected",
    "ProtectionGranted",
    "QueueAssignment",
    "QueueName",
    "QueueRecord",
    "ReportReceived",
]
