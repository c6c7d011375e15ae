"""Rule-change impact: one log under two rule sets, compared by victim and source event."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from triage.analysis.capture import capture
from triage.analysis.compare import (
    compare_log,
    responder_times,
    retarget,
    sized_teams,
)
from triage.analysis.views import comparison_html, comparison_markdown
from triage.cli import cli
from triage.demo.responders import DEFAULT_TEAMS
from triage.events.base import decision_id_of, stable_id
from triage.events.outputs import QueueRecord
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.replay.offline import replay_offline, to_log_record
from triage.replay.records import LogRecord, write_log
from triage.scoring.rules import load_rules
from triage.testing import after, decision_id_for, make_ack, make_override, make_report, record_of
from triage.topics import Topics

CANDIDATE = Path(__file__).parents[2] / "examples" / "rules" / "urgency-v1-coercive-control.toml"


@pytest.fixture(scope="module")
def candidate(engine: Engine) -> Engine:
    """The example candidate rule set: coercive control and stalking weigh more."""
    return Engine(load_rules(CANDIDATE), engine.units)


@pytest.fixture(scope="module")
def quarter(engine: Engine) -> list[LogRecord]:
    """A small synthetic quarter (300 victims, 90 days) with a few malformed records."""
    config = GeneratorConfig(victims=300, days=90, start=date(2026, 1, 1), seed=3, bad_rate=0.01)
    return list(generate_log(config, engine))


def _controlled_case() -> list[LogRecord]:
    """Stalking and coercive control (P3 today, P2 under the candidate), acknowledged in the
    follow-up queue, then an override that raises it to P2."""
    report = make_report(indicators={"stalking": "yes", "coercive_control": "yes"})
    decision = decision_id_for(report)
    ack = make_ack(queue="follow-up", decision_id=decision, time=after(minutes=30))
    upgrade = make_override(decision_id=decision, new_level="P2", time=after(hours=2))
    return [record_of(report), record_of(ack), record_of(upgrade)]


class TestCapture:
    """The analyses' replay loop."""

    def test_same_outputs_as_replay_offline(self, quarter: list[LogRecord], engine: Engine) -> None:
        """Capturing a log gives the records ``replay --offline`` writes, in the same order."""
        run = capture(quarter, engine)
        topics = Topics()
        captured = [
            to_log_record(o, topics)
            for o in (
                *run.outputs.decisions,
                *run.outputs.queue_records,
                *run.outputs.escalations,
                *run.outputs.rejected_overrides,
                *run.outputs.dead_letters,
            )
        ]
        offline = list(replay_offline(quarter, engine))
        assert sorted(r.to_line() for r in captured) == sorted(r.to_line() for r in offline)
        assert run.summary.events == len(quarter)


class TestRetarget:
    """Lifecycle events follow their decision into the other rule set."""

    def test_decision_ids_move_to_the_new_version(self) -> None:
        """Acknowledgements and overrides name B's decision for the same source event."""
        records = _controlled_case()
        moved = retarget(records, "urgency-1.4.0", "urgency-9")
        report = orjson.loads(records[0].value)
        for record in moved[1:]:
            assert orjson.loads(record.value)["decision_id"] == decision_id_of(
                report["source"], report["id"], "urgency-9"
            )
        assert moved[0] == records[0]

    def test_same_version_changes_nothing(self) -> None:
        """Retargeting to the same version returns the records as they are."""
        records = _controlled_case()
        assert retarget(records, "urgency-1.4.0", "urgency-1.4.0") == records

    def test_unknown_decisions_and_bad_bytes_are_left_alone(self) -> None:
        """A decision id no source event explains, and a record that is not JSON, stay as is."""
        stray = record_of(make_ack(decision_id=stable_id("D", "elsewhere", "urgency-1.4.0")))
        junk = LogRecord("dv.case-updates.v1", "V-0001A2", after(minutes=1), b"\xff", {})
        assert retarget([stray, junk], "urgency-1.4.0", "urgency-9") == [stray, junk]


