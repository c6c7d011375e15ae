"""The engine: reports, alarms, responders' updates, SLA breaches, re-assessments, overrides."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import answer_maps, injuries
from triage.events.base import Level, decision_id_of, event_key, stable_id
from triage.events.inputs import InputEvent
from triage.events.outputs import Decision, Escalation, OutputEvent, OverrideRejected, QueueRecord
from triage.pipeline import processed
from triage.pipeline.engine import Engine, Step, payload_digest
from triage.pipeline.state import VictimState
from triage.scoring.rules import RuleSet
from triage.testing import (
    BASE_TIME,
    RESPONDER_REF,
    RURAL_COMMUNE,
    SECOND_REVIEWER_REF,
    UNKNOWN_COMMUNE,
    VICTIM_REF,
    after,
    decision_id_for,
    make_ack,
    make_action,
    make_alarm,
    make_closed,
    make_override,
    make_protection,
    make_report,
)

_O = TypeVar("_O", bound=OutputEvent)
FAKE_DECISION = "D-" + "0" * 24
WEAPON = {"weapon": "yes"}  # a P2 report (red-flag floor)
DANGER = {"immediate_danger": "yes"}  # a P1 report


def run(engine: Engine, events: Iterable[InputEvent], state: VictimState | None = None) -> Step:
    """Apply ``events`` in order, each at its own time; the last step."""
    step = Step(state)
    for event in events:
        step = engine.step(step.state, event, event.time)
    return step


def only(kind: type[_O], outputs: Iterable[OutputEvent]) -> list[_O]:
    """The outputs of one type, in order."""
    return [o for o in outputs if isinstance(o, kind)]


def decision_of(step: Step) -> Decision:
    """The single decision a step produced."""
    (decision,) = only(Decision, step.outputs)
    return decision


class TestOnReport:
    def test_report_without_risk_factors_is_p4_standard(
        self, engine: Engine, rules: RuleSet
    ) -> None:
        """A report with nothing known is P4 in the standard queue, with the P4 deadlines."""
        report = make_report()

        step = engine.step(None, report, report.time)

        decision = decision_of(step)
        (record,) = only(QueueRecord, step.outputs)
        assert (decision.level, decision.total, record.queue, record.kind) == (
            Level.P4,
            0,
            "standard",
            "new",
        )
        assert record.ack_due == report.time + timedelta(hours=72)
        assert record.action_due == report.time + timedelta(days=7)
        assert decision.next_reassessment_at == report.time + timedelta(days=60)
        assert decision.rules_version == rules.version

    def test_decision_is_explained_and_has_a_deterministic_id(
        self, engine: Engine, rules: RuleSet
    ) -> None:
        """The decision's id hashes event id and rules version; it lists factors and floors."""
        report = make_report(indicators=WEAPON)

        decision = decision_of(engine.step(None, report, report.time))

        assert decision.id == decision_id_of(report.source, report.id, rules.version)
        assert decision.id == decision_id_for(report)
        assert (decision.computed_level, decision.level) == (Level.P3, Level.P2)
        assert [f.rule for f in decision.floors] == ["weapon"]
        assert {c.factor for c in decision.contributions if c.points} == {"weapon"}
        assert (decision.source_event_id, decision.kind, decision.time) == (
            report.id,
            "assessment",
            report.time,
        )

    def test_contact_goes_to_queue_records_only(self, engine: Engine) -> None:
        """The contact block travels in the queue record, not in the decision."""
        report = make_report(contact={"name": "Zq§Test Name", "phone": "+33 6 00 00 00 00"})

        step = engine.step(None, report, report.time)

        (record,) = only(QueueRecord, step.outputs)
        assert record.contact == report.contact
        assert "Zq§" not in decision_of(step).model_dump_json()

    @pytest.mark.parametrize(
        ("overrides", "queues"),
        [
            ({"indicators": {"children_present": "yes"}}, ["standard", "child-protection"]),
            ({"complaint_filed": True}, ["standard", "judicial"]),
            ({"indicators": {"order_breach": "yes"}}, ["high-risk", "judicial"]),
            (
                {"indicators": {"children_present": "yes", "order_breach": "yes"}},
                ["high-risk", "child-protection", "judicial"],
            ),
        ],
        ids=["children", "complaint", "order-breach", "both"],
    )
    def test_fan_out_queues(
        self, engine: Engine, overrides: dict[str, Any], queues: list[str]
    ) -> None:
        """Children present fan out to child protection; a complaint or order breach to judicial."""
        report = make_report(**overrides)

        step = engine.step(None, report, report.time)

        assert [r.queue for r in only(QueueRecord, step.outputs)] == queues
        assert [q.queue for q in decision_of(step).queues] == queues

    def test_p1_action_deadline_is_longer_in_rural_areas(self, engine: Engine) -> None:
        """A P1 in town must see action in 15 minutes, in the countryside in 20."""
        town = make_report(indicators=DANGER)
        country = make_report(indicators=DANGER, commune=RURAL_COMMUNE)

        (urban,) = only(QueueRecord, engine.step(None, town, town.time).outputs)
        (rural,) = only(QueueRecord, engine.step(None, country, country.time).outputs)

        assert (urban.queue, urban.ack_due, urban.action_due) == (
            "immediate",
            after(minutes=5),
            after(minutes=15),
        )
        assert (rural.ack_due, rural.action_due) == (after(minutes=5), after(minutes=20))

    def test_working_day_deadline_for_p3(self, engine: Engine) -> None:
        """A P3 report on a Friday must see action two working days later, on Tuesday."""
        friday = make_report(
            indicators={"separation": "yes", "pregnancy": "yes"}, time=after(days=4)
        )

        (record,) = only(QueueRecord, engine.step(None, friday, friday.time).outputs)

        assert (record.level, record.queue) == (Level.P3, "follow-up")
        assert record.action_due == after(days=8)  # Tuesday, same time

    def test_unknown_commune_is_flagged(self, engine: Engine) -> None:
        """A report from an unknown commune goes to the default desk, flagged everywhere."""
        report = make_report(commune=UNKNOWN_COMMUNE)

        step = engine.step(None, report, report.time)

        decision = decision_of(step)
        (record,) = only(QueueRecord, step.outputs)
        assert (decision.unit, decision.unit_flagged) == ("DEP62-DEFAULT", True)
        assert (record.unit, record.unit_flagged) == ("DEP62-DEFAULT", True)
        assert [o.unit_flagged for o in step.observations if o.kind == "decided"] == [True]

    def test_state_after_a_report(self, engine: Engine) -> None:
        """After a report the case is open at its level, with its assignments and history."""
        report = make_report(indicators=WEAPON)

        state = engine.step(None, report, report.time).state

        assert state is not None
        assert (state.open, state.level, state.decision_id) == (
            True,
            Level.P2,
            decision_id_for(report),
        )
        assert [a.queue for a in state.assignments] == ["high-risk"]
        assert [(i.event_id, i.yes) for i in state.incidents] == [(report.id, ("weapon",))]
        key = event_key(report.source, report.id)
        assert state.processed == processed.entry(key, report.time, payload_digest(report))

    def test_third_incident_in_a_year_is_p2(self, engine: Engine) -> None:
        """The third report within twelve months is at least P2, even with nothing else known."""
        reports = [make_report(time=after(days=d)) for d in (0, 100, 200)]

        decision = decision_of(run(engine, reports))

        assert (decision.incidents_12m, decision.level) == (3, Level.P2)

    def test_incidents_outside_the_window_do_not_count(self, engine: Engine) -> None:
        """Reports more than a year old neither count as incidents nor carry indicators."""
        old = [make_report(indicators=WEAPON, time=after(days=d)) for d in (0, 10)]
        closed = make_closed(time=after(days=20))
        new = make_report(time=after(days=400))

        decision = decision_of(run(engine, [*old, closed, new]))

        assert (decision.incidents_12m, decision.level) == (1, Level.P4)

    def test_earlier_yes_is_carried(self, engine: Engine) -> None:
        """A strangulation reported last month still counts in a new report (from history)."""
        first = make_report(indicators={"strangulation": "yes"})
        closed = make_closed(time=after(days=3))
        second = make_report(time=after(days=30))

        decision = decision_of(run(engine, [first, closed, second]))

        carried = next(c for c in decision.contributions if c.factor == "strangulation")
        assert (carried.source, decision.level) == ("history", Level.P2)

    def test_open_case_never_drops_on_a_new_report(self, engine: Engine) -> None:
        """A new report with nothing known does not lower an open P1 case (after an alarm)."""
        first = make_alarm()
        second = make_report(time=after(hours=1))

        decision = decision_of(run(engine, [first, second]))

        assert (decision.computed_level, decision.level) == (Level.P4, Level.P1)
        assert "open_case_level" in {f.rule for f in decision.floors}

    def test_new_report_cannot_buy_time(self, engine: Engine) -> None:
        """A second report in the same queue keeps the earlier pending acknowledgement deadline."""
        first = make_report(indicators=WEAPON)
        second = make_report(indicators=WEAPON, time=after(minutes=30))

        step = run(engine, [first, second])

        (record,) = only(QueueRecord, step.outputs)
        assert record.ack_due == after(hours=1)
        assert record.action_due == after(hours=24)

    def test_rerouted_case_leaves_its_former_primary_queue(self, engine: Engine) -> None:
        """A P4 case re-scored P2 and handled in high-risk raises no escalation from standard."""
        first = make_report()
        second = make_report(indicators=WEAPON, time=after(minutes=30))
        ack = make_ack(
            decision_id=decision_id_for(second), queue="high-risk", time=after(minutes=40)
        )
        action = make_action(
            decision_id=decision_id_for(second), queue="high-risk", time=after(hours=5)
        )
        step = run(engine, [first, second, ack, action])

        later = engine.step(step.state, None, after(days=6))

        assert [(e.queue, e.stage) for e in only(Escalation, later.outputs)] == []


