"""Observations: what happened in a step, as plain values for metrics and summaries.

The engine returns them beside its output records. They carry levels, queues,
units and reason codes only, never a victim reference or any personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ObservationKind = Literal[
    "event",
    "decided",
    "routed",
    "acked",
    "actioned",
    "breached",
    "reassessment_due",
    "override",
    "override_rejected",
    "protection",
    "closed",
    "ignored",
    "duplicate",
    "refused",
]


@dataclass(frozen=True, slots=True)
class Observation:
    """One fact about a step. Unused fields stay empty."""

    kind: ObservationKind
    level: str = ""
    queue: str = ""
    unit: str = ""
    stage: str = ""
    reason: str = ""
    seconds: float | None = None
    late: bool = False
    event_type: str = ""
    channel: str = ""
