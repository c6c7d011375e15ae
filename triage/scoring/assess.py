"""The explainable assessment: evidence + rule set → total, level, and why.

Pure and monotone: weights are non-negative and floors only ever raise, so a
"yes" added anywhere never lowers the level (a hypothesis property checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from triage.events.base import Level
from triage.events.inputs import INDICATOR_NAMES, Answer, Injuries
from triage.events.outputs import Contribution, FloorApplied
from triage.scoring.rules import RuleSet


@dataclass(frozen=True, slots=True)
class Evidence:
    """What an assessment looks at: this event's answers and the victim's history."""

    answers: Mapping[str, Answer] = field(default_factory=dict)
    carried: frozenset[str] = frozenset()
    """Indicators answered ``yes`` in an earlier report inside the history window."""
    injuries: Injuries = "unknown"
    incidents: int = 1
    """Incidents in the window, this one included."""
    alarm: str | None = None
    open_level: Level | None = None
    """Level of the case if it is still open (continuity floor)."""
    raised_level: Level | None = None
    """Level set by an accepted upward override still in force."""


@dataclass(frozen=True, slots=True)
class Assessment:
    """The outcome, with every factor's part and every floor that applied."""

    total: int
    computed_level: Level
    level: Level
    contributions: tuple[Contribution, ...]
    floors: tuple[FloorApplied, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """Names of the factors that added points or set a floor, for responders."""
        scoring = tuple(c.factor for c in self.contributions if c.points > 0)
        return scoring + tuple(f"floor:{f.rule}" for f in self.floors)


def assess(evidence: Evidence, rules: RuleSet) -> Assessment:
    """Score ``evidence`` under ``rules``. Never reads a clock, a queue or a capacity."""
    contributions: list[Contribution] = []
    effective_yes: set[str] = set()
    total = 0
    for name in INDICATOR_NAMES:
        answer = evidence.answers.get(name, "unknown")
        weight = rules.weights.get(name, 0)
        if answer == "yes":
            effective_yes.add(name)
            contributions.append(
                Contribution(factor=name, answer="yes", points=weight, source="report")
            )
            total += weight
        elif (
            name in evidence.carried
            and rules.history.carry_indicators
            and name not in rules.history.not_carried
        ):
            effective_yes.add(name)
            contributions.append(
                Contribution(factor=name, answer="yes", points=weight, source="history")
            )
            total += weight
        else:
            contributions.append(
                Contribution(factor=name, answer=answer, points=0, source="report")
            )

    injury_points = rules.injuries[evidence.injuries]
    contributions.append(
        Contribution(
            factor="injuries", answer=evidence.injuries, points=injury_points, source="report"
        )
    )
    total += injury_points

    history = rules.history
    prior = max(evidence.incidents - 1, 0)
    history_points = min(prior * history.points_per_prior_incident, history.max_points)
    contributions.append(
        Contribution(
            factor="prior_incidents_12m", answer=str(prior), points=history_points, source="history"
        )
    )
    total += history_points

    if evidence.alarm is not None:
        contributions.append(
            Contribution(factor="alarm", answer=evidence.alarm, points=0, source="event")
        )

    computed = rules.level_for(total)
    floors: list[FloorApplied] = []
    for floor in rules.floors:
        if floor.holds(effective_yes, evidence.injuries):
            floors.append(FloorApplied(rule=floor.name, level=floor.level))
    for hfloor in history.floors:
        if evidence.incidents >= hfloor.min_incidents:
            floors.append(FloorApplied(rule=hfloor.name, level=hfloor.level))
    if evidence.alarm is not None and evidence.alarm in rules.alarms:
        floors.append(
            FloorApplied(rule=f"alarm:{evidence.alarm}", level=rules.alarms[evidence.alarm])
        )
    if evidence.open_level is not None and history.keep_open_level:
        floors.append(FloorApplied(rule="open_case_level", level=evidence.open_level))
    if evidence.raised_level is not None:
        floors.append(FloorApplied(rule="override_up", level=evidence.raised_level))

    level = computed
    for applied in floors:
        level = level.at_least(applied.level)
    return Assessment(
        total=total,
        computed_level=computed,
        level=level,
        contributions=tuple(contributions),
        floors=tuple(floors),
    )