class TestOnAlarm:
    @given(
        history=st.lists(st.tuples(answer_maps(), injuries), max_size=3),
        alarm=st.sampled_from(("tgd_pressed", "bar_zone_breach")),
        closed=st.booleans(),
    )
    def test_device_alarm_is_p1_whatever_the_history(
        self, engine: Engine, history: list[tuple[dict[str, str], str]], alarm: str, closed: bool
    ) -> None:
        """A device alarm is P1 whatever the history."""
        events: list[InputEvent] = [
            make_report(indicators=answers, injuries=hurt, time=after(days=i))
            for i, (answers, hurt) in enumerate(history)
        ]
        if closed and events:
            events.append(make_closed(time=after(days=len(history))))
        events.append(make_alarm(alarm=alarm, time=after(days=len(history), hours=1)))

        step = run(engine, events)

        decision = decision_of(step)
        assert (decision.kind, decision.level) == ("alarm", Level.P1)
        assert only(QueueRecord, step.outputs)[0].queue == "immediate"

    def test_alarm_uses_the_case_commune(self, engine: Engine) -> None:
        """An alarm without a commune is routed to the unit of the victim's case."""
        step = run(engine, [make_report(commune=RURAL_COMMUNE), make_alarm(time=after(days=1))])

        assert (decision_of(step).unit, decision_of(step).unit_flagged) == ("GN-CIE-ARRAS", False)

    def test_alarm_for_an_unknown_victim_goes_to_the_default_desk(self, engine: Engine) -> None:
        """An alarm for a victim with no case and no commune goes to the default desk, flagged."""
        decision = decision_of(run(engine, [make_alarm()]))

        assert (decision.unit, decision.unit_flagged) == ("DEP62-DEFAULT", True)

    def test_bracelet_breach_fans_out_to_judicial(self, engine: Engine) -> None:
        """A bracelet zone breach also goes to the judicial queue (a measure was breached)."""
        step = run(engine, [make_alarm(alarm="bar_zone_breach")])

        assert [r.queue for r in only(QueueRecord, step.outputs)] == ["immediate", "judicial"]


