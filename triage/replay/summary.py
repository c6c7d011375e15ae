"""Run summaries: counts and response times from the engine's observations.

Response times are kept apart by what was answered: new information (a report, an
alarm, an override: the level's danger-now deadlines) and scheduled reviews (their
own deadlines, observations marked ``review``). Mixed, a year of P1 reviews
every 72 h would drown the few P1 reports in the P1 figures.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, Literal

from triage.events.base import QUEUE_NAMES, Level
from triage.pipeline.observations import (
    Acked,
    Actioned,
    Breached,
    Conflict,
    Decided,
    Dormant,
    Duplicate,
    Fold,
    Ignored,
    Merged,
    Observation,
    Overridden,
    OverrideRejection,
    Reactivated,
    ReassessmentDue,
    Refused,
    Routed,
    fold,
)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (deterministic, no interpolation); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


BREACH_STAGES = ("ack", "action", "review")
"""Stages of a missed deadline: ``review`` is either deadline of a scheduled review.
(A conflicting resend escalates too, stage ``conflict``: counted apart.)"""


class Summary(Fold):
    """Aggregates observations into the figures a run prints."""

    def __init__(self) -> None:
        self.events = 0
        self.decisions: Counter[str] = Counter()
        self.decision_kinds: Counter[str] = Counter()
        self.routed: Counter[tuple[str, str]] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.breaches: Counter[tuple[str, str]] = Counter()
        self.overrides: Counter[str] = Counter()
        self.overrides_rejected: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self.duplicates = 0
        self.conflicts = 0
        """Resends with other content than the event processed under their id."""
        self.merged_alarms = 0
        """Repeated alarms merged into open work (no queue record)."""
        self.reassessments: Counter[str] = Counter()
        """Scheduled re-assessments (reviews) that fell due, by level."""
        self.dormant: Counter[str] = Counter()
        """Open cases made dormant (no report or alarm through their level's reviews),
        by level."""
        self.reactivated: Counter[str] = Counter()
        """Dormant cases reactivated by a new report, alarm or override, by level."""
        self.unknown_communes = 0
        self.ack_seconds: dict[str, list[float]] = defaultdict(list)
        self.action_seconds: dict[str, list[float]] = defaultdict(list)
        self.review_ack_seconds: dict[str, list[float]] = defaultdict(list)
        """Answers to scheduled reviews, by level: kept out of :attr:`ack_seconds`."""
        self.review_action_seconds: dict[str, list[float]] = defaultdict(list)
        self.late: Counter[tuple[str, str]] = Counter()
        """Late answers by level and stage (``ack``, ``action``, ``review_ack``,
        ``review_action``)."""

    def add(self, observations: Iterable[Observation]) -> None:
        """Fold observations into the counts."""
        fold(observations, self)

    def on_decided(self, o: Decided) -> None:
        self.decisions[o.level] += 1
        self.decision_kinds[o.decision_kind] += 1
        self.unknown_communes += o.unit_flagged

    def on_routed(self, o: Routed) -> None:
        self.routed[(o.queue, o.level)] += 1

    def on_refused(self, o: Refused) -> None:
        self.dead_letters[o.reason.value] += 1

    def on_breached(self, o: Breached) -> None:
        self.breaches[(o.level, o.stage.value)] += 1

    def on_acked(self, o: Acked) -> None:
        self._answer(o, "ack")

    def on_actioned(self, o: Actioned) -> None:
        self._answer(o, "action")

    def on_overridden(self, o: Overridden) -> None:
        self.overrides[o.direction] += 1

    def on_override_rejected(self, o: OverrideRejection) -> None:
        self.overrides_rejected[o.problem.value] += 1

    def on_duplicate(self, o: Duplicate) -> None:
        self.duplicates += 1

    def on_conflict(self, o: Conflict) -> None:
        self.conflicts += 1

    def on_merged(self, o: Merged) -> None:
        self.merged_alarms += 1

    def on_reassessment_due(self, o: ReassessmentDue) -> None:
        self.reassessments[o.level] += 1

    def on_dormant(self, o: Dormant) -> None:
        self.dormant[o.level] += 1

    def on_reactivated(self, o: Reactivated) -> None:
        self.reactivated[o.level] += 1

    def on_ignored(self, o: Ignored) -> None:
        self.ignored[o.reason.value] += 1

    def _answer(self, o: Acked | Actioned, stage: Literal["ack", "action"]) -> None:
        """An acknowledgement or action: of new information, or of a scheduled review."""
        if o.review:
            samples = self.review_ack_seconds if stage == "ack" else self.review_action_seconds
        else:
            samples = self.ack_seconds if stage == "ack" else self.action_seconds
        samples[o.level].append(o.seconds or 0.0)
        self.late[(o.level, f"review_{stage}" if o.review else stage)] += o.late

    def to_dict(self) -> dict[str, Any]:
        """Plain figures, stable key order (for JSON output and tests)."""
        levels = [lv.value for lv in Level]

        def times(samples: dict[str, list[float]]) -> dict[str, dict[str, float | int | None]]:
            return {
                lv: {
                    "n": len(samples.get(lv, [])),
                    "p50_s": percentile(samples.get(lv, []), 50),
                    "p90_s": percentile(samples.get(lv, []), 90),
                }
                for lv in levels
            }

        return {
            "events": self.events,
            "decisions_by_level": {lv: self.decisions.get(lv, 0) for lv in levels},
            "decisions_by_kind": dict(sorted(self.decision_kinds.items())),
            "queue_records": {
                q: {lv: self.routed.get((q, lv), 0) for lv in levels}
                for q in QUEUE_NAMES
                if any(self.routed.get((q, lv)) for lv in levels)
            },
            "reassessments_due": sum(self.reassessments.values()),
            "reassessments_due_by_level": {lv: self.reassessments.get(lv, 0) for lv in levels},
            "cases_dormant": sum(self.dormant.values()),
            "cases_dormant_by_level": {lv: self.dormant.get(lv, 0) for lv in levels},
            "cases_reactivated": sum(self.reactivated.values()),
            "cases_reactivated_by_level": {lv: self.reactivated.get(lv, 0) for lv in levels},
            "sla_breaches": {
                lv: {stage: self.breaches.get((lv, stage), 0) for stage in BREACH_STAGES}
                for lv in levels
            },
            "time_to_ack": times(self.ack_seconds),
            "time_to_action": times(self.action_seconds),
            "time_to_review_ack": times(self.review_ack_seconds),
            "time_to_review_action": times(self.review_action_seconds),
            "overrides": dict(sorted(self.overrides.items())),
            "overrides_rejected": dict(sorted(self.overrides_rejected.items())),
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "duplicates": self.duplicates,
            "conflicting_resends": self.conflicts,
            "alarms_merged": self.merged_alarms,
            "unknown_communes": self.unknown_communes,
            "updates_ignored": dict(sorted(self.ignored.items())),
        }
