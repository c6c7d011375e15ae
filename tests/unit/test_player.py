"""Playing an event log onto Kafka: order, keys, exact timestamps, watermarks, pacing."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pytest

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the player imports it); with filterwarnings=error that fails
# collection. Import it once here with that one warning silenced, as the
# integration conftest does.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from kafka.errors import KafkaTimeoutError

from triage.errors import BrokerError
from triage.replay.player import WATERMARK_SOURCE, PlayResult, play, watermark_records
from triage.replay.records import LogRecord, to_millis
from triage.testing import (
    BASE_TIME,
    after,
    make_ack,
    make_raw,
    make_report,
    record_of,
)
from triage.topics import Topics


@dataclass(frozen=True, slots=True)
class Call:
    """One ``producer.send`` call."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None
    timestamp_ms: int
    headers: list[tuple[str, bytes]]


@dataclass
class FakeClock:
    """A monotonic clock that only moves when slept on (or when told to)."""

    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        """The current fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock by it."""
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeProducer:
    """Records sends and flushes; each send may cost some fake time."""

    clock: FakeClock | None = None
    send_cost: float = 0.0
    fail_on: int | None = None
    calls: list[Call] = field(default_factory=list)
    flushes: int = 0

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        timestamp_ms: int,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Record the call (and fail when asked to)."""
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KafkaTimeoutError("no broker")
        self.calls.append(Call(topic, key, value, partition, timestamp_ms, headers))
        if self.clock is not None:
            self.clock.now += self.send_cost

    def flush(self) -> None:
        """Count flushes."""
        self.flushes += 1


def sample_log() -> list[LogRecord]:
    """A report, its acknowledgement, and another victim's report, a few minutes apart."""
    report = make_report()
    return [
        record_of(report),
        record_of(make_ack(time=after(minutes=1, milliseconds=7))),
        record_of(make_report(victim_ref="V-0002B3", time=after(minutes=3))),
    ]


def run(
    records: list[LogRecord],
    producer: FakeProducer,
    clock: FakeClock | None = None,
    **kwargs: Any,
) -> PlayResult:
    """``play`` with the fake producer and clock, four partitions, canonical topics."""
    clock = clock if clock is not None else FakeClock()
    options: dict[str, Any] = {"speed": None, "partitions": 4, **kwargs}
    return play(
        records,
        producer,
        options.pop("topics", Topics()),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        **options,
    )