class TestOnProgress:
    def test_ack_in_time_stops_the_ack_deadline(self, engine: Engine) -> None:
        """An acknowledgement before the deadline means no ack breach, ever."""
        report = make_report(indicators=WEAPON)
        ack = make_ack(
            decision_id=decision_id_for(report), queue="high-risk", time=after(minutes=30)
        )

        step = run(engine, [report, ack])
        later = engine.step(step.state, None, after(hours=2))

        acked = [o for o in step.observations if o.kind == "acked"]
        assert [(o.queue, o.seconds, o.late) for o in acked] == [("high-risk", 1800.0, False)]
        assert only(Escalation, later.outputs) == []

    def test_late_ack_is_measured_as_late(self, engine: Engine) -> None:
        """An acknowledgement after the deadline is observed as late."""
        report = make_report(indicators=WEAPON)
        ack = make_ack(decision_id=decision_id_for(report), queue="high-risk", time=after(hours=2))

        step = run(engine, [report, ack])

        assert [o.late for o in step.observations if o.kind == "acked"] == [True]

    def test_ack_exactly_at_the_deadline_is_in_time(self, engine: Engine) -> None:
        """An acknowledgement at the deadline itself is in time and nothing breaches."""
        report = make_report(indicators=WEAPON)
        ack = make_ack(decision_id=decision_id_for(report), queue="high-risk", time=after(hours=1))

        step = run(engine, [report, ack])

        assert only(Escalation, step.outputs) == []
        assert [o.late for o in step.observations if o.kind == "acked"] == [False]

    def test_second_ack_is_ignored(self, engine: Engine) -> None:
        """A second acknowledgement of the same assignment changes nothing."""
        report = make_report(indicators=WEAPON)
        acks = [
            make_ack(decision_id=decision_id_for(report), queue="high-risk", time=after(minutes=m))
            for m in (10, 20)
        ]
        first = run(engine, [report, acks[0]])

        second = engine.step(first.state, acks[1], acks[1].time)

        assert second.state is not None
        assert first.state is not None
        assert second.state.assignments == first.state.assignments
        assert [(o.kind, o.reason) for o in second.observations] == [
            ("ignored", "already_acknowledged")
        ]

    def test_action_closes_the_assignment(self, engine: Engine) -> None:
        """An action removes the assignment: no action breach follows."""
        report = make_report(indicators=WEAPON)
        did = decision_id_for(report)
        ack = make_ack(decision_id=did, queue="high-risk", time=after(minutes=10))
        action = make_action(decision_id=did, queue="high-risk", time=after(hours=3))

        step = run(engine, [report, ack, action])
        later = engine.step(step.state, None, after(days=2))

        assert step.state is not None
        assert step.state.assignments == ()
        actioned = [o for o in step.observations if o.kind == "actioned"]
        assert [(o.seconds, o.late, o.action) for o in actioned] == [
            (3 * 3600.0, False, "victim_contacted")
        ]
        assert only(Escalation, later.outputs) == []

    def test_action_without_ack_counts_as_ack(self, engine: Engine) -> None:
        """An action on an unacknowledged assignment also records the acknowledgement."""
        report = make_report(indicators=WEAPON)
        action = make_action(
            decision_id=decision_id_for(report), queue="high-risk", time=after(minutes=20)
        )

        step = run(engine, [report, action])

        assert [o.kind for o in step.observations] == ["acked", "actioned"]

    def test_update_for_a_queue_without_assignment_is_ignored(self, engine: Engine) -> None:
        """An acknowledgement in a queue the case is not in is ignored, not refused."""
        report = make_report()
        ack = make_ack(decision_id=decision_id_for(report), queue="judicial")

        step = run(engine, [report, ack])

        assert step.refusal is None
        assert [(o.kind, o.reason) for o in step.observations] == [
            ("ignored", "no_open_assignment")
        ]

    def test_unknown_decision_is_refused(self, engine: Engine) -> None:
        """An acknowledgement naming a decision the victim does not have is refused."""
        step = run(engine, [make_report(), make_ack(decision_id=FAKE_DECISION)])

        assert step.refusal is not None
        assert step.refusal.reason == "unknown_decision"

    def test_update_for_a_victim_without_case_is_refused(self, engine: Engine) -> None:
        """An acknowledgement for a victim the pipeline never saw is refused as unknown_case."""
        step = engine.step(None, make_ack(), after(minutes=3))

        assert (step.state, step.refusal is not None and step.refusal.reason) == (
            None,
            "unknown_case",
        )

    def test_update_for_a_closed_case_is_refused(self, engine: Engine) -> None:
        """An acknowledgement after the case was closed is refused as case_closed."""
        report = make_report()
        step = run(engine, [report, make_closed(time=after(minutes=1)), make_ack()])

        assert step.refusal is not None
        assert step.refusal.reason == "case_closed"
        assert "V-" not in step.refusal.detail


