"""The caseload of the yearly review: what kind of work came each month, and which cases
are open, dormant or closed.

Work comes in five kinds, counted apart because they ask different things of the
responders: a *new case* (a report for a victim with no case open or dormant: first
seen in the period, or whose case was closed), a *repeat report* (a report on a case
open or dormant: new information), a device *alarm* (a repeated press merged into open
work within the rule set's ``alarm_merge_window`` is counted apart, as merged), an
accepted *override*, and a scheduled *review* (a re-assessment on the level's cadence).

A case goes *dormant* after its level's ``dormant_after_reviews`` reviews without a new
report, alarm or override (a ``triage.case_dormant`` record) and is *reactivated* by
the next one (its decision's ``reactivated_from``). Closures are responders' input
events: only a review of the input log sees them, an outputs file counts a closed case
as open.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from triage.events.outputs import CaseDormant, Decision

PARIS = ZoneInfo("Europe/Paris")
WORK_KINDS = ("new_cases", "repeat_reports", "alarms", "alarms_merged", "overrides", "reviews")
"""The monthly series of incoming work, in the page's order."""
LEVELS = ("P1", "P2", "P3", "P4")

Status = Literal["open", "dormant", "closed"]


def month_of(when: datetime) -> str:
    """The calendar month in Pas-de-Calais (Europe/Paris), e.g. ``2026-03``."""
    return when.astimezone(PARIS).strftime("%Y-%m")


class Caseload:
    """Work per month by kind, dormancy and reactivation, and each victim's case status."""

    def __init__(self, *, closures_known: bool) -> None:
        self.closures_known = closures_known
        self.work: Counter[tuple[str, str]] = Counter()
        """(month, kind of work) → count; kinds in :data:`WORK_KINDS`."""
        self.reviews_by_level: Counter[tuple[str, str]] = Counter()
        self.dormant: Counter[tuple[str, str]] = Counter()
        """(month, level) → cases gone dormant."""
        self.reactivated: Counter[tuple[str, str]] = Counter()
        """(month, what reactivated it: assessment, alarm or override) → cases."""
        self.closed: Counter[str] = Counter()
        self.status: dict[str, tuple[Status, str]] = {}
        """Victim → (status of the case, its level), as of the last record seen."""

    def decision(self, decision: Decision) -> None:
        """A decision of the engine (assessment, alarm, override; merged alarms too)."""
        month = month_of(decision.time)
        before = self.status.get(decision.victim_ref)
        if decision.reactivated_from is not None:
            self.reactivated[(month, decision.kind)] += 1
        if decision.override is not None:
            kind = "overrides"
        elif decision.merged_into is not None:
            kind = "alarms_merged"
        elif decision.kind == "alarm":
            kind = "alarms"
        elif before is None or before[0] == "closed":
            kind = "new_cases"
        else:
            kind = "repeat_reports"
        self.work[(month, kind)] += 1
        self.status[decision.victim_ref] = ("open", decision.level.value)

    def review(self, when: datetime, level: str) -> None:
        """A scheduled re-assessment fell due (its queue record)."""
        month = month_of(when)
        self.work[(month, "reviews")] += 1
        self.reviews_by_level[(month, level)] += 1

    def went_dormant(self, record: CaseDormant) -> None:
        """A case made dormant."""
        self.dormant[(month_of(record.time), record.level.value)] += 1
        self.status[record.victim_ref] = ("dormant", record.level.value)

    def closure(self, victim_ref: str, when: datetime) -> None:
        """A responder closed the case (an input event: input logs only)."""
        self.closed[month_of(when)] += 1
        known = self.status.get(victim_ref)
        self.status[victim_ref] = ("closed", known[1] if known else "")

    @property
    def months(self) -> set[str]:
        """Months with any work, dormancy, reactivation or closure."""
        return (
            {m for m, _ in self.work}
            | {m for m, _ in self.dormant}
            | {m for m, _ in self.reactivated}
            | set(self.closed)
        )

    def at_end(self) -> dict[str, dict[str, int | None]]:
        """Cases by status at the end of the period, per level (closed: ``None`` when
        closures are unknown, and those cases then count as open)."""
        counts: Counter[tuple[Status, str]] = Counter(self.status.values())
        out: dict[str, dict[str, int | None]] = {}
        for lv in LEVELS:
            out[lv] = {
                "open": counts.get(("open", lv), 0),
                "dormant": counts.get(("dormant", lv), 0),
                "closed": counts.get(("closed", lv), 0) if self.closures_known else None,
            }
        return out

    def to_dict(self, months: list[str]) -> dict[str, Any]:
        """The caseload figures over ``months`` (every month of the period)."""
        kinds = ("assessment", "alarm", "override")
        return {
            "work_by_month": {m: {k: self.work.get((m, k), 0) for k in WORK_KINDS} for m in months},
            "reviews_by_month_and_level": {
                m: {lv: self.reviews_by_level.get((m, lv), 0) for lv in LEVELS} for m in months
            },
            "dormancy_by_month": {
                m: {
                    "dormant": sum(self.dormant.get((m, lv), 0) for lv in LEVELS),
                    "reactivated": sum(self.reactivated.get((m, k), 0) for k in kinds),
                    "closed": self.closed.get(m, 0) if self.closures_known else None,
                }
                for m in months
            },
            "dormant_by_level": {
                lv: sum(n for (_, level), n in self.dormant.items() if level == lv) for lv in LEVELS
            },
            "reactivated_by_kind": {
                k: sum(n for (_, kind), n in self.reactivated.items() if kind == k) for k in kinds
            },
            "cases_at_end": self.at_end(),
        }
