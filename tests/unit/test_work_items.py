"""Conflicting resends and work items: one open work item per victim and queue (issue 13)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.events.base import Level, evolve
from triage.events.inputs import InputEvent
from triage.events.outputs import Decision, Escalation, OutputEvent, QueueRecord
from triage.observability.metrics import TriageMetrics
from triage.pipeline import processed
from triage.pipeline.engine import Engine, Step
from triage.pipeline.observations import EventHandled, Observation
from triage.pipeline.processor import Processor
from triage.pipeline.state import VictimState
from triage.scoring.rules import Span
from triage.testing import (
    BASE_TIME,
    RURAL_COMMUNE,
    after,
    decision_id_for,
    make_ack,
    make_action,
    make_alarm,
    make_report,
    raw_of,
)
from triage.topics import Topics

WEAPON = {"weapon": "yes"}
DANGER = {"immediate_danger": "yes"}


class Played:
    """Every output and observation of a list of events, each applied at its own time."""

    def __init__(self, engine: Engine, events: Iterable[InputEvent]) -> None:
        self.outputs: list[OutputEvent] = []
        self.observations: list[Observation] = []
        self.states: list[VictimState | None] = []
        step = Step(None)
        for event in events:
            step = engine.step(step.state, event, event.time)
            self.outputs += step.outputs
            self.observations += step.observations
            self.states.append(step.state)
        self.state = step.state

    def records(self) -> list[QueueRecord]:
        """The queue records, in order."""
        return [o for o in self.outputs if isinstance(o, QueueRecord)]

    def summary(self) -> list[tuple[Any, ...]]:
        """Each output as a short tuple: what a golden file would pin."""
        rows: list[tuple[Any, ...]] = []
        for o in self.outputs:
            if isinstance(o, Decision):
                rows.append(("decision", o.kind, o.level.value, o.merged_into is not None))
            elif isinstance(o, QueueRecord):
                rows.append(("queue", o.queue, o.kind, o.level.value))
            elif isinstance(o, Escalation):
                rows.append(("escalation", o.queue, o.stage, o.fields))
        return rows

    def counted(self, kind: str) -> list[str]:
        """The codes of the observations of one kind: the event type of a duplicate or
        a conflict, the reason an update was ignored, the alarm merged."""
        codes = {
            "duplicate": lambda o: o.event_type,
            "conflict": lambda o: o.event_type,
            "ignored": lambda o: o.reason,
            "merged": lambda o: o.alarm,
        }
        return [codes[kind](o) for o in self.observations if o.kind == kind]


def metrics_of(observations: Iterable[Observation]) -> TriageMetrics:
    """Metrics fed with ``observations``."""
    metrics = TriageMetrics()
    metrics.observe(observations)
    return metrics


def sample(metrics: TriageMetrics, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    value = metrics.registry.get_sample_value(name, labels)
    return value if value is not None else 0.0


class TestConflictingResend:
    def test_a_resend_adding_a_red_flag_is_escalated_and_counted(self, engine: Engine) -> None:
        """Same source and id, strangulation added: a conflict escalation naming the
        original decision and the indicator, counted, not decided, not a duplicate."""
        original = make_report(indicators=WEAPON)
        resend = original.model_copy(
            update={"indicators": original.indicators.model_copy(update={"strangulation": "yes"})}
        )

        played = Played(engine, [original, resend])

        assert played.summary() == [
            ("decision", "assessment", "P2", False),
            ("queue", "high-risk", "new", "P2"),
            ("escalation", "high-risk", "conflict", ("indicators.strangulation",)),
        ]
        escalation = played.outputs[-1]
        assert isinstance(escalation, Escalation)
        assert escalation.decision_id == decision_id_for(original)
        assert escalation.source_event_id == original.id
        assert "yes" not in escalation.model_dump_json()  # names, never values
        metrics = metrics_of(played.observations)
        assert sample(metrics, "triage_conflicting_resends_total", type="report.received") == 1
        assert sample(metrics, "triage_duplicates_total") == 0

    def test_a_resend_with_another_commune_names_it(self, engine: Engine) -> None:
        """A resend moved to another commune names ``commune`` (the original is the
        case's latest incident, so its commune is known)."""
        original = make_report(indicators=WEAPON)
        resend = original.model_copy(update={"commune": RURAL_COMMUNE})

        played = Played(engine, [original, resend])

        assert played.summary()[-1] == ("escalation", "high-risk", "conflict", ("commune",))

    def test_a_difference_the_state_does_not_keep_is_named_payload(self, engine: Engine) -> None:
        """A resend differing only in injuries (not kept in the history) names ``payload``."""
        original = make_report(indicators=WEAPON)
        resend = original.model_copy(update={"injuries": "serious"})

        played = Played(engine, [original, resend])

        assert played.summary()[-1] == ("escalation", "high-risk", "conflict", ("payload",))

    def test_an_exact_resend_is_a_plain_duplicate(self, engine: Engine) -> None:
        """The same event again: a duplicate, no output, no conflict."""
        original = make_report(indicators=WEAPON)

        played = Played(engine, [original, original])

        assert len(played.outputs) == 2
        assert (played.counted("duplicate"), played.counted("conflict")) == (
            ["report.received"],
            [],
        )

    def test_a_state_written_before_payload_digests_treats_resends_as_duplicates(
        self, engine: Engine
    ) -> None:
        """A state with 12-byte entries loads; a resend of an event it remembers, whatever
        its content, is a plain duplicate (the original payload is not known)."""
        original = make_report(indicators=WEAPON)
        state = engine.step(None, original, original.time).state
        assert state is not None
        legacy = b"".join(e[: processed.LEGACY_ENTRY_BYTES] for e in _entries(state.processed))
        old_json = evolve(state, processed=legacy).model_dump_json(exclude={"processed_format"})
        loaded = VictimState.model_validate_json(old_json)
        resend = original.model_copy(update={"injuries": "serious"})

        step = engine.step(loaded, resend, resend.time)

        assert loaded.processed_format == 1
        assert ([o.kind for o in step.observations], step.outputs) == (["duplicate"], ())
        assert step.state is not None
        assert step.state.processed_format == 2

    def test_the_processor_outcome_is_conflict(self, engine: Engine, topics: Topics) -> None:
        """The events metric tells a conflict from a duplicate."""
        original = make_report(indicators=WEAPON)
        resend = original.model_copy(update={"injuries": "serious"})
        processor = Processor(engine, topics)
        processor.feed(raw_of(original))

        batch = processor.feed(raw_of(resend))

        assert [o.outcome for o in batch.observations if isinstance(o, EventHandled)] == [
            "conflict"
        ]


def _entries(memory: bytes) -> list[bytes]:
    size = processed.ENTRY_BYTES
    return [memory[i : i + size] for i in range(0, len(memory), size)]


class TestOneWorkItemPerQueue:
    def test_a_second_report_updates_the_open_item(self, engine: Engine) -> None:
        """A later report makes its own decision; its queue record updates the open item."""
        first = make_report(indicators=WEAPON)
        second = make_report(indicators={**WEAPON, "separation": "yes"}, time=after(minutes=20))

        played = Played(engine, [first, second])

        new, update = played.records()
        assert [(r.kind, r.decision_id) for r in (new, update)] == [
            ("new", decision_id_for(first)),
            ("update", decision_id_for(second)),
        ]
        assert new.work_item_id == update.work_item_id == decision_id_for(first)
        assert (update.ack_due, update.action_due) == (new.ack_due, new.action_due)

    def test_a_flood_of_reports_is_one_item_updated(self, engine: Engine) -> None:
        """1,000 reports in 0.07 s: 1,000 decisions, one ``new`` record per queue and
        updates, never two open items in a queue, deadlines never later."""
        flood = [
            make_report(indicators=DANGER, time=BASE_TIME + timedelta(microseconds=70 * i))
            for i in range(1000)
        ]

        played = Played(engine, flood)

        records = played.records()
        assert sum(isinstance(o, Decision) for o in played.outputs) == 1000
        assert [(r.queue, r.kind) for r in records if r.kind != "update"] == [("immediate", "new")]
        assert {r.work_item_id for r in records} == {decision_id_for(flood[0])}
        assert all(r.ack_due <= records[0].ack_due for r in records)
        assert all(r.action_due <= records[0].action_due for r in records)
        for state in played.states:
            assert state is not None
            queues = [a.queue for a in state.assignments]
            assert len(queues) == len(set(queues))

    def test_an_update_after_an_acknowledgement_asks_for_a_new_one(self, engine: Engine) -> None:
        """The responder acknowledged the first report, not the second: the update needs
        its own acknowledgement (an ack naming the first is stale) or it escalates."""
        first = make_report(indicators=WEAPON)
        ack = make_ack(
            queue="high-risk", decision_id=decision_id_for(first), time=after(minutes=10)
        )
        second = make_report(indicators=WEAPON, time=after(minutes=30))
        stale = make_ack(
            queue="high-risk", decision_id=decision_id_for(first), time=after(minutes=40)
        )

        played = Played(engine, [first, ack, second, stale])
        later = engine.step(played.state, None, after(hours=2))

        update = played.records()[-1]
        assert (update.kind, update.ack_due) == ("update", after(minutes=30, hours=1))
        assert played.counted("ignored") == ["stale_decision"]
        assert [(e.stage, e.deadline) for e in later.outputs if isinstance(e, Escalation)] == [
            ("ack", after(minutes=30, hours=1))
        ]

    def test_the_level_of_a_fan_out_item_rises_and_its_deadlines_tighten(
        self, engine: Engine
    ) -> None:
        """Children present at P4 then a weapon (P2): the child-protection item is updated
        to P2 with the P2 deadlines (earlier than the P4 ones)."""
        first = make_report(indicators={"children_present": "yes"})
        second = make_report(
            indicators={"children_present": "yes", **WEAPON}, time=after(minutes=30)
        )

        played = Played(engine, [first, second])

        child = [r for r in played.records() if r.queue == "child-protection"]
        assert [(r.kind, r.level) for r in child] == [("new", Level.P4), ("update", Level.P2)]
        assert child[1].ack_due == after(minutes=30, hours=1) < child[0].ack_due
        assert child[1].work_item_id == child[0].work_item_id


class TestRepeatedAlarms:
    def test_an_alarm_within_the_window_is_merged_and_counted(self, engine: Engine) -> None:
        """Pressed again 5 minutes later: an audit decision marked merged, no queue record,
        counted; one incident in the history, deadlines unchanged."""
        first = make_alarm()
        again = make_alarm(time=after(minutes=5))

        played = Played(engine, [first, again])

        assert played.summary() == [
            ("decision", "alarm", "P1", False),
            ("queue", "immediate", "new", "P1"),
            ("decision", "alarm", "P1", True),
        ]
        merged = played.outputs[-1]
        assert isinstance(merged, Decision)
        assert merged.merged_into == decision_id_for(first)
        assert [q.ack_due for q in merged.queues] == [after(minutes=5)]
        assert played.counted("merged") == ["tgd_pressed"]
        metrics = metrics_of(played.observations)
        assert sample(metrics, "triage_alarms_merged_total", alarm="tgd_pressed") == 1
        assert played.state is not None
        assert len(played.state.incidents) == 1

    def test_an_alarm_outside_the_window_updates_the_item(self, engine: Engine) -> None:
        """Pressed again 20 minutes later (window 15 min): a decision and an update."""
        played = Played(engine, [make_alarm(), make_alarm(time=after(minutes=20))])

        assert [(r.queue, r.kind) for r in played.records()] == [
            ("immediate", "new"),
            ("immediate", "update"),
        ]
        assert played.counted("merged") == []

    def test_an_alarm_after_the_action_is_new_work(self, engine: Engine) -> None:
        """Once responders acted (the item is done), a press within the window is new work."""
        first = make_alarm()
        action = make_action(
            queue="immediate", decision_id=decision_id_for(first), time=after(minutes=8)
        )

        played = Played(engine, [first, action, make_alarm(time=after(minutes=10))])

        assert [(r.queue, r.kind) for r in played.records()] == [
            ("immediate", "new"),
            ("immediate", "new"),
        ]

    def test_an_alarm_bringing_another_queue_is_not_merged(self, engine: Engine) -> None:
        """A bracelet breach after a phone press also goes to the judicial queue, which has
        no open item: decided, the immediate item updated, a judicial item opened."""
        played = Played(
            engine, [make_alarm(), make_alarm(alarm="bar_zone_breach", time=after(minutes=3))]
        )

        assert [(r.queue, r.kind) for r in played.records()] == [
            ("immediate", "new"),
            ("immediate", "update"),
            ("judicial", "new"),
        ]

    def test_without_a_window_alarms_are_never_merged(self, engine: Engine) -> None:
        """A rule set without ``alarm_merge_window`` decides every alarm."""
        rules = engine.rules.model_copy(update={"alarm_merge_window": None})
        played = Played(
            Engine(rules, engine.units), [make_alarm(), make_alarm(time=after(minutes=1))]
        )

        assert [r.kind for r in played.records()] == ["new", "update"]

    def test_the_window_is_read_from_the_rule_set(self, engine: Engine) -> None:
        """The packaged rule set merges alarms within 15 minutes."""
        assert engine.rules.alarm_merge_window == Span.model_validate("15m")


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(("report", "danger", "children", "alarm", "bar", "ack", "action")),
        st.integers(min_value=0, max_value=30),
    ),
    min_size=1,
    max_size=25,
)