class TestTimers:
    def test_missing_ack_breaches_at_the_deadline(self, engine: Engine) -> None:
        """No acknowledgement by the deadline gives an escalation stamped with the deadline."""
        report = make_report(indicators=DANGER)
        state = run(engine, [report]).state

        step = engine.step(state, None, after(minutes=6))

        (escalation,) = only(Escalation, step.outputs)
        assert (escalation.stage, escalation.queue, escalation.level, escalation.unit) == (
            "ack",
            "immediate",
            Level.P1,
            "PN-ARRAS",
        )
        assert escalation.time == escalation.deadline == after(minutes=5)
        assert escalation.decision_id == decision_id_for(report)

    def test_breach_is_stamped_with_the_deadline_not_the_clock(self, engine: Engine) -> None:
        """However late the clock catches up, breaches carry their deadlines as their time."""
        state = run(engine, [make_report(indicators=DANGER)]).state

        step = engine.step(state, None, after(minutes=16))

        assert [(e.stage, e.time) for e in only(Escalation, step.outputs)] == [
            ("ack", after(minutes=5)),
            ("action", after(minutes=15)),
        ]

    def test_nothing_breaches_at_the_deadline_itself(self, engine: Engine) -> None:
        """At exactly the deadline nothing has breached yet (an ack may still arrive)."""
        state = run(engine, [make_report(indicators=DANGER)]).state

        assert engine.step(state, None, after(minutes=5)).outputs == ()

    def test_breach_fires_once(self, engine: Engine) -> None:
        """A breach is escalated once, however often the clock moves afterwards."""
        state = run(engine, [make_report(indicators=DANGER)]).state
        first = engine.step(state, None, after(minutes=6))

        again = engine.step(first.state, None, after(minutes=7))

        assert only(Escalation, again.outputs) == []

    def test_timers_fire_before_the_event(self, engine: Engine) -> None:
        """Deadlines that passed before an event's time are escalated before it is applied."""
        report = make_report(indicators=DANGER)
        later = make_report(time=after(minutes=6))

        step = run(engine, [report, later])

        assert [o.type for o in step.outputs][:2] == ["triage.escalation", "triage.decision"]

    def test_wakeup_is_the_next_deadline(self, engine: Engine) -> None:
        """After a P1 report the engine asks to be woken at the acknowledgement deadline."""
        assert run(engine, [make_report(indicators=DANGER)]).wakeup == after(minutes=5)

    def test_time_comes_only_from_now(self, engine: Engine) -> None:
        """The same state and stream time give the same escalations, whenever the test runs."""
        state = run(engine, [make_report(indicators=DANGER)]).state

        assert engine.step(state, None, after(hours=1)) == engine.step(state, None, after(hours=1))