class TestCompare:
    """``compare_log``: what changes, by case."""

    def test_a_case_that_changes_level_and_queue(self, engine: Engine, candidate: Engine) -> None:
        """The report moves P3 → P2 and follow-up → high-risk; decisions match by source event."""
        result = compare_log(_controlled_case(), engine, candidate)
        (change,) = result.changes
        assert (change.victim_ref, change.level_a, change.level_b) == ("V-0001A2", "P3", "P2")
        assert (change.queues_a, change.queues_b) == (("follow-up",), ("high-risk",))
        assert change.direction == "up"
        assert result.matrix == {("P3", "P2"): 1}
        assert result.load["follow-up"] == (1, 0)
        assert result.load["high-risk"] == (1, 1)

    def test_an_override_refused_under_b_is_one_sided(
        self, engine: Engine, candidate: Engine
    ) -> None:
        """Raising to P2 is an upgrade under A, not under B (already P2): A alone decides it."""
        result = compare_log(_controlled_case(), engine, candidate)
        assert [(d.source_event_type, d.level) for d in result.only_a] == [("case.override", "P2")]
        assert result.only_b == ()

    def test_same_rules_change_nothing(self, quarter: list[LogRecord], engine: Engine) -> None:
        """A log compared with itself: no change, a diagonal matrix, equal loads and times."""
        result = compare_log(quarter, engine, engine)
        assert result.changes == ()
        assert all(a == b for a, b in result.matrix)
        assert all(a == b for a, b in result.load.values())
        assert all(ta == tb for ta, tb in result.response.values())

    def test_candidate_only_raises_levels(
        self, quarter: list[LogRecord], engine: Engine, candidate: Engine
    ) -> None:
        """Higher weights and one more floor move cases up, never down, and keep every case."""
        result = compare_log(quarter, engine, candidate)
        assert result.changes
        assert {c.direction for c in result.changes} <= {"up", "same"}
        assert sum(result.matrix.values()) + len(result.only_a) == result.decisions_a
        figures = orjson.loads(orjson.dumps(result.to_dict()))
        assert figures["changed"]["decisions"] == len(result.changes)
        assert set(figures["time_to_action"]) == {"P1", "P2", "P3", "P4"}

    def test_renderings(self, engine: Engine, candidate: Engine) -> None:
        """Markdown and HTML show the change, the matrix, loads and the responder model."""
        result = compare_log(_controlled_case(), engine, candidate)
        text = comparison_markdown(result, log_name="case.jsonl")
        assert "| V-0001A2 |" in text
        assert "P3 → P2" in text
        assert "## Transition matrix" in text
        assert "## Time to action under the responder capacity model" in text
        page = comparison_html(result, log_name="case.jsonl")
        assert page.startswith("<!DOCTYPE html>")
        assert "<script" not in page


class TestResponderModel:
    """Time to action under the demo's responder pool."""

    def test_sized_teams_carry_the_load(self, quarter: list[LogRecord], engine: Engine) -> None:
        """Sized teams are never smaller than the demo's, and grow with the work."""
        records = capture(quarter, engine).outputs.queue_records
        teams = sized_teams(records)
        assert all(teams[q] >= n for q, n in DEFAULT_TEAMS.items())
        tenfold = sized_teams(
            [r.model_copy(update={"id": f"{r.id}{n}"}) for r in records for n in range(10)]
        )
        assert sum(tenfold.values()) > sum(teams.values())

    def test_p1_first_within_a_team(self) -> None:
        """With one responder, a P1 arriving behind P4 work is acted on sooner than the P4s."""

        def record(n: int, level: str, minutes: float) -> QueueRecord:
            when = after(minutes=minutes)
            return QueueRecord(
                id=f"Q-{n}",
                source="urn:test",
                time=when,
                victim_ref=f"V-000{n}",
                decision_id="D-" + "0" * 24,
                kind="new",
                queue="child-protection",
                level=level,
                unit="PN-ARRAS",
                unit_flagged=False,
                ack_due=after(minutes=minutes + 60),
                action_due=after(minutes=minutes + 20),
                rules_version="x",
                reasons=(),
            )

        records = [record(1, "P4", 0), record(2, "P4", 1), record(3, "P1", 2)]
        times = responder_times(records, {"child-protection": 1})
        assert times["P1"].p50_s is not None
        assert times["P4"].p90_s is not None
        assert times["P1"].p50_s < times["P4"].p90_s
        assert (times["P1"].records, times["P4"].records) == (1, 2)
        assert times["P1"].on_time == 0.0  # it waited for the first P4 to be done


class TestCompareCommand:
    """``triage compare``."""

    def test_json_for_machines(
        self, quarter: list[LogRecord], candidate: Engine, tmp_path: Path
    ) -> None:
        """With --format json the command prints every figure, versions first."""
        log = tmp_path / "q.jsonl"
        write_log(log, quarter)
        packaged = Path(__file__).parents[2] / "triage" / "scoring" / "data" / "urgency-v1.toml"
        result = CliRunner().invoke(
            cli,
            [
                "compare",
                str(log),
                "--rules",
                str(packaged),
                "--rules",
                str(CANDIDATE),
                "--format",
                "json",
                "--teams",
                "demo",
            ],
        )
        assert result.exit_code == 0, result.output
        figures = orjson.loads(result.output)
        assert figures["rules"] == {"a": "urgency-1.4.0", "b": candidate.rules.version}
        assert figures["teams"] == dict(DEFAULT_TEAMS)

    def test_two_rule_sets_are_needed(self, tmp_path: Path) -> None:
        """One --rules is a usage mistake (exit 2)."""
        log = tmp_path / "q.jsonl"
        log.write_text("")
        result = CliRunner().invoke(cli, ["compare", str(log), "--rules", str(CANDIDATE)])
        assert result.exit_code == 2

    def test_bad_teams_are_refused(self, tmp_path: Path) -> None:
        """A team for an unknown queue is a usage mistake naming the queues."""
        log = tmp_path / "q.jsonl"
        log.write_text("")
        result = CliRunner().invoke(
            cli,
            [
                "compare",
                str(log),
                "--rules",
                str(CANDIDATE),
                "--rules",
                str(CANDIDATE),
                "--teams",
                "bakery=3",
            ],
        )
        assert result.exit_code == 2
        assert "immediate" in result.output
