"""Things the simulation plans to happen later.

An intent is turned into a concrete event only when its time comes, against
the engine's state at that moment: an acknowledgement for a case closed in the
meantime is dropped, an upgrade is one level above the level then in force.
That keeps every generated event acceptable to the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from triage.events.base import QueueName
from triage.events.inputs import OverrideReason
from triage.generate.population import ReportDraft

ActionKind = Literal["on_scene", "victim_contacted", "suspect_detained", "safety_plan", "referral"]
Measure = Literal["tgd", "bar", "oppi", "op", "shelter"]
Outcome = Literal[
    "resolved", "no_further_action", "victim_relocated", "transferred", "victim_unreachable"
]
OverrideMode = Literal["up", "down", "down_no_reviewer", "down_self_review"]


@dataclass(frozen=True, slots=True)
class Report:
    """Send a report drafted by the population."""

    draft: ReportDraft


@dataclass(frozen=True, slots=True)
class Progress:
    """A responder acknowledges a queue record, or acts on it."""

    victim_ref: str
    decision_id: str
    queue: QueueName
    service: str
    responder: str
    action: ActionKind | None = None
    """``None`` for an acknowledgement."""


@dataclass(frozen=True, slots=True)
class Protection:
    """A measure is granted; a TGD or BAR then raises alarms now and then."""

    victim_ref: str
    measure: Measure
    responder: str


@dataclass(frozen=True, slots=True)
class Closure:
    """The case is closed, unless newer work arrived since it was planned."""

    victim_ref: str
    epoch: int
    service: str
    responder: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Override:
    """A professional changes the level (some downgrades break the four-eyes rule)."""

    victim_ref: str
    mode: OverrideMode
    service: str
    responder: str
    reviewer: str
    """A colleague of the author; used only by a valid downgrade."""
    reason: OverrideReason


@dataclass(frozen=True, slots=True)
class Alarm:
    """A protection device raises an alarm."""

    victim_ref: str
    device_ref: str
    alarm: Literal["tgd_pressed", "bar_zone_breach"]


Intent = Report | Progress | Protection | Closure | Override | Alarm
"""Anything the simulation can schedule."""