class TestReassessment:
    def test_reassessment_is_due_at_the_cadence(self, engine: Engine) -> None:
        """A P2 case gets a re-assessment queue record seven days on, with the review
        deadlines of P2 (ack 24h, action 2 working days), not the danger-now ones."""
        report = make_report(indicators=WEAPON)
        did = decision_id_for(report)
        action = make_action(decision_id=did, queue="high-risk", time=after(minutes=30))
        state = run(engine, [report, action]).state

        step = engine.step(state, None, after(days=7, minutes=1))

        (record,) = only(QueueRecord, step.outputs)
        assert (record.kind, record.queue, record.level, record.decision_id) == (
            "reassessment",
            "high-risk",
            Level.P2,
            did,
        )
        # Monday 12 January 10:00: ack by Tuesday, action by Wednesday (2 working days).
        assert (record.time, record.ack_due, record.action_due) == (
            after(days=7),
            after(days=8),
            after(days=9),
        )
        assert record.reasons == ("reassessment_due",)
        assert step.state is not None
        assert step.state.next_reassessment_at == after(days=14)

    def test_p1_review_goes_to_high_risk_with_review_deadlines(self, engine: Engine) -> None:
        """A P1 case acted on and left open: its 72h review is a queue record of kind
        reassessment in high-risk (never immediate), ack 24h and action 48h, level P1."""
        report = make_report(indicators=DANGER)
        did = decision_id_for(report)
        action = make_action(decision_id=did, queue="immediate", time=after(minutes=10))
        state = run(engine, [report, action]).state

        step = engine.step(state, None, after(hours=72, minutes=1))

        (record,) = only(QueueRecord, step.outputs)
        assert (record.kind, record.queue, record.level, record.work_item_id) == (
            "reassessment",
            "high-risk",
            Level.P1,
            did,
        )
        assert (record.ack_due, record.action_due) == (after(hours=96), after(hours=120))
        assert not only(Escalation, step.outputs)
        assert step.wakeup == after(hours=96)

    def test_missed_review_is_a_review_escalation(self, engine: Engine) -> None:
        """Nobody answers a P1 review: both its deadlines escalate with stage review
        (a supervisor notice), on the high-risk queue, never ack/action on immediate."""
        report = make_report(indicators=DANGER)
        did = decision_id_for(report)
        action = make_action(decision_id=did, queue="immediate", time=after(minutes=10))
        state = run(engine, [report, action]).state

        step = engine.step(state, None, after(hours=121))

        escalations = only(Escalation, step.outputs)
        assert [(e.stage, e.queue, e.level, e.deadline) for e in escalations] == [
            ("review", "high-risk", Level.P1, after(hours=96)),
            ("review", "high-risk", Level.P1, after(hours=120)),
        ]
        assert len({e.id for e in escalations}) == 2
        breached = [o for o in step.observations if o.kind == "breached"]
        assert {(o.stage, o.queue) for o in breached} == {("review", "high-risk")}

    def test_a_report_on_a_case_under_review_is_danger_now(self, engine: Engine) -> None:
        """A new P1 report while a review is open: immediate queue, danger-now deadlines,
        and its missed acknowledgement is stage ack (the page); the review is replaced."""
        report = make_report(indicators=DANGER)
        did = decision_id_for(report)
        action = make_action(decision_id=did, queue="immediate", time=after(minutes=10))
        again = make_report(indicators=DANGER, time=after(hours=80))
        state = run(engine, [report, action]).state
        state = engine.step(state, None, after(hours=73)).state
        assert state is not None
        assert state.assignment("high-risk") is not None

        step = engine.step(state, again, again.time)
        assert step.state is not None
        assert step.state.assignment("high-risk") is None
        (record,) = only(QueueRecord, step.outputs)
        assert (record.kind, record.queue, record.ack_due) == (
            "new",
            "immediate",
            after(hours=80, minutes=5),
        )
        late = engine.step(step.state, None, after(hours=80, minutes=6))
        assert [e.stage for e in only(Escalation, late.outputs)] == ["ack"]

    def test_downgrade_during_a_p1_review_replaces_it(self, engine: Engine) -> None:
        """A P1 case under review (high-risk) lowered to P2: the override's item in high-risk
        is P2 with P2's own deadlines, not the P1 review's level."""
        report = make_report(indicators=DANGER)
        did = decision_id_for(report)
        action = make_action(decision_id=did, queue="immediate", time=after(minutes=10))
        state = run(engine, [report, action]).state
        state = engine.step(state, None, after(hours=73)).state
        assert state is not None
        override = make_override(
            decision_id=did,
            direction="down",
            new_level=Level.P2,
            second_reviewer=SECOND_REVIEWER_REF,
            time=after(hours=74),
        )

        step = engine.step(state, override, override.time)

        assert step.state is not None
        item = step.state.assignment("high-risk")
        assert item is not None
        assert (item.level, item.kind, item.review) == (Level.P2, "override", False)
        assert item.ack_due == after(hours=75)

    def test_reassessments_repeat(self, engine: Engine) -> None:
        """A long silence gives one re-assessment per cadence, each at its own time."""
        state = run(engine, [make_report()]).state

        step = engine.step(state, None, after(days=121))

        times = [r.time for r in only(QueueRecord, step.outputs)]
        assert times == [after(days=60), after(days=120)]

    def test_closed_case_is_not_reassessed(self, engine: Engine) -> None:
        """A closed case gets no re-assessment and no escalation."""
        state = run(engine, [make_report(), make_closed(time=after(hours=1))]).state

        step = engine.step(state, None, after(days=400))

        assert step.outputs == ()
        assert step.wakeup is None


class TestOnClosed:
    def test_closure_stops_everything(self, engine: Engine) -> None:
        """Closing the case clears level, assignments and re-assessment, but keeps history."""
        report = make_report(indicators=DANGER)
        closed = make_closed(time=after(minutes=2))

        step = run(engine, [report, closed])

        assert step.state is not None
        assert (step.state.open, step.state.level, step.state.assignments) == (False, None, ())
        assert step.state.next_reassessment_at is None
        assert [i.event_id for i in step.state.incidents] == [report.id]
        assert [(o.kind, o.outcome, o.level) for o in step.observations] == [
            ("closed", "resolved", "P1")
        ]

    def test_second_closure_is_ignored(self, engine: Engine) -> None:
        """Closing a closed case changes nothing but is not refused."""
        step = run(engine, [make_report(), make_closed(), make_closed(outcome="transferred")])

        assert step.refusal is None
        assert [(o.kind, o.reason) for o in step.observations] == [("ignored", "already_closed")]

    def test_report_after_closure_starts_afresh(self, engine: Engine) -> None:
        """A report after closure opens the case again without the old level as a floor."""
        events = [
            make_report(indicators=DANGER),
            make_closed(time=after(hours=1)),
            make_report(time=after(days=1), indicators={"immediate_danger": "no"}),
        ]

        decision = decision_of(run(engine, events))

        assert "open_case_level" not in {f.rule for f in decision.floors}
        assert decision.incidents_12m == 2


