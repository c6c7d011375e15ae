"""The rule-set file: loading, validation errors that name the field, spans, levels."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from triage.errors import ConfigError, RulesError
from triage.events.base import Level
from triage.events.inputs import INDICATOR_NAMES
from triage.scoring.rules import RuleSet, Span, default_rules_path, load_rules

PACKAGED = default_rules_path().read_text(encoding="utf-8")


def rules_file(tmp_path: Path, old: str, new: str, *, text: str = PACKAGED) -> Path:
    """A copy of the packaged rules with one textual change (which must apply)."""
    assert old in text, f"fixture text {old!r} not found in the packaged rules"
    path = tmp_path / "rules.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


class TestLoadRules:
    def test_packaged_file_loads(self) -> None:
        """The rule set shipped in the package loads and carries its version."""
        rules = load_rules()

        assert rules.version == "urgency-1.4.0"
        assert set(rules.sla) == set(Level)

    def test_explicit_path_is_the_same_as_default(self) -> None:
        """Loading the packaged file by path gives the same rule set as the default."""
        assert load_rules(default_rules_path()) == load_rules()

    def test_packaged_thresholds_rise(self, rules: RuleSet) -> None:
        """The packaged thresholds rise from P3 to P1."""
        assert rules.thresholds["P3"] < rules.thresholds["P2"] < rules.thresholds["P1"]

    def test_packaged_weights_cover_every_indicator_and_are_not_negative(
        self, rules: RuleSet
    ) -> None:
        """Every packaged weight names a known indicator and is zero or more."""
        assert set(rules.weights) == set(INDICATOR_NAMES)
        assert all(points >= 0 for points in rules.weights.values())

    def test_red_flags_from_the_design_are_floors(self, rules: RuleSet) -> None:
        """Strangulation, threat to kill, weapon and order breach each set a floor of P2 or more."""
        single = {f.all[0]: f.level for f in rules.floors if len(f.all) == 1}

        for flag in ("strangulation", "threat_to_kill", "weapon", "order_breach"):
            assert single[flag].rank >= Level.P2.rank

    def test_both_alarms_are_p1(self, rules: RuleSet) -> None:
        """Both device alarms map to P1."""
        assert rules.alarms == {"tgd_pressed": Level.P1, "bar_zone_breach": Level.P1}

    def test_supervisor_never_a_routing_target(self, rules: RuleSet) -> None:
        """The supervisor queue is listed (for escalations) but no level or fan-out routes to it."""
        assert "supervisor" in rules.queues
        assert all(s.queue != "supervisor" for s in rules.sla.values())
        assert all(f.queue != "supervisor" for f in rules.fanout)

    def test_thresholds_not_rising(self, tmp_path: Path) -> None:
        """Thresholds that do not rise are refused, naming `thresholds`."""
        path = rules_file(tmp_path, "P2 = 9", "P2 = 20")

        with pytest.raises(RulesError, match="thresholds"):
            load_rules(path)

    def test_missing_threshold(self, tmp_path: Path) -> None:
        """A missing threshold is refused and the level is named."""
        path = rules_file(tmp_path, "P1 = 20\n", "")

        with pytest.raises(RulesError, match=r"thresholds.*P1"):
            load_rules(path)

    def test_unknown_indicator_in_weights(self, tmp_path: Path) -> None:
        """A weight for an indicator that does not exist is refused, naming `weights` and it."""
        path = rules_file(tmp_path, "weapon = 5\n", "weapon = 5\nhoroscope = 3\n")

        with pytest.raises(RulesError, match=r"weights.*horoscope"):
            load_rules(path)

    def test_negative_weight(self, tmp_path: Path) -> None:
        """A negative weight is refused, naming the weight."""
        path = rules_file(tmp_path, "weapon = 5", "weapon = -5")

        with pytest.raises(RulesError, match=r"weights\.weapon"):
            load_rules(path)

    def test_unknown_indicator_in_floor(self, tmp_path: Path) -> None:
        """A floor naming an unknown indicator is refused, naming the floor."""
        path = rules_file(tmp_path, 'all = ["strangulation"]', 'all = ["strangle"]')

        with pytest.raises(RulesError, match=r"floors\.2\.all"):
            load_rules(path)

    def test_missing_sla_level(self, tmp_path: Path) -> None:
        """A rule set without a service level for P4 is refused, naming `sla` and P4."""
        before, after = PACKAGED.split("[sla.P4]")
        path = tmp_path / "rules.toml"
        path.write_text(before + "[[fanout]]" + after.split("[[fanout]]", 1)[1], encoding="utf-8")

        with pytest.raises(RulesError, match=r"sla.*P4"):
            load_rules(path)

    def test_bad_duration(self, tmp_path: Path) -> None:
        """A duration written in words is refused, naming the SLA field."""
        path = rules_file(tmp_path, 'ack = "5m"', 'ack = "5 minutes"')

        with pytest.raises(RulesError, match=r"sla\.P1\.ack"):
            load_rules(path)

    def test_zero_duration(self, tmp_path: Path) -> None:
        """A zero duration is refused: a deadline must lie in the future."""
        path = rules_file(tmp_path, 'ack = "5m"', 'ack = "0m"')

        with pytest.raises(RulesError, match=r"sla\.P1\.ack.*positive"):
            load_rules(path)

    def test_working_days_reassessment(self, tmp_path: Path) -> None:
        """A re-assessment cadence in working days is refused, naming the field."""
        path = rules_file(tmp_path, 'reassess = "30d"', 'reassess = "2wd"')

        with pytest.raises(RulesError, match=r"sla\.P3\.reassess"):
            load_rules(path)

    def test_review_to_the_danger_now_queue(self, tmp_path: Path) -> None:
        """A review routed to the P1 (danger-now) queue is refused, naming the level."""
        path = rules_file(tmp_path, 'review_queue = "high-risk"', 'review_queue = "immediate"')

        with pytest.raises(RulesError, match=r"sla\.P1\.review_queue.*danger-now"):
            load_rules(path)

    def test_p1_review_needs_a_review_queue(self, tmp_path: Path) -> None:
        """Without review_queue a P1 review would go to immediate: refused."""
        path = rules_file(tmp_path, 'review_queue = "high-risk"\n', "")

        with pytest.raises(RulesError, match="danger-now"):
            load_rules(path)

    def test_review_ack_without_review_action(self, tmp_path: Path) -> None:
        """The two review deadlines go together."""
        path = rules_file(tmp_path, 'review_action = "7d"\n', "")

        with pytest.raises(RulesError, match=r"sla\.P3.*review_ack and review_action"):
            load_rules(path)

    def test_review_longer_than_the_cadence(self, tmp_path: Path) -> None:
        """A review must end before the next one is due."""
        path = rules_file(tmp_path, 'review_action = "48h"', 'review_action = "72h"')

        with pytest.raises(RulesError, match=r"sla\.P1.*shorter than the re-assessment"):
            load_rules(path)

    def test_rule_sets_without_reviews_still_load(self, tmp_path: Path) -> None:
        """A rule set written before reviews (no review_*) loads: re-assessments then keep
        the level's queue and deadlines."""
        text = "\n".join(line for line in PACKAGED.splitlines() if not line.startswith("review_"))
        path = tmp_path / "old.toml"
        path.write_text(text, encoding="utf-8")

        rules = load_rules(path)

        assert not any(sla.reviewed for sla in rules.sla.values())
        assert rules.sla[Level.P1].review_target == "immediate"

    def test_step_down_needs_the_open_level(self, tmp_path: Path) -> None:
        """Stepping an open level down one level means nothing without keep_open_level."""
        path = rules_file(tmp_path, "keep_open_level = true", "keep_open_level = false")

        with pytest.raises(RulesError, match=r"history: .*step_down_after_review needs"):
            load_rules(path)

    def test_rule_sets_without_step_down_still_load(self, tmp_path: Path) -> None:
        """A rule set written before urgency-1.4.0 (no step_down_after_review) loads with
        the open level kept whatever the new report says."""
        path = rules_file(tmp_path, "step_down_after_review = true", "")

        assert load_rules(path).history.step_down_after_review is False

    def test_packaged_rules_step_down_after_review(self, rules: RuleSet) -> None:
        """The packaged rules keep the open level, and let a weaker report lower it a step."""
        assert (rules.history.keep_open_level, rules.history.step_down_after_review) == (
            True,
            True,
        )

    def test_packaged_combination_floors(self, rules: RuleSet) -> None:
        """The professional-judgement combinations of urgency-1.4.0 are P2 floors."""
        pairs = {frozenset(f.all): f.level for f in rules.floors if len(f.all) >= 2}

        for pair in (
            {"separation", "stalking"},
            {"separation", "escalation"},
            {"stalking", "fears_being_killed"},
            {"coercive_control", "fears_being_killed"},
            {"separation", "coercive_control"},
        ):
            assert pairs[frozenset(pair)] == Level.P2, pair

    def test_packaged_on_time_targets(self, rules: RuleSet) -> None:
        """Every level of the packaged rules has an on-time target: 95 % for P1, 90 % else."""
        targets = {lv.value: rules.sla[lv].on_time_target for lv in Level}

        assert targets == {"P1": 0.95, "P2": 0.9, "P3": 0.9, "P4": 0.9}

    @pytest.mark.parametrize("bad", ["0", "1.5", "-0.9", "nan", '"90%"'])
    def test_on_time_target_is_a_share(self, tmp_path: Path, bad: str) -> None:
        """An on-time target outside (0, 1] (or not a number) is refused, naming it."""
        path = rules_file(tmp_path, "on_time_target = 0.95", f"on_time_target = {bad}")

        with pytest.raises(RulesError, match=r"sla\.P1\.on_time_target"):
            load_rules(path)

    def test_rule_sets_without_targets_still_load(self, tmp_path: Path) -> None:
        """A rule set without on_time_target loads: the levels have no target."""
        lines = PACKAGED.splitlines()
        text = "\n".join(line for line in lines if not line.startswith("on_time_target"))
        path = tmp_path / "old.toml"
        path.write_text(text, encoding="utf-8")

        rules = load_rules(path)

        assert all(sla.on_time_target is None for sla in rules.sla.values())

    def test_supervisor_as_primary_queue(self, tmp_path: Path) -> None:
        """Routing a level to the supervisor queue is refused: it is for escalations."""
        path = rules_file(tmp_path, 'queue = "immediate"', 'queue = "supervisor"')

        with pytest.raises(RulesError, match="supervisor"):
            load_rules(path)

    def test_supervisor_error_names_the_field(self, tmp_path: Path) -> None:
        """The supervisor refusal names the field that routes there (sla.P1.queue)."""
        path = rules_file(tmp_path, 'queue = "immediate"', 'queue = "supervisor"')

        with pytest.raises(RulesError, match=r"sla\.P1\.queue"):
            load_rules(path)

    def test_supervisor_as_fanout(self, tmp_path: Path) -> None:
        """Fanning out to the supervisor queue is refused too."""
        path = rules_file(tmp_path, 'queue = "judicial"', 'queue = "supervisor"')

        with pytest.raises(RulesError, match="supervisor"):
            load_rules(path)

    def test_unknown_key(self, tmp_path: Path) -> None:
        """An unexpected key is refused and named (typos do not pass silently)."""
        path = rules_file(tmp_path, "[history]\n", "[history]\nwindow_dayz = 3\n")

        with pytest.raises(RulesError, match=r"history\.window_dayz"):
            load_rules(path)

    def test_error_counts_the_other_problems(self, tmp_path: Path) -> None:
        """With several problems, the message names the first and counts the rest."""
        path = rules_file(
            tmp_path, "pregnancy = 2\nescalation = 3", "pregnancy = -2\nescalation = -3"
        )

        with pytest.raises(RulesError, match=r"\(and 1 more\)"):
            load_rules(path)

    def test_injury_points_must_not_fall(self, tmp_path: Path) -> None:
        """Injury points that fall from minor to serious are refused, naming `injuries`."""
        path = rules_file(tmp_path, "minor = 1\nserious = 4", "minor = 5\nserious = 0")

        with pytest.raises(RulesError, match="injuries"):
            load_rules(path)

    def test_toml_syntax_error(self, tmp_path: Path) -> None:
        """A TOML syntax error is a RulesError that says the file is not valid TOML."""
        path = rules_file(tmp_path, "[thresholds]", "[thresholds")

        with pytest.raises(RulesError, match="not valid TOML"):
            load_rules(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a RulesError naming the path, not an OSError."""
        path = tmp_path / "absent.toml"

        with pytest.raises(RulesError, match=r"absent\.toml.*cannot read"):
            load_rules(path)

    def test_rules_error_is_a_config_error(self, tmp_path: Path) -> None:
        """Callers that catch ConfigError also catch a bad rule set."""
        with pytest.raises(ConfigError):
            load_rules(tmp_path / "absent.toml")

    def test_file_not_utf8(self, tmp_path: Path) -> None:
        """A rules file that is not UTF-8 is a RulesError, not a UnicodeDecodeError."""
        path = tmp_path / "latin1.toml"
        path.write_bytes(PACKAGED.encode("utf-8") + "# caf\xe9\n".encode("latin-1"))

        with pytest.raises(RulesError):
            load_rules(path)


ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = [default_rules_path(), *sorted((ROOT / "examples" / "rules").glob("*.toml"))]
CITED_FILE = re.compile(r"(?<![\w.-])((?:\.\./|[\w-]+/)*[\w.-]+\.(?:md|toml|csv|json|ya?ml))\b")
"""A file named in a comment: ``README.md``, ``docs/runbook.md``, ``../shared/x.md``."""
ABSENT_DOCUMENTS = ("DESIGN §", "shared/")
"""Documents older comments cited that this repository does not hold."""


class TestCitations:
    @pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
    def test_every_cited_file_is_in_the_repository(self, path: Path) -> None:
        """A rule-set file's comments cite only files this repository holds, by a path
        inside it (a reader of the packaged rules must be able to follow them)."""
        comments = [line for line in path.read_text(encoding="utf-8").splitlines() if "#" in line]
        cited = {m for line in comments for m in CITED_FILE.findall(line.split("#", 1)[1])}

        outside = sorted(c for c in cited if not (ROOT / c).resolve().is_relative_to(ROOT))
        missing = sorted(c for c in cited if not (ROOT / c).is_file())
        absent = sorted(d for d in ABSENT_DOCUMENTS for line in comments if d in line)

        assert (outside, missing, absent) == ([], [], [])

    def test_the_packaged_rule_set_keeps_its_version(self) -> None:
        """Editing comments changes no rule, so the version (in every decision id) stays."""
        assert load_rules().version == "urgency-1.4.0"


class TestSpan:
    @pytest.mark.parametrize(
        ("text", "delta"),
        [
            ("30s", timedelta(seconds=30)),
            ("5m", timedelta(minutes=5)),
            ("72h", timedelta(hours=72)),
            ("7d", timedelta(days=7)),
        ],
    )
    def test_calendar_units(self, text: str, delta: timedelta) -> None:
        """Seconds, minutes, hours and days become an exact timedelta."""
        span = Span.model_validate(text)

        assert (span.delta, span.working_days, span.text) == (delta, None, text)

    def test_working_days(self) -> None:
        """``wd`` is a count of working days, not a timedelta."""
        span = Span.model_validate("2wd")

        assert (span.delta, span.working_days) == (None, 2)

    @pytest.mark.parametrize("text", ["5 minutes", "5", "m5", "-5m", "1.5h", "5M", ""])
    def test_refuses_other_forms(self, text: str) -> None:
        """Anything but a whole number and one of s, m, h, d, wd is refused."""
        with pytest.raises(ValueError, match="not a duration"):
            Span.model_validate(text)

    def test_refuses_a_table(self) -> None:
        """A table instead of a duration string is refused."""
        with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
            Span.model_validate({"text": "junk"})


class TestLevelFor:
    @pytest.mark.parametrize(
        ("total", "level"),
        [
            (0, Level.P4),
            (3, Level.P4),
            (4, Level.P3),
            (8, Level.P3),
            (9, Level.P2),
            (15, Level.P2),
            (20, Level.P1),
            (99, Level.P1),
        ],
    )
    def test_thresholds_are_inclusive(self, rules: RuleSet, total: int, level: Level) -> None:
        """A total equal to a threshold reaches that level."""
        assert rules.level_for(total) == level

    def test_there_is_no_level_below_p4(self, rules: RuleSet) -> None:
        """A total of zero still gets a level (P4): there is no "no risk"."""
        assert rules.sla[rules.level_for(0)].queue == "standard"