class TestProperty:
    @settings(max_examples=60, deadline=None)
    @given(script=_EVENTS)
    def test_at_most_one_open_item_per_queue(self, engine: Engine, script: list[Any]) -> None:
        """Whatever reports, alarms, acks and actions arrive, a victim never has two open
        items in a queue, and a ``new`` record only opens a queue with no open item."""
        state: VictimState | None = None
        when = BASE_TIME
        for i, (what, minutes) in enumerate(script):
            when += timedelta(minutes=minutes)
            event = _event(what, i, when, state)
            if event is None:
                continue
            step = engine.step(state, event, when)
            for record in step.outputs:
                if isinstance(record, QueueRecord) and record.kind == "new" and state is not None:
                    assert state.assignment(record.queue) is None
            state = step.state
            assert state is not None
            queues = [a.queue for a in state.assignments]
            assert len(queues) == len(set(queues))


def _event(what: str, i: int, when: Any, state: VictimState | None) -> InputEvent | None:
    tag = f"evt-{i}"
    if what in ("ack", "action"):
        if state is None or not state.assignments:
            return None
        item = state.assignments[0]
        make = make_ack if what == "ack" else make_action
        return make(id=tag, queue=item.queue, decision_id=item.decision_id, time=when)
    if what == "alarm":
        return make_alarm(id=tag, time=when)
    if what == "bar":
        return make_alarm(id=tag, alarm="bar_zone_breach", time=when)
    answers = {"report": WEAPON, "danger": DANGER, "children": {"children_present": "yes"}}
    return make_report(id=tag, indicators=answers[what], time=when)
