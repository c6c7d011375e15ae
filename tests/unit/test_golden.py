"""The golden-replay comparison: matching output records and describing differences."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from triage.pipeline.engine import Engine
from triage.replay.golden import compare_outputs
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord
from triage.scoring.rules import RuleSet
from triage.testing import after, decision_id_for, make_ack, make_report, record_of


def _outputs(engine: Engine, *records: LogRecord) -> list[LogRecord]:
    return list(replay_offline(records, engine))


def _edit(record: LogRecord, **changes: Any) -> LogRecord:
    body = orjson.loads(record.value)
    body.update(changes)
    return replace(record, value=orjson.dumps(body))


def _strangulation(engine: Engine) -> list[LogRecord]:
    return _outputs(engine, record_of(make_report(indicators={"strangulation": "yes"})))


class TestMatch:
    """Outputs that agree."""

    def test_identical_outputs_match(self, engine: Engine) -> None:
        """The same outputs compare equal and render as nothing."""
        outputs = _strangulation(engine)
        diff = compare_outputs(outputs, list(outputs))
        assert diff.ok
        assert diff.render() == ""

    def test_reordering_is_a_difference(self, engine: Engine) -> None:
        """The same records in another order are reported, from the first misplaced line."""
        outputs = _strangulation(engine)
        diff = compare_outputs(outputs, outputs[::-1])
        assert not diff.ok
        assert diff.records == ()
        assert diff.first_reordered == 1
        assert "another order, from line 1" in diff.render()


class TestChanges:
    """Outputs that differ."""

    def test_a_changed_field_names_case_record_field_and_values(self, engine: Engine) -> None:
        """A changed level shows the victim, the decision's source event, and old → new."""
        expected = _strangulation(engine)
        actual = [_edit(expected[0], level="P1"), *expected[1:]]
        diff = compare_outputs(expected, actual)
        (change,) = diff.records
        assert (change.status, change.case) == ("changed", "V-0001A2")
        assert [(f.path, f.expected, f.actual) for f in change.fields] == [("level", "P2", "P1")]
        text = diff.render()
        assert "case V-0001A2" in text
        assert "~ decision for evt-report-" in text
        assert "(expected line 1, actual line 1)" in text
        assert 'level: "P2" → "P1"' in text

    def test_list_items_are_named_by_their_factor(self, engine: Engine) -> None:
        """A contribution that changed is named by its factor, not by its position."""
        expected = _strangulation(engine)
        body = orjson.loads(expected[0].value)
        for item in body["contributions"]:
            if item["factor"] == "strangulation":
                item["points"] = 7
        actual = [replace(expected[0], value=orjson.dumps(body)), *expected[1:]]
        text = compare_outputs(expected, actual).render()
        assert "contributions[strangulation].points: 5 → 7" in text

    def test_missing_and_unexpected_records(self, engine: Engine) -> None:
        """A record only in the expectations is missing; one only in the replay is unexpected."""
        report = make_report(indicators={"children_present": "yes"})
        expected = _outputs(engine, record_of(report))
        assert len(expected) == 3  # decision, standard, child-protection
        actual = expected[:2]
        extra = _outputs(engine, record_of(make_report(victim_ref="V-0002B3")))
        diff = compare_outputs(expected, actual + extra)
        statuses = sorted((r.status, r.case) for r in diff.records)
        assert statuses == [
            ("missing", "V-0001A2"),
            ("unexpected", "V-0002B3"),
            ("unexpected", "V-0002B3"),
        ]
        text = diff.render()
        assert "- queue record child-protection/new at 2026-01-05T10:00:00Z" in text
        assert "1 missing, 2 unexpected (expected 3 records, got 4)" in text

    def test_a_new_rule_version_matches_by_case_not_by_id(
        self, engine: Engine, rules: RuleSet
    ) -> None:
        """Under a new rule-set version every id changes, yet records still pair up by case,
        and the version-derived ids collapse into one line."""
        other = Engine(rules.model_copy(update={"version": "urgency-9.9.9"}), engine.units)
        report = record_of(make_report(indicators={"weapon": "yes"}))
        diff = compare_outputs(_outputs(engine, report), _outputs(other, report))
        assert {r.status for r in diff.records} == {"changed"}
        text = diff.render()
        assert (
            'rules_version (and the ids derived from it): "urgency-1.4.0" → "urgency-9.9.9"' in text
        )
        assert "decision_id" not in text

    def test_dead_letters_are_matched_by_content(self, engine: Engine) -> None:
        """Two dead letters pair with their own expectations, whatever their order of ids."""
        bad = [
            LogRecord("dv.reports.v1", "V-0001A2", after(minutes=m), raw, {})
            for m, raw in ((1, b"[1]"), (2, b"not json"))
        ]
        expected = _outputs(engine, *bad)
        assert compare_outputs(expected, list(expected)).ok
        changed = [expected[0], _edit(expected[1], detail="other detail")]
        (diff,) = compare_outputs(expected, changed).records
        assert diff.case == "V-0001A2"
        assert diff.what.startswith("dead letter of a dv.reports.v1 record at 2026-01-05T10:02")

    def test_lifecycle_records_stay_paired(self, engine: Engine) -> None:
        """An escalation that appears because an acknowledgement came late is unexpected."""
        report = make_report(indicators={"immediate_danger": "yes"})
        on_time = make_ack(
            queue="immediate", decision_id=decision_id_for(report), time=after(minutes=3)
        )
        late = make_ack(
            queue="immediate", decision_id=decision_id_for(report), time=after(minutes=9)
        )
        expected = _outputs(engine, record_of(report), record_of(on_time))
        actual = _outputs(engine, record_of(report), record_of(late))
        diff = compare_outputs(expected, actual)
        assert [(r.status, r.what) for r in diff.records] == [
            ("unexpected", "escalation immediate/ack due 2026-01-05T10:05:00Z")
        ]
