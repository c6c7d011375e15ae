"""The demo's stream is planned in event time: the responders' answers are a function of
the queue records (hence of the seed), stamped after what they answer, interleaved with
the reports in the order the worker's merge takes them."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_responders import queue_record
from triage.demo.plan import Expected, Plan, plan_demo
from triage.demo.responders import ACK_HANDLING, ResponderPool
from triage.events.base import Level
from triage.events.inputs import CaseAcknowledged, CaseActionTaken
from triage.events.wire import to_millis
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.testing import BASE_TIME, after
from triage.topics import Topics

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the demo's run module imports it); with filterwarnings=error that fails.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.demo.monitor import Tally
    from triage.demo.run import differences, in_topic_order

START = date(2026, 3, 2)
END = datetime(2026, 3, 4, tzinfo=UTC)
REPORTS, UPDATES = Topics().reports, Topics().updates


def reports(engine: Engine, seed: int) -> list[LogRecord]:
    """Two days of a small synthetic population: reports and alarms only, as the demo."""
    config = GeneratorConfig(victims=40, days=2, start=START, seed=seed, bad_rate=0.02)
    return [r for r in generate_log(config, engine) if r.topic == REPORTS]


@pytest.fixture(name="plan", scope="module")
def _plan(engine: Engine) -> Plan:
    return plan_demo(reports(engine, 62), engine, END)


def answers(events: list[CaseAcknowledged | CaseActionTaken]) -> list[dict[str, Any]]:
    """Events as plain data, every field (times included)."""
    return [e.model_dump(mode="json") for e in events]


class TestResponderSchedule:
    def test_the_same_records_get_the_same_answers_at_the_same_times(self) -> None:
        """Two pools given the same queue records answer with the same events, stamped the
        same: the schedule depends on the records, not on when or where it runs."""
        records = [
            queue_record(n, level=level, queue=queue, time=after(minutes=7 * n))
            for n, (level, queue) in enumerate(
                [(Level.P3, "follow-up"), (Level.P1, "immediate"), (Level.P4, "standard")] * 5
            )
        ]

        def schedule() -> list[dict[str, Any]]:
            pool = ResponderPool({"follow-up": 1, "immediate": 1, "standard": 1})
            for record in records:
                pool.offer(record)
            pool.advance(after(days=5))
            return answers(pool.due())

        first, second = schedule(), schedule()

        assert first == second
        assert len(first) == 2 * len(records)

    def test_a_record_is_not_taken_before_the_team_sees_it(self) -> None:
        """A re-assessment stamped 10:00 but written when the stream clock was at 10:30 is
        acknowledged from 10:30 on, not from its own time."""
        pool = ResponderPool({"follow-up": 1})
        pool.offer(queue_record(1, time=BASE_TIME), seen=after(minutes=30))
        pool.advance(after(days=1))

        ack, _action = pool.due()

        assert ack.time == after(minutes=30) + ACK_HANDLING

    def test_due_before_leaves_later_answers_scheduled(self) -> None:
        """``due(before=…)`` gives only what is stamped earlier; the rest stays due."""
        pool = ResponderPool({"immediate": 1})
        pool.offer(queue_record(1, level=Level.P1, queue="immediate"))
        pool.advance(after(hours=1))

        assert [e.id for e in pool.due(before=after(minutes=2))] == []
        assert [e.id for e in pool.due(before=after(minutes=3))] == ["ack-Q-0001"]
        assert [e.id for e in pool.due()] == ["act-Q-0001"]


class TestPlan:
    def test_the_plan_is_a_function_of_the_log(self, engine: Engine, plan: Plan) -> None:
        """Planned twice from one seed: the same records, bytes and timestamps; another
        seed gives another stream."""
        again = plan_demo(reports(engine, 62), engine, END)
        other = plan_demo(reports(engine, 63), engine, END)

        assert [r.to_line() for r in again.feed] == [r.to_line() for r in plan.feed]
        assert [r.to_line() for r in other.feed] != [r.to_line() for r in plan.feed]
        assert plan.updates > 0

    def test_records_are_in_the_order_the_worker_merges_them(self, plan: Plan) -> None:
        """By timestamp to the millisecond, a report before an update on a tie; every
        update stamped before the end of the period."""
        order = [(to_millis(r.timestamp), 0 if r.topic == REPORTS else 1) for r in plan.feed]

        assert order == sorted(order)
        assert all(r.timestamp < END for r in plan.feed if r.topic == UPDATES)

    def test_answers_follow_what_they_answer(self, plan: Plan) -> None:
        """Each acknowledgement comes after its queue record by ``ACK_HANDLING`` or more,
        and each action after its acknowledgement."""
        sent = {r.headers["ce_id"]: r.timestamp for r in plan.feed if r.topic == UPDATES}
        for h in plan.responders.handled:
            assert h.ack_seconds >= ACK_HANDLING.total_seconds()
            assert h.action_seconds > h.ack_seconds
        for ident, when in sent.items():
            if ident.startswith("act-"):
                assert sent["ack-" + ident.removeprefix("act-")] < when
        assert plan.responders.handled

    def test_replaying_the_feed_gives_the_plans_counts(self, engine: Engine, plan: Plan) -> None:
        """A fresh processor fed the planned stream (then the closing watermark) writes
        what the plan expects: the worker, reading the same stream, is checked
        against these counts."""
        topics = Topics()
        processor = Processor(engine, topics)
        counted = Expected()
        for record in plan.feed:
            for output in processor.feed(to_raw(record, topics)).outputs:
                counted.add(output)
        for output in processor.advance(END).outputs:
            counted.add(output)

        assert (counted.decisions, counted.queue_records, counted.escalations) == (
            plan.expected.decisions,
            plan.expected.queue_records,
            plan.expected.escalations,
        )
        assert counted.dead_letters == plan.expected.dead_letters
        assert sum(plan.expected.queue_records.values()) > 0

    def test_only_reports_and_alarms_are_planned(self, engine: Engine) -> None:
        """Case updates in the input would not be the responders': refused."""
        update = LogRecord(UPDATES, "V-0001AA", BASE_TIME, b"{}")

        with pytest.raises(ValueError, match="reports and alarms only"):
            plan_demo([update], engine, BASE_TIME + timedelta(days=1))


