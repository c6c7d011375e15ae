"""Dormant cases (urgency-1.3.0): after its level's ``dormant_after_reviews`` reviews with
no new report or alarm, an open case goes dormant (no more reviews, work withdrawn, a
``triage.case_dormant`` record); a new report or alarm reactivates it with its history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from triage.events.outputs import CaseDormant, Decision, OutputEvent, QueueRecord
from triage.pipeline import deadline_book
from triage.pipeline.engine import Engine
from triage.pipeline.state import VictimState
from triage.scoring.rules import RuleSet, default_rules_path, load_rules
from triage.testing import after, make_alarm, make_closed, make_report

P3 = {"separation": "yes", "substance_abuse": "yes"}  # 4 points: P3, 30-day reviews


def run(
    engine: Engine, events: list[object], until: datetime
) -> tuple[VictimState, list[OutputEvent]]:
    """Step ``events`` (reports, alarms, closures) in order, then the clock to ``until``."""
    state: VictimState | None = None
    outputs: list[OutputEvent] = []
    for event in events:
        step = engine.step(state, event, event.time)  # type: ignore[arg-type,attr-defined]
        assert step.refusal is None
        state, outputs = step.state, [*outputs, *step.outputs]
    step = engine.step(state, None, until)
    assert step.state is not None
    return step.state, [*outputs, *step.outputs]


def reviews(outputs: list[OutputEvent]) -> list[QueueRecord]:
    return [o for o in outputs if isinstance(o, QueueRecord) and o.kind == "reassessment"]


def dormant(outputs: list[OutputEvent]) -> list[CaseDormant]:
    return [o for o in outputs if isinstance(o, CaseDormant)]


def test_the_packaged_rules_set_a_dormancy_per_level(rules: RuleSet) -> None:
    assert [rules.sla[lv].dormant_after_reviews for lv in sorted(rules.sla)] == [30, 13, 3, 2]


def test_dormant_after_the_configured_reviews_and_no_cadence_after(engine: Engine) -> None:
    """P3: reviews on days 30, 60, 90; dormant on day 120; nothing more in a year."""
    state, outputs = run(engine, [make_report(indicators=P3)], after(days=360))
    assert [r.time for r in reviews(outputs)] == [after(days=d) for d in (30, 60, 90)]
    (record,) = dormant(outputs)
    assert record.time == after(days=120)
    assert record.reviews == 3
    assert record.reason == "no_incident_after_reviews"
    assert record.level.value == "P3"
    assert record.last_incident_at == after()
    assert record.decision_id == state.decision_id
    assert record.work_closed  # the last review's work item, withdrawn
    assert record.rules_version == engine.rules.version
    assert state.open
    assert state.dormant_id == record.id
    assert state.assignments == ()
    assert deadline_book.wakeup(state) is None
    assert engine.rules.version == "urgency-1.4.0"


def test_a_new_report_resets_the_count(engine: Engine) -> None:
    """A report on day 50 restarts the reviews: dormant 120 days after it."""
    events = [make_report(indicators=P3), make_report(time=after(days=50), indicators={})]
    _, outputs = run(engine, events, after(days=200))
    assert [d.time for d in dormant(outputs)] == [after(days=170)]


def test_reactivation_keeps_history_and_the_repeat_floor(engine: Engine) -> None:
    """Two incidents, dormancy, then a third within 12 months: P2 by the MARAC floor."""
    events = [
        make_report(indicators=P3),
        make_report(time=after(days=10), indicators={}),
        make_report(time=after(days=150), indicators={}),
    ]
    state, outputs = run(engine, events, after(days=150, minutes=1))
    (record,) = dormant(outputs)
    decision = [o for o in outputs if isinstance(o, Decision)][-1]
    assert decision.reactivated_from == record.id
    assert decision.incidents_12m == 3
    assert "repeat_incidents_12m" in {f.rule for f in decision.floors}
    assert decision.level.value == "P2"
    (queued,) = [o for o in outputs if isinstance(o, QueueRecord) and o.time == decision.time]
    assert queued.reasons[0] == "reactivated"
    assert queued.kind == "new"
    assert state.dormant_id is None
    assert state.quiet_reviews == 0
    assert state.next_reassessment_at is not None


def test_an_alarm_reactivates_too(engine: Engine) -> None:
    state, outputs = run(
        engine,
        [make_report(indicators=P3), make_alarm(time=after(days=130))],
        after(days=130, minutes=1),
    )
    decision = [o for o in outputs if isinstance(o, Decision)][-1]
    assert decision.reactivated_from == dormant(outputs)[0].id
    assert state.dormant_id is None


def test_closed_cases_are_unaffected(engine: Engine) -> None:
    """A case a responder closed has no reviews and never goes dormant."""
    report = make_report(indicators=P3)
    closed = make_closed(time=after(days=5))
    state, outputs = run(engine, [report, closed], after(days=300))
    assert not state.open
    assert not dormant(outputs)
    assert not reviews(outputs)


def test_a_dormant_case_can_be_closed(engine: Engine) -> None:
    state, _ = run(engine, [make_report(indicators=P3)], after(days=121))
    step = engine.step(state, make_closed(time=after(days=122)), after(days=122))
    assert step.state is not None
    assert not step.state.open
    assert step.state.dormant_id is None


def test_old_rule_files_without_dormancy_behave_as_before(tmp_path: Path, engine: Engine) -> None:
    """A rule file without ``dormant_after_reviews`` (as before urgency-1.3.0): reviews
    every 30 days all year, never dormant."""
    text = default_rules_path().read_text(encoding="utf-8")
    old = "".join(
        line for line in text.splitlines(keepends=True) if "dormant_after_reviews =" not in line
    )
    path = tmp_path / "old.toml"
    path.write_text(old, encoding="utf-8")
    rules = load_rules(path)
    assert all(s.dormant_after_reviews is None for s in rules.sla.values())
    _, outputs = run(Engine(rules, engine.units), [make_report(indicators=P3)], after(days=361))
    assert len(reviews(outputs)) == 12
    assert not dormant(outputs)
