"""Golden replays: every hand-written scenario gives exactly its committed outputs.

On a difference the test prints, case by case, which record and which field
changed (expected → actual). After an intended change, read that diff, then
regenerate with ``python -m tests.replay.make_scenarios --expected`` (or
``triage replay scenarios/X.jsonl --offline -o expected/X.jsonl`` for one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tests.replay.make_scenarios import ALL, EXPECTED, SCENARIOS
from triage.cli import cli
from triage.pipeline.engine import Engine
from triage.replay.golden import compare_outputs
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord, read_log, write_log

NAMES = sorted(ALL)


def _expected(name: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in read_log(EXPECTED / f"{name}.jsonl")]


def _of_type(name: str, kind: str) -> list[dict[str, Any]]:
    return [body for body in _expected(name) if body["type"] == f"triage.{kind}"]


class TestGoldenReplays:
    """Offline replay of each scenario against its expected outputs."""

    @pytest.mark.parametrize("name", NAMES)
    def test_outputs_match_the_expected_ones(self, name: str, engine: Engine) -> None:
        """Replaying the scenario gives its expected outputs, record for record and in order."""
        actual = list(replay_offline(read_log(SCENARIOS / f"{name}.jsonl"), engine))
        diff = compare_outputs(list(read_log(EXPECTED / f"{name}.jsonl")), actual)
        if not diff.ok:
            pytest.fail(f"golden replay {name}:\n{diff.render()}", pytrace=False)

    @pytest.mark.parametrize("name", NAMES)
    def test_committed_log_is_what_the_script_writes(self, name: str, tmp_path: Path) -> None:
        """The committed scenario log is byte for byte what make_scenarios builds today."""
        fresh = tmp_path / f"{name}.jsonl"
        write_log(fresh, sorted(ALL[name](), key=lambda r: r.timestamp))
        assert fresh.read_bytes() == (SCENARIOS / f"{name}.jsonl").read_bytes()


class TestScenarioMeaning:
    """The expectations say what each scenario is about (so a blind regeneration shows)."""

    def test_strangulation_alone_is_high_risk_by_its_floor(self) -> None:
        """Strangulation alone scores below P2 and the red flag lifts it to P2."""
        (decision,) = _of_type("strangulation_alone", "decision")
        assert (decision["computed_level"], decision["level"]) == ("P3", "P2")
        assert [f["rule"] for f in decision["floors"]] == ["strangulation"]

    def test_threat_to_kill_with_weapon_is_danger_now(self) -> None:
        """A threat to kill with a weapon goes to the immediate queue as P1."""
        (decision,) = _of_type("threat_to_kill_plus_weapon", "decision")
        assert decision["level"] == "P1"
        assert [q["queue"] for q in decision["queues"]] == ["immediate"]

    def test_third_incident_gets_the_repeat_floor(self) -> None:
        """The third report in a year is P2 by the three-incidents floor, not by its score."""
        levels = [d["level"] for d in _of_type("third_incident_within_a_year", "decision")]
        assert levels == ["P4", "P4", "P2"]
        third = _of_type("third_incident_within_a_year", "decision")[-1]
        assert "repeat_incidents_12m" in [f["rule"] for f in third["floors"]]

    @pytest.mark.parametrize(
        ("name", "queues"),
        [("tgd_alarm", ["immediate"]), ("bar_zone_breach", ["immediate", "judicial"])],
    )
    def test_device_alarm_is_p1(self, name: str, queues: list[str]) -> None:
        """A device alarm makes the case P1 at once (a bracelet breach also goes to judicial)."""
        alarm = [d for d in _of_type(name, "decision") if d["kind"] == "alarm"]
        assert [(d["level"], [q["queue"] for q in d["queues"]]) for d in alarm] == [("P1", queues)]

    def test_downgrade_needs_a_second_reviewer(self) -> None:
        """A downgrade by its author alone is rejected; with a second reviewer it applies."""
        (rejected,) = _of_type("downgrade_without_second_reviewer", "override_rejected")
        assert rejected["reason_code"] == "missing_second_reviewer"
        override = [
            d for d in _of_type("downgrade_without_second_reviewer", "decision") if d["override"]
        ]
        assert [(d["level"], d["override"]["second_reviewer"]) for d in override] == [
            ("P3", "R-02")
        ]

    def test_late_acknowledgement_escalates_both_deadlines(self) -> None:
        """Acknowledged after 8 minutes and acted on after 18: two escalations, at the deadlines."""
        escalations = _of_type("late_acknowledgement_escalates", "escalation")
        assert [(e["stage"], e["deadline"]) for e in escalations] == [
            ("ack", "2026-01-05T10:05:00Z"),
            ("action", "2026-01-05T10:15:00Z"),
        ]

    def test_children_present_adds_child_protection(self) -> None:
        """Children present sends the case to child protection beside its primary queue."""
        queues = [q["queue"] for q in _of_type("children_present", "queue_record")]
        assert queues == ["follow-up", "child-protection"]

    def test_unknown_commune_goes_to_the_departement_desk_flagged(self) -> None:
        """An unknown commune is routed to the default unit and flagged."""
        (decision,) = _of_type("unknown_commune", "decision")
        assert (decision["unit"], decision["unit_flagged"]) == ("DEP62-DEFAULT", True)

    def test_malformed_records_are_all_dead_lettered(self) -> None:
        """Each malformed record becomes one dead letter, with its own reason code."""
        reasons = sorted(d["reason"] for d in _of_type("malformed_records", "dead_letter"))
        assert reasons == sorted(
            [
                "invalid_json",
                "invalid_json",
                "invalid_utf8",
                "not_an_object",
                "unknown_event_type",
                "unsupported_schema_version",
                "wrong_topic",
                "schema_violation",
                "naive_timestamp",
                "future_timestamp",
                "missing_key",
                "key_mismatch",
                "unknown_case",
                "unknown_decision",
            ]
        )


class TestReplayExpectOption:
    """``triage replay FILE --offline --expect EXPECTED``."""

    def test_exit_zero_on_a_match(self) -> None:
        """A scenario replayed against its own expectations exits 0 and says so."""
        name = "late_acknowledgement_escalates"
        result = CliRunner().invoke(
            cli,
            [
                "replay",
                str(SCENARIOS / f"{name}.jsonl"),
                "--offline",
                "--json",
                "--expect",
                str(EXPECTED / f"{name}.jsonl"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "outputs match" in result.stderr

    def test_exit_one_with_a_readable_diff(self, tmp_path: Path) -> None:
        """A changed expectation makes the command exit 1 and name the case, record and field."""
        name = "strangulation_alone"
        records = list(read_log(EXPECTED / f"{name}.jsonl"))
        body = orjson.loads(records[0].value)
        body["level"] = "P1"
        edited = tmp_path / "expected.jsonl"
        write_log(edited, [LogRecord(**{**_fields(records[0]), "value": orjson.dumps(body)})])
        result = CliRunner().invoke(
            cli,
            ["replay", str(SCENARIOS / f"{name}.jsonl"), "--offline", "--expect", str(edited)],
        )
        assert result.exit_code == 1
        assert "case V-SC01" in result.output
        assert 'level: "P1" → "P2"' in result.output
        assert "queue record high-risk/new at 2026-01-05T10:00:00Z" in result.output
        assert "outputs differ" in result.stderr

    def test_expect_needs_offline(self) -> None:
        """--expect without --offline is a usage mistake (exit 2)."""
        name = "strangulation_alone"
        result = CliRunner().invoke(
            cli,
            [
                "replay",
                str(SCENARIOS / f"{name}.jsonl"),
                "--expect",
                str(EXPECTED / f"{name}.jsonl"),
            ],
        )
        assert result.exit_code == 2


def _fields(record: LogRecord) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "key": record.key,
        "timestamp": record.timestamp,
        "value": record.value,
        "headers": record.headers,
    }
