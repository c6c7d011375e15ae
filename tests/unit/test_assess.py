"""The explainable assessment: totals, floors, history, and its monotonicity."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import answer_maps, injuries
from triage.events.base import Level
from triage.events.inputs import INDICATOR_NAMES
from triage.scoring.assess import OPEN_CASE_LEVEL, STEPPED_DOWN, Evidence, assess
from triage.scoring.rules import Floor, RuleSet, load_rules

RULES = load_rules()  # module-level so that hypothesis strategies can read the floors
INJURY_RISES = [
    ("none", "minor"),
    ("none", "serious"),
    ("unknown", "minor"),
    ("unknown", "serious"),
    ("minor", "serious"),
]


@st.composite
def evidences(draw: st.DrawFn) -> Evidence:
    """Any evidence an assessment may see: answers, carried history, alarm, open level."""
    return Evidence(
        answers=draw(answer_maps()),
        carried=frozenset(draw(st.lists(st.sampled_from(INDICATOR_NAMES), max_size=3))),
        injuries=draw(injuries),
        incidents=draw(st.integers(1, 6)),
        alarm=draw(st.none() | st.sampled_from(("tgd_pressed", "bar_zone_breach"))),
        open_level=draw(st.none() | st.sampled_from(tuple(Level))),
        open_level_stood=draw(st.booleans()),
        raised_level=draw(st.none() | st.sampled_from(tuple(Level))),
    )


def with_answer(evidence: Evidence, name: str, answer: str) -> Evidence:
    """``evidence`` with one indicator answered differently."""
    return replace(evidence, answers={**evidence.answers, name: answer})


def only_yes(*names: str, injuries: str = "unknown") -> Evidence:
    """Evidence where only ``names`` are ``yes`` and every other indicator is unknown."""
    return Evidence(answers=dict.fromkeys(names, "yes"), injuries=injuries)  # type: ignore[arg-type]


class TestAssess:
    def test_nothing_known_is_p4(self, rules: RuleSet) -> None:
        """A report with every indicator unknown scores 0 and is P4, never "no risk"."""
        result = assess(Evidence(), rules)

        assert (result.total, result.computed_level, result.level, result.floors) == (
            0,
            Level.P4,
            Level.P4,
            (),
        )

    def test_every_factor_is_explained(self, rules: RuleSet) -> None:
        """Every indicator, the injuries and the history are contributions, in a fixed order."""
        result = assess(Evidence(), rules)

        factors = [c.factor for c in result.contributions]
        assert factors == [*INDICATOR_NAMES, "injuries", "prior_incidents_12m"]

    def test_total_is_the_sum_of_contributions(self, rules: RuleSet) -> None:
        """The total is exactly the sum of the points of each contribution."""
        evidence = Evidence(
            answers={"weapon": "yes", "pregnancy": "yes"}, injuries="minor", incidents=2
        )

        result = assess(evidence, rules)

        assert result.total == sum(c.points for c in result.contributions) == 5 + 2 + 1 + 2

    @pytest.mark.parametrize("answer", ["no", "unknown"])
    def test_only_yes_adds_points(self, rules: RuleSet, answer: str) -> None:
        """An indicator answered no or unknown adds nothing, and its answer is kept."""
        result = assess(Evidence(answers=dict.fromkeys(INDICATOR_NAMES, answer)), rules)  # type: ignore[arg-type]

        assert result.total == 0
        assert {c.answer for c in result.contributions[: len(INDICATOR_NAMES)]} == {answer}

    def test_carried_indicator_counts_from_history(self, rules: RuleSet) -> None:
        """A yes from an earlier report in the window counts, marked as coming from history."""
        result = assess(Evidence(carried=frozenset({"strangulation"}), incidents=2), rules)

        carried = next(c for c in result.contributions if c.factor == "strangulation")
        assert (carried.answer, carried.points, carried.source) == ("yes", 5, "history")
        assert result.level == Level.P2

    def test_carried_indicator_ignored_when_carry_is_off(self, rules: RuleSet) -> None:
        """With carry_indicators off, an earlier yes does not count again."""
        history = rules.history.model_copy(update={"carry_indicators": False})
        no_carry = rules.model_copy(update={"history": history})

        result = assess(Evidence(carried=frozenset({"strangulation"}), incidents=2), no_carry)

        assert result.level == Level.P4

    def test_history_points_are_capped(self, rules: RuleSet) -> None:
        """Prior incidents add points per incident, up to the cap."""
        two = assess(Evidence(incidents=2), rules)
        many = assess(Evidence(incidents=40), rules)

        assert two.contributions[-1].points == rules.history.points_per_prior_incident
        assert many.contributions[-1].points == rules.history.max_points

    def test_three_incidents_in_a_year_is_at_least_p2(self, rules: RuleSet) -> None:
        """Three incidents in the window raise the floor to P2 (MARAC practice)."""
        assert assess(Evidence(incidents=2), rules).level == Level.P4
        assert assess(Evidence(incidents=3), rules).level == Level.P2

    def test_device_alarm_floor(self, rules: RuleSet) -> None:
        """A device alarm is P1 even with nothing else known, and says so in the floors."""
        result = assess(Evidence(alarm="bar_zone_breach"), rules)

        assert result.level == Level.P1
        assert [f.rule for f in result.floors] == ["alarm:bar_zone_breach"]

    def test_open_case_keeps_its_level(self, rules: RuleSet) -> None:
        """A new assessment of an open P2 case does not drop below P2."""
        result = assess(Evidence(open_level=Level.P2), rules)

        assert (result.computed_level, result.level) == (Level.P4, Level.P2)

    def test_upward_override_stays_in_force(self, rules: RuleSet) -> None:
        """A level raised by an override is a floor for later assessments."""
        assert assess(Evidence(raised_level=Level.P1), rules).level == Level.P1

    def test_reasons_name_scoring_factors_and_floors(self, rules: RuleSet) -> None:
        """Reasons list the factors that scored and every floor that applied."""
        result = assess(only_yes("weapon", "children_present"), rules)

        assert result.reasons == ("weapon", "children_present", "floor:weapon")

    @pytest.mark.parametrize("floor", RULES.floors, ids=[f.name for f in RULES.floors])
    def test_each_red_flag_alone_reaches_its_floor(self, rules: RuleSet, floor: Floor) -> None:
        """Each red flag alone (everything else unknown) reaches at least its floor level."""
        evidence = only_yes(*floor.all, injuries=floor.injuries or "unknown")

        result = assess(evidence, rules)

        assert result.level.rank >= floor.level.rank
        assert floor.name in {f.rule for f in result.floors}

    @given(floor=st.sampled_from(RULES.floors), others=st.data())
    def test_red_flag_floor_holds_whatever_else_is_said(
        self, floor: Floor, others: st.DataObject
    ) -> None:
        """A red flag reaches its floor whatever no/unknown the other indicators get."""
        answers = {n: others.draw(st.sampled_from(("no", "unknown"))) for n in INDICATOR_NAMES}
        answers.update(dict.fromkeys(floor.all, "yes"))
        evidence = Evidence(answers=answers, injuries=floor.injuries or "none")  # type: ignore[arg-type]

        assert assess(evidence, RULES).level.rank >= floor.level.rank

    @given(evidence=evidences(), name=st.sampled_from(INDICATOR_NAMES))
    def test_adding_a_risk_factor_never_lowers_the_level(
        self, evidence: Evidence, name: str
    ) -> None:
        """Turning any indicator to yes never lowers the total or the level."""
        before = assess(evidence, RULES)

        after = assess(with_answer(evidence, name, "yes"), RULES)

        assert after.total >= before.total
        assert after.level.rank >= before.level.rank

    @given(evidence=evidences(), rise=st.sampled_from(INJURY_RISES))
    def test_worse_injuries_never_lower_the_level(
        self, evidence: Evidence, rise: tuple[str, str]
    ) -> None:
        """Raising the injuries (none/unknown → minor → serious) never lowers the level."""
        low, high = rise
        before = assess(replace(evidence, injuries=low), RULES)

        after = assess(replace(evidence, injuries=high), RULES)

        assert after.level.rank >= before.level.rank

    @given(evidence=evidences(), alarm=st.sampled_from(("tgd_pressed", "bar_zone_breach")))
    def test_alarm_is_p1_whatever_else(self, evidence: Evidence, alarm: str) -> None:
        """A device alarm is P1 whatever the answers, history and open level."""
        assert assess(replace(evidence, alarm=alarm), RULES).level == Level.P1

    @given(evidence=evidences())
    def test_is_pure(self, evidence: Evidence) -> None:
        """The same evidence and rules always give the same assessment."""
        assert assess(evidence, RULES) == assess(evidence, RULES)

    def test_injury_floor_applies_to_worse_injuries(self, rules: RuleSet) -> None:
        """A floor on minor injuries still holds when the injuries are serious."""
        floor = Floor(name="any_injury", injuries="minor", level=Level.P2)
        custom = rules.model_copy(update={"floors": (floor,)})

        minor = assess(Evidence(injuries="minor"), custom)
        serious = assess(Evidence(injuries="serious"), custom)

        assert minor.level == Level.P2
        assert serious.level.rank >= minor.level.rank


COMBINATIONS = [f for f in RULES.floors if len(f.all) >= 2 and f.level == Level.P2]
"""The packaged combination floors (professional judgement, since urgency-1.4.0)."""


class TestCombinationFloors:
    @pytest.mark.parametrize("floor", COMBINATIONS, ids=[f.name for f in COMBINATIONS])
    def test_pair_reaches_p2_on_its_own(self, rules: RuleSet, floor: Floor) -> None:
        """Each combination, with nothing else known, is P2 and names its floor."""
        result = assess(only_yes(*floor.all, injuries=floor.injuries or "unknown"), rules)

        assert result.level == Level.P2
        assert floor.name in {f.rule for f in result.floors}

    @pytest.mark.parametrize(
        ("names", "injuries", "rule"),
        [
            (("separation", "stalking"), "unknown", "separation_and_stalking"),
            (("separation", "escalation"), "unknown", "separation_and_escalation"),
            (("stalking", "fears_being_killed"), "unknown", "stalking_and_fear"),
            (("coercive_control", "fears_being_killed"), "unknown", "coercive_control_and_fear"),
            (("separation", "coercive_control"), "minor", "separation_control_and_violence"),
        ],
    )
    def test_modest_sum_is_raised(
        self, rules: RuleSet, names: tuple[str, ...], injuries: str, rule: str
    ) -> None:
        """The pair's own points reach only P3; the combination floor makes it P2."""
        result = assess(only_yes(*names, injuries=injuries), rules)

        assert (result.computed_level, result.level) == (Level.P3, Level.P2)
        assert [f.rule for f in result.floors] == [rule]

    def test_one_of_a_pair_is_not_enough(self, rules: RuleSet) -> None:
        """Each indicator of a pair alone stays below P2 (no stand-alone floor)."""
        for floor in COMBINATIONS:
            for name in floor.all:
                assert assess(only_yes(name), rules).level.rank < Level.P2.rank, name

    def test_control_and_separation_need_violence(self, rules: RuleSet) -> None:
        """DASH's cluster needs physical or sexual violence: without injuries it is P3."""
        assert assess(only_yes("separation", "coercive_control"), rules).level == Level.P3

    def test_a_carried_indicator_completes_a_pair(self, rules: RuleSet) -> None:
        """A separation reported last month and stalking reported now: the floor holds."""
        evidence = Evidence(
            answers={"stalking": "yes"}, carried=frozenset({"separation"}), incidents=2
        )

        assert "separation_and_stalking" in {f.rule for f in assess(evidence, rules).floors}

    def test_separation_alone_is_p3(self, rules: RuleSet) -> None:
        """Separation weighs 4 since urgency-1.4.0: on its own it reaches P3."""
        result = assess(only_yes("separation"), rules)

        assert (result.total, result.level) == (4, Level.P3)


