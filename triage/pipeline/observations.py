"""Observations: what happened in a step, as plain values for metrics and summaries.

The engine returns them beside its output records. They carry levels, queues,
units and reason codes only, never a victim reference or any personal data.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

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
    "dormant",
    "reactivated",
    "ignored",
    "duplicate",
    "conflict",
    "merged",
    "refused",
    "processing_error",
    "clock_clamped",
    "waiting",
]


class Observation(NamedTuple):
    """One fact about a step. Unused fields stay empty.

    A named tuple rather than a frozen dataclass: just as immutable, and several
    are built per event, at a third of the cost.
    """

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