SERIOUS = {"injuries": "serious"}  # a P2 report by its red flag alone (4 points, P3 by total)


class TestLevelAfterAReview:
    """A weaker report lowers an open case one level once the level stood its cadence."""

    def test_weaker_report_steps_down_one_level(self, engine: Engine) -> None:
        """A P2 case (serious injuries) reported again 10 days later with nothing else: P3,
        not P4, in the follow-up queue, the floor and the queue record's reasons say why."""
        first = make_report(**SERIOUS)
        second = make_report(time=after(days=10))

        step = run(engine, [first, second])

        decision = decision_of(step)
        assert (decision.computed_level, decision.level) == (Level.P4, Level.P3)
        assert [(f.rule, f.level) for f in decision.floors] == [
            ("stepped_down_after_review", Level.P3)
        ]
        # The step also fired the day-7 review due before the report: the report's record.
        (record,) = [r for r in only(QueueRecord, step.outputs) if r.decision_id == decision.id]
        assert (record.queue, record.level, record.kind) == ("follow-up", Level.P3, "new")
        assert "floor:stepped_down_after_review" in record.reasons
        assert step.state is not None
        assert (step.state.level, step.state.level_since) == (Level.P3, second.time)
        assert [a.queue for a in step.state.assignments] == ["follow-up"]

    def test_not_before_the_cadence(self, engine: Engine) -> None:
        """Six days after a P2 decision (cadence 7 days) the open level still holds."""
        decision = decision_of(
            run(engine, [make_report(**SERIOUS), make_report(time=after(days=6))])
        )

        assert (decision.level, decision.floors[-1].rule) == (Level.P2, "open_case_level")

    def test_one_step_per_cadence(self, engine: Engine, rules: RuleSet) -> None:
        """After a step down to P3, a weak report a week later keeps P3 (30-day cadence),
        one 31 days after the step lowers it to P4. (Without the repeat-incidents floor and
        points, which a third report in 12 months would meet.)"""
        history = rules.history.model_copy(update={"floors": (), "points_per_prior_incident": 0})
        no_repeat = Engine(rules.model_copy(update={"history": history}), engine.units)
        events = [make_report(**SERIOUS), make_report(time=after(days=10))]

        week = decision_of(run(no_repeat, [*events, make_report(time=after(days=17))]))
        month = decision_of(run(no_repeat, [*events, make_report(time=after(days=41))]))

        assert (week.level, week.floors[-1].rule) == (Level.P3, "open_case_level")
        assert (month.level, month.floors[-1].rule) == (Level.P4, "stepped_down_after_review")

    def test_a_confirming_report_does_not_restart_the_count(
        self, engine: Engine, rules: RuleSet
    ) -> None:
        """A report that keeps the level (serious injuries again on day 3) leaves the level's
        start where it was: a weak report on day 8 steps it down. (Without the
        repeat-incidents floor and points, which the third report would meet.)"""
        history = rules.history.model_copy(update={"floors": (), "points_per_prior_incident": 0})
        no_repeat = Engine(rules.model_copy(update={"history": history}), engine.units)
        confirming = make_report(time=after(days=3), **SERIOUS)

        kept = run(no_repeat, [make_report(**SERIOUS), confirming])
        step = run(no_repeat, [make_report(time=after(days=8))], kept.state)

        assert kept.state is not None
        assert (kept.state.level, kept.state.level_since) == (Level.P2, BASE_TIME)
        assert decision_of(step).level == Level.P3

    def test_red_flag_in_the_later_report_keeps_the_level(self, engine: Engine) -> None:
        """A threat to kill in the later report (7 points, P3 by total) keeps P2."""
        second = make_report(time=after(days=10), indicators={"threat_to_kill": "yes"})

        decision = decision_of(run(engine, [make_report(**SERIOUS), second]))

        assert (decision.computed_level, decision.level) == (Level.P3, Level.P2)
        assert {"threat_to_kill", "open_case_level"} <= {f.rule for f in decision.floors}

    def test_carried_red_flag_keeps_the_level(self, engine: Engine) -> None:
        """A weapon reported earlier still counts: no step down while it is in the window."""
        first = make_report(indicators=WEAPON)
        decision = decision_of(run(engine, [first, make_report(time=after(days=30))]))

        assert decision.level == Level.P2

    def test_an_alarm_case_steps_down_after_72h(self, engine: Engine) -> None:
        """A P1 case opened by an alarm, a weak report 4 days later: P2 (one step), high-risk."""
        decision = decision_of(run(engine, [make_alarm(), make_report(time=after(days=4))]))

        assert (decision.level, [q.queue for q in decision.queues]) == (Level.P2, ["high-risk"])

    def test_an_alarm_never_steps_down(self, engine: Engine) -> None:
        """An alarm on a stood P2 case is P1 (the alarm floor), never lower."""
        events = [make_report(**SERIOUS), make_alarm(time=after(days=10))]

        assert decision_of(run(engine, events)).level == Level.P1

    def test_an_upward_override_is_not_stepped_down(self, engine: Engine) -> None:
        """A level raised by a professional stays whatever a later weak report says."""
        report = make_report(**SERIOUS)
        up = make_override(decision_id=decision_id_for(report), time=after(hours=1))

        decision = decision_of(run(engine, [report, up, make_report(time=after(days=10))]))

        assert decision.level == Level.P1

    def test_a_state_without_level_since_keeps_its_level(self, engine: Engine) -> None:
        """A state written before urgency-1.4.0 (no level_since) is not stepped down by its
        next report, which starts the count."""
        state = run(engine, [make_report(**SERIOUS)]).state
        assert state is not None
        legacy = state.model_copy(update={"level_since": None})
        second = make_report(time=after(days=10))

        step = engine.step(legacy, second, second.time)

        assert decision_of(step).level == Level.P2
        assert step.state is not None
        assert step.state.level_since == second.time