class TestPlay:
    def test_records_are_sent_in_order_with_key_timestamp_and_headers(self) -> None:
        """Each record is sent as logged: same order, key, value, ms timestamp and headers."""
        log = sample_log()
        producer = FakeProducer()

        result = run(log, producer, watermark=False)

        assert [c.value for c in producer.calls] == [r.value for r in log]
        assert [c.topic for c in producer.calls] == [r.topic for r in log]
        assert [c.key for c in producer.calls] == [r.key.encode() for r in log if r.key]
        assert [c.timestamp_ms for c in producer.calls] == [to_millis(r.timestamp) for r in log]
        assert [c.partition for c in producer.calls] == [None, None, None]
        for call, record in zip(producer.calls, log, strict=True):
            assert call.headers == [(k, v.encode()) for k, v in record.headers.items()]
        assert (result.records, result.watermarks, result.last_timestamp) == (
            3,
            0,
            after(minutes=3),
        )
        assert producer.flushes == 1

    @pytest.mark.parametrize(
        "when",
        [after(milliseconds=1), after(milliseconds=999), after(days=-9000, milliseconds=123)],
    )
    def test_timestamps_are_exact_milliseconds(self, when: datetime) -> None:
        """The Kafka timestamp is the record's time in whole milliseconds, never off by one."""
        producer = FakeProducer()

        run([record_of(make_report(time=when))], producer, watermark=False)

        (call,) = producer.calls
        assert call.timestamp_ms == to_millis(when)
        assert call.timestamp_ms % 1000 == when.microsecond // 1000

    def test_a_prefix_is_applied_to_every_topic(self) -> None:
        """Log records name canonical topics; the player sends them under the prefix."""
        producer = FakeProducer()
        topics = Topics("test.")

        run(sample_log(), producer, topics=topics)

        assert {c.topic for c in producer.calls} == {
            "test.dv.reports.v1",
            "test.dv.case-updates.v1",
        }

    def test_keyless_and_malformed_records_are_sent_as_they_are(self) -> None:
        """A record without a key, or with bytes that are not JSON, goes out unchanged."""
        raw = make_raw(b"\xff not json")
        record = LogRecord(Topics().reports, None, raw.timestamp, raw.value)
        producer = FakeProducer()

        run([record], producer, watermark=False)

        (call,) = producer.calls
        assert (call.key, call.value, call.headers) == (None, b"\xff not json", [])

    def test_on_sent_is_told_of_each_record(self) -> None:
        """The progress callback sees each record with a running count."""
        seen: list[tuple[int, LogRecord]] = []
        log = sample_log()

        run(log, FakeProducer(), on_sent=lambda n, r: seen.append((n, r)))

        assert seen == list(enumerate(log, start=1))

    def test_broker_errors_become_broker_error(self) -> None:
        """A kafka-python error while sending is raised as triage's own BrokerError."""
        with pytest.raises(BrokerError, match="publishing failed"):
            run(sample_log(), FakeProducer(fail_on=1))

    def test_one_watermark_per_reports_partition_at_the_last_time(self) -> None:
        """After the log, every reports partition gets a watermark at the latest record time."""
        producer = FakeProducer()
        log = sample_log()
        log.append(record_of(make_ack(time=after(minutes=2))))  # not the latest

        result = run(log, producer, partitions=3)

        marks = producer.calls[len(log) :]
        assert [m.partition for m in marks] == [0, 1, 2]
        assert {m.topic for m in marks} == {Topics().reports}
        assert {m.key for m in marks} == {None}
        assert {m.timestamp_ms for m in marks} == {to_millis(after(minutes=3))}
        for mark in marks:
            body = orjson.loads(mark.value)
            assert body["type"] == "clock.watermark"
            assert body["source"] == WATERMARK_SOURCE
            assert body["time"].startswith("2026-01-05T10:03:00")
        assert len({orjson.loads(m.value)["id"] for m in marks}) == 3
        assert (result.watermarks, result.last_timestamp) == (3, after(minutes=3))
        assert producer.flushes == 1

    def test_watermarks_use_the_prefix(self) -> None:
        """Watermarks go to the prefixed reports topic."""
        producer = FakeProducer()

        run(sample_log(), producer, topics=Topics("x."), partitions=2)

        assert [c.topic for c in producer.calls[-2:]] == ["x.dv.reports.v1"] * 2

    def test_an_empty_log_sends_no_watermark(self) -> None:
        """Without records there is no time to mark; the producer is still flushed."""
        producer = FakeProducer()

        result = run([], producer)

        assert (producer.calls, producer.flushes) == ([], 1)
        assert (result.records, result.watermarks, result.last_timestamp) == (0, 0, None)

    def test_speed_none_never_sleeps(self) -> None:
        """As fast as possible: not a single sleep, whatever the gaps in event time."""
        clock = FakeClock()
        log = [record_of(make_report(time=after(days=d))) for d in (0, 30, 365)]

        run(log, FakeProducer(), clock)

        assert clock.slept == []

    def test_speed_plays_event_time_scaled(self) -> None:
        """At speed 60 one event-time minute takes one wall second, counted from the start."""
        clock = FakeClock()

        result = run(sample_log(), FakeProducer(), clock, speed=60.0)

        # Records at +0, +1 min 7 ms and +3 min: due at 0 s, 1.000117 s and 3 s.
        assert clock.slept == pytest.approx([1.0 + 0.007 / 60, 3.0 - (1.0 + 0.007 / 60)])
        assert result.seconds == pytest.approx(3.0)

    def test_time_spent_sending_is_not_slept_again(self) -> None:
        """Pacing is against the schedule: time already spent sending shortens the sleep."""
        clock = FakeClock()
        producer = FakeProducer(clock=clock, send_cost=0.25)
        log = [record_of(make_report(time=after(minutes=m))) for m in (0, 1, 3)]

        run(log, producer, clock, speed=60.0, watermark=False)

        assert clock.slept == pytest.approx([0.75, 1.75])

    def test_a_late_schedule_does_not_sleep(self) -> None:
        """When sending runs behind the schedule, the player does not sleep to catch up."""
        clock = FakeClock()
        producer = FakeProducer(clock=clock, send_cost=5.0)
        log = [record_of(make_report(time=after(minutes=m))) for m in (0, 1, 3)]

        run(log, producer, clock, speed=60.0, watermark=False)

        assert clock.slept == []

    def test_out_of_order_records_are_sent_without_waiting(self) -> None:
        """A record earlier than the first is due at once: no negative sleep."""
        clock = FakeClock()
        log = [record_of(make_report(time=after(minutes=m))) for m in (5, 0, 6)]

        run(log, FakeProducer(), clock, speed=60.0, watermark=False)

        assert clock.slept == pytest.approx([1.0])


class TestWatermarkRecords:
    def test_watermark_records_are_deterministic(self) -> None:
        """The same end time gives the same watermark records (replays are byte-identical)."""
        first = watermark_records(Topics(), 2, BASE_TIME)

        assert first == watermark_records(Topics(), 2, BASE_TIME)
        assert [p for p, _ in first] == [0, 1]