def stood(open_level: Level, **changes: object) -> Evidence:
    """A report on a case open at ``open_level`` for at least its re-assessment cadence."""
    return replace(Evidence(open_level=open_level, open_level_stood=True), **changes)  # type: ignore[arg-type]


class TestStepDownAfterReview:
    @pytest.mark.parametrize(
        ("open_level", "lower"), [(Level.P1, Level.P2), (Level.P2, Level.P3), (Level.P3, Level.P4)]
    )
    def test_weaker_report_lowers_one_level(
        self, rules: RuleSet, open_level: Level, lower: Level
    ) -> None:
        """Nothing known (P4 by total) on a case that stood its cadence: one level down, and
        the floor says why."""
        result = assess(stood(open_level), rules)

        assert (result.computed_level, result.level) == (Level.P4, lower)
        assert [(f.rule, f.level) for f in result.floors] == [(STEPPED_DOWN, lower)]
        assert result.reasons == (f"floor:{STEPPED_DOWN}",)

    def test_computed_level_above_the_step_counts(self, rules: RuleSet) -> None:
        """A P1 case whose report is P3 by total goes to P2, not P3: one step only."""
        result = assess(stood(Level.P1, answers={"separation": "yes"}), rules)

        assert (result.computed_level, result.level) == (Level.P3, Level.P2)

    def test_not_before_the_cadence(self, rules: RuleSet) -> None:
        """A report before the open level has stood its cadence keeps the level."""
        result = assess(Evidence(open_level=Level.P2), rules)

        assert result.level == Level.P2
        assert [f.rule for f in result.floors] == [OPEN_CASE_LEVEL]

    def test_as_strong_a_report_keeps_the_level(self, rules: RuleSet) -> None:
        """A computed level equal to the open level is no weaker: the open level holds."""
        result = assess(stood(Level.P3, answers={"separation": "yes"}), rules)

        assert result.level == Level.P3
        assert [f.rule for f in result.floors] == [OPEN_CASE_LEVEL]

    @pytest.mark.parametrize(
        "evidence",
        [
            stood(Level.P2, answers={"threat_to_kill": "yes"}),
            stood(Level.P2, carried=frozenset({"strangulation"}), incidents=2),
            stood(Level.P2, answers={"stalking": "yes"}, carried=frozenset({"separation"})),
            stood(Level.P1, injuries="serious"),
            stood(Level.P2, incidents=3),
        ],
        ids=["red_flag", "carried_red_flag", "carried_combination", "injuries", "history_floor"],
    )
    def test_a_floor_keeps_the_level(self, rules: RuleSet, evidence: Evidence) -> None:
        """A red flag (from this report or carried), or the repeat-incidents floor, keeps the
        open level however low the total."""
        assert evidence.open_level is not None
        result = assess(evidence, rules)

        assert result.computed_level.rank < evidence.open_level.rank
        assert result.level == evidence.open_level
        assert OPEN_CASE_LEVEL in {f.rule for f in result.floors}

    def test_an_upward_override_still_holds(self, rules: RuleSet) -> None:
        """A level raised by an override is not stepped down by a report."""
        assert assess(stood(Level.P1, raised_level=Level.P1), rules).level == Level.P1

    def test_off_in_the_rules_keeps_the_level(self, rules: RuleSet) -> None:
        """With step_down_after_review off (before urgency-1.4.0) the open level holds."""
        history = rules.history.model_copy(update={"step_down_after_review": False})
        off = rules.model_copy(update={"history": history})

        assert assess(stood(Level.P2), off).level == Level.P2

    @given(evidence=evidences())
    def test_never_more_than_one_level(self, evidence: Evidence) -> None:
        """Whatever the evidence, an open case ends at most one level below its level."""
        result = assess(evidence, RULES)

        if evidence.open_level is not None:
            assert result.level.rank >= evidence.open_level.rank - 1
            if not evidence.open_level_stood:
                assert result.level.rank >= evidence.open_level.rank