class TestOnOverride:
    @staticmethod
    def p2_case(engine: Engine) -> tuple[VictimState, str]:
        """An open P2 case and its decision id."""
        report = make_report(indicators=WEAPON)
        state = run(engine, [report]).state
        assert state is not None
        return state, decision_id_for(report)

    def test_upgrade_is_accepted(self, engine: Engine) -> None:
        """Raising a level with a reason is accepted, logged and routed to the new queue."""
        state, did = self.p2_case(engine)
        override = make_override(decision_id=did, new_level=Level.P1)

        step = engine.step(state, override, override.time)

        decision = decision_of(step)
        assert (decision.kind, decision.level, decision.id) == (
            "override",
            Level.P1,
            decision_id_for(override),
        )
        assert decision.override is not None
        assert (
            decision.override.direction,
            decision.override.previous_level,
            decision.override.author,
        ) == (
            "up",
            Level.P2,
            RESPONDER_REF,
        )
        (record,) = only(QueueRecord, step.outputs)
        assert (record.kind, record.queue, record.reasons) == (
            "override",
            "immediate",
            ("override:professional_judgement",),
        )
        assert step.state is not None
        assert [a.queue for a in step.state.assignments] == ["immediate"]
        assert (step.observations[0].kind, step.observations[0].direction) == ("override", "up")

    def test_upgrade_stays_in_force_for_later_reports(self, engine: Engine) -> None:
        """After an upgrade, a later report does not fall below the raised level."""
        state, did = self.p2_case(engine)
        override = make_override(decision_id=did, new_level=Level.P1)
        later = make_report(time=after(hours=2))

        decision = decision_of(run(engine, [override, later], state))

        assert decision.level == Level.P1
        assert "override_up" in {f.rule for f in decision.floors}

    def test_upgrade_that_does_not_raise_is_rejected(self, engine: Engine) -> None:
        """An "up" override to the same or a lower level is rejected as not_an_upgrade."""
        state, did = self.p2_case(engine)
        override = make_override(decision_id=did, new_level=Level.P2)

        step = engine.step(state, override, override.time)

        assert [r.reason_code for r in only(OverrideRejected, step.outputs)] == ["not_an_upgrade"]

    def test_downgrade_without_second_reviewer_is_rejected(self, engine: Engine) -> None:
        """Lowering a level without a second reviewer is rejected and the level stays."""
        state, did = self.p2_case(engine)
        override = make_override(decision_id=did, direction="down", new_level=Level.P3)

        step = engine.step(state, override, override.time)

        (rejection,) = only(OverrideRejected, step.outputs)
        assert (rejection.reason_code, rejection.current_level, rejection.requested_level) == (
            "missing_second_reviewer",
            Level.P2,
            Level.P3,
        )
        assert rejection.id == stable_id("X", override.source, override.id)
        assert step.state is not None
        assert step.state.level == Level.P2
        assert step.state.assignments == state.assignments
        assert [(o.kind, o.problem) for o in step.observations] == [
            ("override_rejected", "missing_second_reviewer")
        ]

    def test_downgrade_reviewed_by_its_author_is_rejected(self, engine: Engine) -> None:
        """Lowering a level with the author as second reviewer is rejected."""
        state, did = self.p2_case(engine)
        override = make_override(
            decision_id=did, direction="down", new_level=Level.P3, second_reviewer=RESPONDER_REF
        )

        step = engine.step(state, override, override.time)

        assert [r.reason_code for r in only(OverrideRejected, step.outputs)] == [
            "second_reviewer_is_author"
        ]
        assert step.state is not None
        assert step.state.level == Level.P2

    def test_downgrade_with_another_reviewer_is_accepted(self, engine: Engine) -> None:
        """Lowering a level with a reason and a different second reviewer is accepted."""
        state, did = self.p2_case(engine)
        override = make_override(
            decision_id=did,
            direction="down",
            new_level=Level.P3,
            second_reviewer=SECOND_REVIEWER_REF,
        )

        step = engine.step(state, override, override.time)

        decision = decision_of(step)
        assert decision.override is not None
        assert (decision.level, decision.override.direction, decision.override.second_reviewer) == (
            Level.P3,
            "down",
            SECOND_REVIEWER_REF,
        )
        assert step.state is not None
        assert (step.state.level, step.state.raised_level) == (Level.P3, None)
        assert [a.queue for a in step.state.assignments] == ["follow-up"]

    def test_downgrade_that_does_not_lower_is_rejected(self, engine: Engine) -> None:
        """A "down" override to the same level is rejected as not_a_downgrade."""
        state, did = self.p2_case(engine)
        override = make_override(
            decision_id=did,
            direction="down",
            new_level=Level.P2,
            second_reviewer=SECOND_REVIEWER_REF,
        )

        step = engine.step(state, override, override.time)

        assert [r.reason_code for r in only(OverrideRejected, step.outputs)] == ["not_a_downgrade"]

    def test_override_of_unknown_decision_is_refused(self, engine: Engine) -> None:
        """An override naming a decision this victim does not have is refused (dead letter)."""
        state, _ = self.p2_case(engine)
        override = make_override(decision_id=FAKE_DECISION)

        step = engine.step(state, override, override.time)

        assert step.refusal is not None
        assert step.refusal.reason == "unknown_decision"
        assert (step.outputs, step.state) == ((), state)

    def test_override_of_closed_case_is_rejected(self, engine: Engine) -> None:
        """An override of a closed case is logged as rejected (case_closed)."""
        state, did = self.p2_case(engine)
        closed = make_closed(time=after(minutes=1))
        override = make_override(decision_id=did, time=after(minutes=2))

        step = run(engine, [closed, override], state)

        (rejection,) = only(OverrideRejected, step.outputs)
        assert (rejection.reason_code, rejection.current_level) == ("case_closed", None)

    def test_override_for_unknown_victim_is_refused(self, engine: Engine) -> None:
        """An override for a victim with no case is refused as unknown_case."""
        step = engine.step(None, make_override(), after(minutes=2))

        assert step.refusal is not None
        assert step.refusal.reason == "unknown_case"

    def test_acks_may_name_the_override_decision(self, engine: Engine) -> None:
        """Responders acknowledge the queue record an override produced."""
        state, did = self.p2_case(engine)
        override = make_override(decision_id=did, new_level=Level.P1)
        ack = make_ack(
            decision_id=decision_id_for(override), queue="immediate", time=after(minutes=4)
        )

        step = run(engine, [override, ack], state)

        assert step.refusal is None
        assert [o.kind for o in step.observations] == ["acked"]


