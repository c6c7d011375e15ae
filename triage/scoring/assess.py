"""The explainable assessment: evidence + rule set → total, level, and why.

Pure and monotone: weights are non-negative and floors only ever raise, so a
"yes" added anywhere never lowers the level (a hypothesis property checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from triage.events.base import Level, trusted
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


@lru_cache(maxsize=4096)
def _contribution(factor: str, answer: str, points: int, source: str) -> Contribution:
    # Frozen, so one instance serves every decision with the same factor line.
    return trusted(Contribution, factor=factor, answer=answer, points=points, source=source)


@lru_cache(maxsize=1024)
def _floor(rule: str, level: Level) -> FloorApplied:
    return trusted(FloorApplied, rule=rule, level=level)


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
            contributions.append(_contribution(name, "yes", weight, "report"))
            total += weight
        elif (
            name in evidence.carried
            and rules.history.carry_indicators
            and name not in rules.history.not_carried
        ):
            effective_yes.add(name)
            contributions.append(_contribution(name, "yes", weight, "history"))
            total += weight
        else:
            contributions.append(_contribution(name, answer, 0, "report"))

    injury_points = rules.injuries[evidence.injuries]
    contributions.append(_contribution("injuries", evidence.injuries, injury_points, "report"))
    total += injury_points

    history = rules.history
    prior = max(evidence.incidents - 1, 0)
    history_points = min(prior * history.points_per_prior_incident, history.max_points)
    contributions.append(
        _contribution("prior_incidents_12m", str(prior), history_points, "history")
    )
    total += history_points

    if evidence.alarm is not None:
        contributions.append(_contribution("alarm", evidence.alarm, 0, "event"))

    computed = rules.level_for(total)
    floors: list[FloorApplied] = []
    for floor in rules.floors:
        if floor.holds(effective_yes, evidence.injuries):
            floors.append(_floor(floor.name, floor.level))
    for hfloor in history.floors:
        if evidence.incidents >= hfloor.min_incidents:
            floors.append(_floor(hfloor.name, hfloor.level))
    if evidence.alarm is not None and evidence.alarm in rules.alarms:
        floors.append(_floor(f"alarm:{evidence.alarm}", rules.alarms[evidence.alarm]))
    if evidence.open_level is not None and history.keep_open_level:
        floors.append(_floor("open_case_level", evidence.open_level))
    if evidence.raised_level is not None:
        floors.append(_floor("override_up", evidence.raised_level))

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
