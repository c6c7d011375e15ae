"""The explainable assessment: evidence + rule set → total, level, and why.

Pure and monotone: weights are non-negative and floors only ever raise, so a
"yes" added anywhere never lowers the level (a hypothesis property checks it).

The open case's level is a floor (``open_case_level``), except that, with the rule
set's ``step_down_after_review``, a report whose evidence is weaker may lower it by one
level (``stepped_down_after_review``): only when its computed level is below the open
level, no red-flag floor or history floor holds, and the open level has stood for its
re-assessment cadence. A "yes" added to such a report can only cancel the step down
(a red flag) or raise the computed level, so monotonicity holds there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from triage.events.base import Level, trusted
from triage.events.inputs import INDICATOR_NAMES, Answer, Injuries
from triage.events.outputs import Contribution, FloorApplied
from triage.scoring.rules import INJURY_SEVERITY, RuleSet


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
    open_level_stood: bool = False
    """This is a report, and the open level has stood for at least its re-assessment
    cadence: the rule set's ``step_down_after_review`` may lower it by one level."""
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
        return (
            *[c.factor for c in self.contributions if c.points > 0],
            *[f"floor:{f.rule}" for f in self.floors],
        )


@lru_cache(maxsize=4096)
def _contribution(factor: str, answer: str, points: int, source: str) -> Contribution:
    # Frozen, so one instance serves every decision with the same factor line.
    return trusted(Contribution, factor=factor, answer=answer, points=points, source=source)


@lru_cache(maxsize=1024)
def _floor(rule: str, level: Level) -> FloorApplied:
    return trusted(FloorApplied, rule=rule, level=level)


_RANK = {level: level.rank for level in Level}

OPEN_CASE_LEVEL = "open_case_level"
"""Floor rule: the level of the case still open (the rule set's ``keep_open_level``)."""
STEPPED_DOWN = "stepped_down_after_review"
"""Floor rule: the open level lowered by one step, no further (``step_down_after_review``)."""


@dataclass(frozen=True, slots=True)
class _Indicator:
    """One indicator under a rule set: its weight, whether history carries it, its lines."""

    name: str
    weight: int
    carried: bool
    yes: Contribution
    yes_from_history: Contribution
    lines: dict[str, Contribution]
    """Zero-point lines by answer (``no``, ``unknown``)."""


@dataclass(frozen=True, slots=True)
class _Table:
    """A rule set laid out for :func:`assess` (built once per rule set)."""

    rules: RuleSet
    indicators: tuple[_Indicator, ...]
    floors: tuple[tuple[frozenset[str], int | None, FloorApplied], ...]
    """Indicators all ``yes``, least injury severity (or none), the floor applied."""


_TABLES: dict[int, _Table] = {}


def _table(rules: RuleSet) -> _Table:
    table = _TABLES.get(id(rules))
    if table is not None and table.rules is rules:
        return table
    history = rules.history
    indicators = tuple(
        _Indicator(
            name=name,
            weight=rules.weights.get(name, 0),
            carried=history.carry_indicators and name not in history.not_carried,
            yes=_contribution(name, "yes", rules.weights.get(name, 0), "report"),
            yes_from_history=_contribution(name, "yes", rules.weights.get(name, 0), "history"),
            lines={a: _contribution(name, a, 0, "report") for a in ("no", "unknown")},
        )
        for name in INDICATOR_NAMES
    )
    floors = tuple(
        (
            frozenset(floor.all),
            INJURY_SEVERITY[floor.injuries] if floor.injuries is not None else None,
            _floor(floor.name, floor.level),
        )
        for floor in rules.floors
    )
    if len(_TABLES) >= 64:  # many rule sets (tests, what-if runs): start over
        _TABLES.clear()
    table = _TABLES[id(rules)] = _Table(rules, indicators, floors)
    return table


def assess(evidence: Evidence, rules: RuleSet) -> Assessment:
    """Score ``evidence`` under ``rules``. Never reads a clock, a queue or a capacity."""
    table = _table(rules)
    answers, carried = evidence.answers, evidence.carried
    contributions: list[Contribution] = []
    effective_yes: set[str] = set()
    total = 0
    for indicator in table.indicators:
        name = indicator.name
        answer = answers.get(name, "unknown")
        if answer == "yes":
            effective_yes.add(name)
            contributions.append(indicator.yes)
            total += indicator.weight
        elif indicator.carried and name in carried:
            effective_yes.add(name)
            contributions.append(indicator.yes_from_history)
            total += indicator.weight
        else:
            line = indicator.lines.get(answer)
            if line is None:  # not an answer a validated event can carry
                line = _contribution(name, answer, 0, "report")
            contributions.append(line)

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
    severity = INJURY_SEVERITY[evidence.injuries]
    for needed, least, applied in table.floors:
        if needed <= effective_yes and (least is None or severity >= least):
            floors.append(applied)
    for hfloor in history.floors:
        if evidence.incidents >= hfloor.min_incidents:
            floors.append(_floor(hfloor.name, hfloor.level))
    if evidence.alarm is not None and evidence.alarm in rules.alarms:
        floors.append(_floor(f"alarm:{evidence.alarm}", rules.alarms[evidence.alarm]))
    open_level = evidence.open_level
    if open_level is not None and history.keep_open_level:
        # Up to here, `floors` holds only the red flags, history and alarm floors.
        weaker = (
            history.step_down_after_review
            and evidence.open_level_stood
            and evidence.alarm is None
            and not floors
            and _RANK[computed] < _RANK[open_level]
        )
        if weaker:
            floors.append(_floor(STEPPED_DOWN, open_level.one_below()))
        else:
            floors.append(_floor(OPEN_CASE_LEVEL, open_level))
    if evidence.raised_level is not None:
        floors.append(_floor("override_up", evidence.raised_level))

    level = computed
    for applied in floors:
        # Level.at_least: the more urgent (ties keep the level reached so far).
        if _RANK[applied.level] > _RANK[level]:
            level = applied.level
    return Assessment(
        total=total,
        computed_level=computed,
        level=level,
        contributions=tuple(contributions),
        floors=tuple(floors),
    )
