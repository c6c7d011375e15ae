"""The processor: many victims, one stream clock driven by event time, de-duplication."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event_logs, feed_each, flatten
from triage.events.outputs import DeadLetter, Decision, Escalation, QueueRecord
from triage.pipeline.engine import Engine, Step
from triage.pipeline.observations import Observation
from triage.pipeline.processor import Batch, Processor
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
        assert [o.reason for o in batch.observations if o.kind == "refused"] == ["invalid_json"]
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
        accepted = [
            i
            for i, lines in enumerate(batches[: len(log)])
            if not any(b"triage.dead_letter" in x for x in lines)
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
        record = raw_of(make_ack())

        first, again = processor.feed(record), processor.feed(record)

        assert first.outputs == again.outputs
        assert [type(o) for o in first.outputs] == [DeadLetter]


class TestBatch:
    def test_take_appends_in_order(self) -> None:
        """A batch appends a step's outputs and observations after what it already has."""
        batch = Batch(observations=[Observation("duplicate")])

        batch.take(Step(None, (), (Observation("refused"),)))

        assert [o.kind for o in batch.observations] == ["duplicate", "refused"]