class FakeProducer:
    """Records sends and flushes, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def flush(self, timeout: float | None = None) -> None:
        self.calls.append("flush")


class TestPublishing:
    def test_the_producer_is_flushed_at_every_change_of_topic(self) -> None:
        """Each record is on the broker before a later record of the other topic is sent."""
        topics = [REPORTS, REPORTS, UPDATES, UPDATES, REPORTS, UPDATES]
        records = [LogRecord(t, "V-0001AA", after(minutes=n), b"{}") for n, t in enumerate(topics)]
        producer = FakeProducer()

        for record in in_topic_order(records, producer, 5.0):  # type: ignore[arg-type]
            producer.calls.append(record.topic)

        assert producer.calls == [
            REPORTS, REPORTS, "flush", UPDATES, UPDATES, "flush", REPORTS, "flush", UPDATES,
        ]  # fmt: skip

    def test_the_workers_counts_are_checked_against_the_plan(self, plan: Plan) -> None:
        """The same counts: no difference; one decision missing: named, with both counts."""
        tally = Tally()
        tally.decisions.update(plan.expected.decisions)
        tally.queue_records.update(plan.expected.queue_records)
        tally.escalations.update(plan.expected.escalations)
        tally.dead_letters = plan.expected.dead_letters

        assert differences(tally, plan.expected) == []

        level, count = next(iter(plan.expected.decisions.items()))
        tally.decisions[level] -= 1
        assert differences(tally, plan.expected) == [f"decisions {level}: {count - 1} ≠ {count}"]