class TestOnProtection:
    def test_protection_is_remembered_once(self, engine: Engine) -> None:
        """A protection measure is recorded once and produces no output record."""
        grant = make_protection()
        again = make_protection(time=after(days=2))

        step = run(engine, [make_report(), grant, again])

        assert step.outputs == ()
        assert step.state is not None
        assert step.state.protections == ("tgd",)


class TestStep:
    def test_repeated_event_id_changes_nothing(self, engine: Engine) -> None:
        """An event seen before produces nothing and leaves the state as it was."""
        report = make_report(indicators=WEAPON)
        first = engine.step(None, report, report.time)

        again = engine.step(first.state, report, report.time)

        assert (again.state, again.outputs, again.refusal) == (first.state, (), None)
        assert [(o.kind, o.event_type) for o in again.observations] == [
            ("duplicate", "report.received")
        ]

    def test_event_ids_are_remembered_within_a_bound(self, engine: Engine) -> None:
        """A victim remembers at most ``remembered`` processed events, the latest dated."""
        small = Engine(engine.rules, engine.units, remembered=16)
        report = make_report()
        events = [make_protection(time=after(minutes=m + 1)) for m in range(16 + 5)]

        state = run(small, [report, *events]).state

        assert state is not None
        assert processed.count(state.processed) <= 16
        last = processed.digest(event_key(events[-1].source, events[-1].id))
        first = processed.digest(event_key(report.source, report.id))
        assert processed.remembers(state.processed, last)
        assert not processed.remembers(state.processed, first)
        assert state.forgotten_before is not None
        assert state.forgotten_before > report.time

    def test_same_input_same_step(self, engine: Engine) -> None:
        """The same state, event and stream time always give the same step."""
        report = make_report(indicators=DANGER)
        now: datetime = report.time

        assert engine.step(None, report, now) == engine.step(None, report, now)

    def test_no_event_no_state(self, engine: Engine) -> None:
        """Advancing the clock of a victim the engine never saw does nothing."""
        assert engine.step(None, None, BASE_TIME) == Step(None)

    def test_repr_names_the_rules_version(self, engine: Engine, rules: RuleSet) -> None:
        """The engine's repr shows which rule set it applies."""
        assert repr(engine) == f"Engine(rules={rules.version!r})"

    def test_victim_ref_is_kept(self, engine: Engine) -> None:
        """Every output of a victim's step is keyed by that victim."""
        step = run(engine, [make_report(indicators=DANGER)])

        assert {getattr(o, "victim_ref", None) for o in step.outputs} == {VICTIM_REF}
