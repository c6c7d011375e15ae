"""The processor: many victims, one stream clock driven by event time, de-duplication."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event_logs, feed_each, flatten
from triage.events.inputs import InputEvent
from triage.events.outputs import DeadLetter, Decision, Escalation, QueueRecord
from triage.observability.metrics import TriageMetrics
from triage.pipeline import processor as processor_module
from triage.pipeline.engine import Engine, Step
from triage.pipeline.ingest import Accepted, RawRecord
from triage.pipeline.observations import (
    ClockClamped,
    Duplicate,
    EventHandled,
    EventOutcome,
    ProcessingError,
    ProcessingStage,
    RefusalReason,
    Refused,
)
from triage.pipeline.processor import Batch, Processor
from triage.pipeline.state import VictimState
from triage.replay.records import LogRecord
from triage.testing import (
    BASE_TIME,
    VICTIM_REF,
    after,
    make_ack,
    make_alarm,
    make_closed,
    make_raw,
    make_report,
    make_watermark,
    raw_of,
)
from triage.topics import Topics

OTHER = "V-0002B3"

DANGER = {"immediate_danger": "yes"}


class TestProcessor:
    def test_feed_a_report(self, engine: Engine, topics: Topics) -> None:
        """A report yields its decision and queue records, and the victim's state is kept."""
        processor = Processor(engine, topics)

        batch = processor.feed(raw_of(make_report(indicators=DANGER)))

        assert [type(o) for o in batch.outputs] == [Decision, QueueRecord]
        assert {"decided", "routed"} <= {o.kind for o in batch.observations}
        assert set(processor.states) == {VICTIM_REF}
        assert processor.clock == BASE_TIME

    def test_bad_record_becomes_a_dead_letter_and_does_not_move_the_clock(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A rejected record gives one dead letter; its timestamp does not move the clock."""
        processor = Processor(engine, topics)

        batch = processor.feed(make_raw(b"{", timestamp=after(days=3)))

        assert [type(o) for o in batch.outputs] == [DeadLetter]
        assert [o.reason for o in batch.observations if isinstance(o, Refused)] == ["invalid_json"]
        assert (processor.clock, processor.states) == (None, {})

    def test_other_victims_events_move_the_clock_and_fire_deadlines(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A breach fires when another victim's later event moves the stream clock past it."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))

        batch = processor.feed(raw_of(make_report(victim_ref=OTHER, time=after(minutes=6))))

        (escalation,) = [o for o in batch.outputs if isinstance(o, Escalation)]
        assert (escalation.victim_ref, escalation.stage, escalation.time) == (
            VICTIM_REF,
            "ack",
            after(minutes=5),
        )
        assert batch.outputs[0] is escalation  # timers first, then the event

    def test_only_event_time_moves_the_clock(self, engine: Engine, topics: Topics) -> None:
        """Without later events nothing breaches: replaying old logs does not use the wall clock."""
        processor = Processor(engine, topics)

        batch = processor.feed(raw_of(make_report(indicators=DANGER, time=after(days=-3000))))

        assert not any(isinstance(o, Escalation) for o in batch.outputs)
        assert processor.clock == after(days=-3000)

    def test_clock_never_goes_back(self, engine: Engine, topics: Topics) -> None:
        """An out-of-order event does not move the clock back, and is decided at its own time."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(time=after(hours=2))))

        batch = processor.feed(raw_of(make_report(victim_ref=OTHER)))

        assert processor.clock == after(hours=2)
        assert batch.outputs[0].time == BASE_TIME

    def test_advance_fires_due_timers(self, engine: Engine, topics: Topics) -> None:
        """Advancing the clock by hand (a live timer) fires the deadlines it passed."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))

        batch = processor.advance(after(minutes=16))

        assert [(o.stage, o.time) for o in batch.outputs if isinstance(o, Escalation)] == [
            ("ack", after(minutes=5)),
            ("action", after(minutes=15)),
        ]
        assert processor.clock == after(minutes=16)
        assert processor.advance(after(minutes=10)).outputs == []
        assert processor.clock == after(minutes=16)

    def test_restored_states_are_scheduled(self, engine: Engine, topics: Topics) -> None:
        """States handed in at start (a recovered table) have their deadlines scheduled."""
        first = Processor(engine, topics)
        first.feed(raw_of(make_report(indicators=DANGER)))

        restored = Processor(engine, topics, states=dict(first.states))
        batch = restored.advance(after(minutes=6))

        assert [o.stage for o in batch.outputs if isinstance(o, Escalation)] == ["ack"]

    def test_closed_case_timers_are_dropped(self, engine: Engine, topics: Topics) -> None:
        """Once a case is closed its scheduled deadlines are stale and fire nothing."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))
        processor.feed(raw_of(make_closed(time=after(minutes=1))))

        assert processor.advance(after(days=30)).outputs == []

    def test_watermark_moves_the_clock_and_fires_deadlines(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A clock watermark (end of a replayed log) moves the clock and fires what is due."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))

        batch = processor.feed(raw_of(make_watermark(time=after(minutes=6))))

        assert [(o.type, o.stage) for o in batch.outputs if isinstance(o, Escalation)] == [
            ("triage.escalation", "ack")
        ]
        assert not any(isinstance(o, DeadLetter | Decision) for o in batch.outputs)
        assert processor.clock == after(minutes=6)
        assert set(processor.states) == {VICTIM_REF}

    def test_take_dirty_returns_changed_states_once(self, engine: Engine, topics: Topics) -> None:
        """Changed states are handed out once for persisting, then forgotten."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report()))

        assert set(processor.take_dirty()) == {VICTIM_REF}
        assert processor.take_dirty() == {}

    def test_prefixed_topics(self, engine: Engine) -> None:
        """A processor with a topic prefix accepts records from the prefixed topics."""
        topics = Topics(prefix="region-x.")
        processor = Processor(engine, topics)

        batch = processor.feed(raw_of(make_report(), topics=topics))

        assert [type(o) for o in batch.outputs] == [Decision, QueueRecord]

    @given(log=event_logs(garbage=False), data=st.data())
    def test_repeated_event_changes_nothing(
        self, engine: Engine, log: list[LogRecord], data: st.DataObject
    ) -> None:
        """Redelivering an accepted event later gives the same outputs and the same states."""
        # Both runs end with a flush, so that deadlines still pending at the end of the
        # log are compared too.
        batches, processor = feed_each(log, engine, flush=True)
        # Accepted: never dead-lettered, at once or after waiting for its case (an update
        # held past its grace period was never applied, so a copy of it is a new try).
        letters = b"".join(x for x in flatten(batches) if b"triage.dead_letter" in x)
        accepted = [
            i for i, record in enumerate(log) if base64.b64encode(record.value) not in letters
        ]
        if not accepted:
            return
        index = data.draw(st.sampled_from(accepted))
        at = data.draw(st.integers(index + 1, len(log)))
        with_repeat = [*log[:at], log[index], *log[at:]]

        repeated_batches, repeated = feed_each(with_repeat, engine, flush=True)

        assert flatten(repeated_batches) == flatten(batches)
        assert dict(repeated.states) == dict(processor.states)

    def test_late_event_overdue_deadline_fires_at_once(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A late alarm whose ack deadline the clock already passed escalates in its own batch,
        so its redelivery changes nothing."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(victim_ref=OTHER)))  # the clock reaches 10:00
        late = raw_of(make_alarm(time=after(minutes=-7)))  # ack due 09:58, already passed

        first = processor.feed(late)
        again = processor.feed(late)

        assert [(o.stage, o.time) for o in first.outputs if isinstance(o, Escalation)] == [
            ("ack", after(minutes=-2))
        ]
        assert again.outputs == []

    def test_repeated_refused_event_gives_the_same_dead_letter(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A refused event leaves no state behind: a redelivery repeats the same dead letter."""
        processor = Processor(engine, topics)
        record = raw_of(make_ack(), topic=topics.reports)  # an update on the reports topic

        first, again = processor.feed(record), processor.feed(record)

        assert first.outputs == again.outputs
        assert [type(o) for o in first.outputs] == [DeadLetter]


class TestBatch:
    def test_take_appends_in_order(self) -> None:
        """A batch appends a step's outputs and observations after what it already has."""
        batch = Batch(observations=[Duplicate()])

        batch.take(Step(None, (), (Refused(RefusalReason.INVALID_JSON),)))

        assert [o.kind for o in batch.observations] == ["duplicate", "refused"]


SECRET = "Zq§Jeanne-Dupont-06-12-34-56-78"
"""A synthetic personal value an exception message could quote."""


class BrokenEngine(Engine):
    """The real engine, except that stepping a victim in ``broken`` raises (a bug)."""

    __slots__ = ("broken", "on")

    def __init__(self, engine: Engine, on: str = "event") -> None:
        super().__init__(engine.rules, engine.units)
        self.broken: set[str] = set()
        self.on = on
        """``event``: raise on the victim's events; ``timer``: on its timers only."""

    def step(self, state: VictimState | None, event: InputEvent | None, now: datetime) -> Step:
        """Raise for a broken victim (quoting a personal value), else step as usual."""
        ref = event.victim_ref if event is not None else state.victim_ref if state else None
        if ref in self.broken and (event is None) == (self.on == "timer"):
            raise ValueError(f"cannot handle {SECRET}")
        return super().step(state, event, now)


class TestProcessingErrors:
    def test_an_engine_error_becomes_a_processing_error_dead_letter(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A record whose step raises gives one dead letter (reason processing_error, detail
        the exception's type name only, original bytes) and is counted; nothing raises."""
        broken = BrokenEngine(engine)
        broken.broken.add(VICTIM_REF)
        record = raw_of(make_report(indicators=DANGER))

        batch = Processor(broken, topics).feed(record)

        (letter,) = batch.outputs
        assert isinstance(letter, DeadLetter)
        assert (letter.reason, letter.detail) == ("processing_error", "ValueError")
        assert base64.b64decode(letter.value_b64) == record.value
        assert SECRET not in letter.model_dump_json()
        assert batch.observations == [
            ProcessingError(ProcessingStage.ENGINE),
            Refused(RefusalReason.PROCESSING_ERROR),
            EventHandled("report.received", EventOutcome.ERROR),
        ]

    def test_the_victims_state_is_left_as_it_was(self, engine: Engine, topics: Topics) -> None:
        """A failed step changes nothing of its victim: same state, not dirty, same timers."""
        broken = BrokenEngine(engine)
        processor = Processor(broken, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))
        processor.take_dirty()
        before = processor.states[VICTIM_REF]
        broken.broken.add(VICTIM_REF)

        batch = processor.feed(raw_of(make_ack(time=after(minutes=1))))

        assert [o.reason for o in batch.outputs if isinstance(o, DeadLetter)] == [
            "processing_error"
        ]
        assert processor.states[VICTIM_REF] is before
        assert processor.take_dirty() == {}
        broken.broken.clear()
        escalations = processor.advance(after(minutes=6)).outputs
        assert [o.stage for o in escalations if isinstance(o, Escalation)] == ["ack"]

    def test_a_new_victim_whose_first_step_fails_has_no_state(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A failure on a victim's first report leaves no state for it at all."""
        broken = BrokenEngine(engine)
        broken.broken.add(VICTIM_REF)
        processor = Processor(broken, topics)

        processor.feed(raw_of(make_report()))

        assert (dict(processor.states), processor.dirty) == ({}, set())

    def test_other_victims_are_decided_after_a_failure(
        self, engine: Engine, topics: Topics
    ) -> None:
        """The record after a failed one, for another victim, is decided as usual."""
        broken = BrokenEngine(engine)
        broken.broken.add(VICTIM_REF)
        processor = Processor(broken, topics)
        processor.feed(raw_of(make_report()))

        batch = processor.feed(raw_of(make_report(victim_ref=OTHER, time=after(minutes=1))))

        assert [type(o) for o in batch.outputs] == [Decision, QueueRecord]

    def test_an_ingestion_error_is_dead_lettered(
        self, engine: Engine, topics: Topics, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If ingestion itself raises, the record is dead-lettered as processing_error too."""

        def explode(record: RawRecord, topics: Topics) -> Accepted:
            raise RecursionError(SECRET)

        monkeypatch.setattr(processor_module, "ingest", explode)

        batch = Processor(engine, topics).feed(raw_of(make_report()))

        (letter,) = batch.outputs
        assert isinstance(letter, DeadLetter)
        assert (letter.reason, letter.detail) == ("processing_error", "RecursionError")
        assert ProcessingError(ProcessingStage.INGEST) in batch.observations

    def test_timers_fired_before_the_failure_stand(self, engine: Engine, topics: Topics) -> None:
        """Deadlines another victim's record moved the clock past still escalate when that
        record's own step fails."""
        broken = BrokenEngine(engine)
        processor = Processor(broken, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))
        broken.broken.add(OTHER)

        batch = processor.feed(raw_of(make_report(victim_ref=OTHER, time=after(minutes=6))))

        assert [type(o) for o in batch.outputs] == [Escalation, DeadLetter]

    def test_a_timer_error_is_counted_and_not_retried(self, engine: Engine, topics: Topics) -> None:
        """A victim whose timer raises keeps its state and is counted once; other victims'
        timers still fire."""
        broken = BrokenEngine(engine, on="timer")
        processor = Processor(broken, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))
        processor.feed(raw_of(make_report(victim_ref=OTHER, indicators=DANGER)))
        processor.take_dirty()
        before = processor.states[VICTIM_REF]
        broken.broken.add(VICTIM_REF)

        batch = processor.advance(after(minutes=6))
        later = processor.advance(after(minutes=16))

        assert {o.victim_ref for o in batch.outputs if isinstance(o, Escalation)} == {OTHER}
        assert [o for o in batch.observations if o.kind == "processing_error"] == [
            ProcessingError(ProcessingStage.TIMER)
        ]
        assert not any(o.kind == "processing_error" for o in later.observations)
        assert processor.states[VICTIM_REF] is before
        assert set(processor.take_dirty()) == {OTHER}

    def test_the_same_failure_gives_the_same_dead_letter_every_time(
        self, engine: Engine, topics: Topics
    ) -> None:
        """Two processors (offline and a worker, say) make byte-identical dead letters of
        the same failing record."""
        broken = BrokenEngine(engine)
        broken.broken.add(VICTIM_REF)
        record = raw_of(make_report())

        first = Processor(broken, topics).feed(record).outputs
        again = Processor(broken, topics).feed(record).outputs

        assert [o.model_dump_json() for o in first] == [o.model_dump_json() for o in again]

    def test_failures_are_counted_in_metrics(self, engine: Engine, topics: Topics) -> None:
        """The observations feed triage_processing_errors_total and the dead-letter counter."""
        broken = BrokenEngine(engine)
        broken.broken.add(VICTIM_REF)
        metrics = TriageMetrics()

        metrics.observe(Processor(broken, topics).feed(raw_of(make_report())).observations)

        value = metrics.registry.get_sample_value
        assert value("triage_processing_errors_total", {"stage": "engine"}) == 1
        assert value("triage_processing_errors_total", {"stage": "timer"}) == 0
        assert value("triage_dead_letters_total", {"reason": "processing_error"}) == 1


THREE_HOURS_AHEAD = after(hours=3)
CEILING = after(minutes=3)
"""Live mode: the wall clock at BASE_TIME + 1 min, plus the default two minutes' skew."""


class TestQuietPartitions:
    """No legitimate report is refused because its partition was quiet (issue 13)."""

    @pytest.mark.parametrize("days", [100, 365])
    @pytest.mark.parametrize("live", [False, True], ids=["replay", "live"])
    def test_a_report_after_a_quiet_period_is_decided(
        self, engine: Engine, topics: Topics, days: int, live: bool
    ) -> None:
        """A report 100 days or a year after the partition's last record is decided at its
        own time, in replay mode and in live mode (the wall clock moved on too)."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))
        later = make_report(victim_ref=OTHER, time=after(days=days))
        ceiling = after(days=days, minutes=2) if live else None

        batch = processor.feed(raw_of(later), ceiling)

        assert [o.time for o in batch.outputs if isinstance(o, Decision)] == [later.time]
        assert not any(isinstance(o, DeadLetter) for o in batch.outputs)
        assert processor.clock == later.time

    def test_the_same_victim_after_a_quiet_year_is_decided(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A victim's new report a year after her last one (nothing between) is decided."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))

        batch = processor.feed(raw_of(make_report(time=after(days=365), indicators=DANGER)))

        assert [o.victim_ref for o in batch.outputs if isinstance(o, Decision)] == [VICTIM_REF]


class TestClockCeiling:
    """Live mode: the stream clock never runs ahead of the wall clock plus the skew."""

    @staticmethod
    def _with_an_open_p1(engine: Engine, topics: Topics) -> Processor:
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)), CEILING)
        return processor

    def test_a_record_3_hours_ahead_is_decided_at_the_ceiling(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A report stamped 3 h ahead is decided at the ceiling: its decision's time and
        deadlines start there, and the clock stops there."""
        processor = self._with_an_open_p1(engine, topics)
        ahead = make_report(victim_ref=OTHER, time=THREE_HOURS_AHEAD, indicators=DANGER)

        batch = processor.feed(raw_of(ahead), CEILING)

        (decision,) = [o for o in batch.outputs if isinstance(o, Decision)]
        assert (decision.time, decision.queues[0].ack_due) == (CEILING, after(minutes=8))
        assert processor.clock == CEILING

    def test_no_other_victims_deadline_fires_early(self, engine: Engine, topics: Topics) -> None:
        """The open P1 case's acknowledgement deadline (in 5 min) does not fire on a record
        stamped 3 h ahead; it fires when the wall clock gets there."""
        processor = self._with_an_open_p1(engine, topics)

        batch = processor.feed(
            raw_of(make_report(victim_ref=OTHER, time=THREE_HOURS_AHEAD)), CEILING
        )

        assert not any(isinstance(o, Escalation) for o in batch.outputs)
        escalations = [o for o in processor.advance(after(minutes=6)).outputs]
        assert [(o.victim_ref, o.stage) for o in escalations if isinstance(o, Escalation)] == [
            (VICTIM_REF, "ack")
        ]

    def test_the_clamp_is_observed_and_counted(self, engine: Engine, topics: Topics) -> None:
        """The clamp is an observation (how far ahead) that feeds triage_clock_clamped_total."""
        metrics = TriageMetrics()
        processor = self._with_an_open_p1(engine, topics)

        batch = processor.feed(
            raw_of(make_report(victim_ref=OTHER, time=THREE_HOURS_AHEAD)), CEILING
        )
        metrics.observe(batch.observations)

        (clamp,) = [o for o in batch.observations if isinstance(o, ClockClamped)]
        assert (clamp.event_type, clamp.seconds) == ("report.received", 177 * 60.0)
        labels = {"type": "report.received", "channel": "call_17_112"}
        assert metrics.registry.get_sample_value("triage_clock_clamped_total", labels) == 1

    def test_a_record_within_the_skew_is_taken_as_stamped(
        self, engine: Engine, topics: Topics
    ) -> None:
        """A record stamped at the ceiling or before is neither clamped nor counted."""
        processor = self._with_an_open_p1(engine, topics)

        batch = processor.feed(raw_of(make_report(victim_ref=OTHER, time=CEILING)), CEILING)

        assert "clock_clamped" not in {o.kind for o in batch.observations}
        assert [o.time for o in batch.outputs if isinstance(o, Decision)] == [CEILING]

    @pytest.mark.parametrize("later", [after(minutes=10), after(hours=4)], ids=["ahead", "due"])
    def test_a_clamped_report_redelivered_later_is_a_duplicate(
        self, engine: Engine, topics: Topics, later: datetime
    ) -> None:
        """The same record again under a later ceiling (still ahead of it, or not any more)
        is a duplicate, not a conflict: the clamp changed when it was taken, not what it is."""
        processor = self._with_an_open_p1(engine, topics)
        ahead = raw_of(make_report(victim_ref=OTHER, time=THREE_HOURS_AHEAD))
        processor.feed(ahead, CEILING)

        again = processor.feed(ahead, later)

        assert not any(isinstance(o, Decision | QueueRecord) for o in again.outputs)
        assert "duplicate" in {o.kind for o in again.observations}

    def test_replay_mode_clamps_nothing(self, engine: Engine, topics: Topics) -> None:
        """Without a ceiling the log is the truth: the record 3 h ahead moves the clock
        there and the open case's deadlines fire at their own times."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report(indicators=DANGER)))

        batch = processor.feed(raw_of(make_report(victim_ref=OTHER, time=THREE_HOURS_AHEAD)))

        assert processor.clock == THREE_HOURS_AHEAD
        assert [o.time for o in batch.outputs if isinstance(o, Escalation)] == [
            after(minutes=5),
            after(minutes=15),
        ]
        assert "clock_clamped" not in {o.kind for o in batch.observations}
