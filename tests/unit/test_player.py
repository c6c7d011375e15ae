"""Playing an event log onto Kafka: order, keys, exact timestamps, watermarks, pacing,
and checking that the broker acknowledged every record (player, ``replay``, ``publish``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the player imports it); with filterwarnings=error that fails
# collection. Import it once here with that one warning silenced, as the
# integration conftest does.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
    from kafka.future import Future

from triage.cli import cli
from triage.errors import BrokerError
from triage.events.wire import to_millis
from triage.replay.player import (
    WATERMARK_SOURCE,
    Delivery,
    PlayResult,
    play,
    undelivered_message,
    watermark_records,
)
from triage.replay.records import LogRecord, write_log
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


class FakeFuture(Future):  # type: ignore[misc]  # kafka-python is untyped
    """What ``send`` returns: settled by the fake producer's flush."""

    def get(self, timeout: float | None = None) -> object:
        """As ``FutureRecordMetadata.get``: the metadata, the error, or a timeout."""
        if not self.is_done:
            raise KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")
        if self.exception is not None:
            raise self.exception
        return self.value


@dataclass
class FakeProducer:
    """Records sends and flushes; each send may cost some fake time.

    A flush acknowledges every pending send except those in ``refuse`` (failed with
    that error) and ``unanswered`` (left pending: the flush then times out).
    """

    clock: FakeClock | None = None
    send_cost: float = 0.0
    fail_on: int | None = None
    refuse: dict[int, Exception] = field(default_factory=dict)
    unanswered: set[int] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    futures: list[FakeFuture] = field(default_factory=list)
    flushes: int = 0
    flush_timeouts: list[float | None] = field(default_factory=list)
    close_timeouts: list[float | None] = field(default_factory=list)

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        timestamp_ms: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> FakeFuture:
        """Record the call (and fail when asked to); return its future."""
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KafkaTimeoutError("no broker")
        self.calls.append(Call(topic, key, value, partition, timestamp_ms, headers or []))
        if self.clock is not None:
            self.clock.now += self.send_cost
        future = FakeFuture()
        self.futures.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Count flushes and settle the futures; time out if any is left unanswered."""
        self.flushes += 1
        self.flush_timeouts.append(timeout)
        for index, future in enumerate(self.futures):
            if future.is_done or index in self.unanswered:
                continue
            if index in self.refuse:
                future.failure(self.refuse[index])
            else:
                future.success(("metadata", index))
        if any(not f.is_done for f in self.futures):
            raise KafkaTimeoutError("Timeout waiting for future")

    def close(self, timeout: float | None = None) -> None:
        """Record the close and its timeout."""
        self.close_timeouts.append(timeout)


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

    def test_acknowledged_records_leave_nothing_undelivered(self) -> None:
        """When the broker acknowledges every send, records and watermarks, none is undelivered."""
        result = run(sample_log(), FakeProducer(), partitions=2)

        assert (result.sent, result.undelivered, result.error) == (5, 0, None)

    def test_refused_records_are_counted_by_error_type_only(self) -> None:
        """Sends whose futures fail are undelivered; the error is named by its type, without
        the record's contents that its text may carry."""
        log = sample_log()
        leak = log[2].value.decode()
        producer = FakeProducer(
            refuse={i: NotLeaderForPartitionError(f"refused {leak}") for i in (0, 2)}
        )

        result = run(log, producer, watermark=False)

        assert (result.records, result.undelivered) == (3, 2)
        assert result.error == "NotLeaderForPartitionError"

    def test_refused_watermarks_are_undelivered_too(self) -> None:
        """A watermark the broker refuses counts like a record."""
        producer = FakeProducer(refuse={4: KafkaTimeoutError("expired")})

        result = run(sample_log(), producer, partitions=3)

        assert (result.sent, result.undelivered, result.error) == (6, 1, "KafkaTimeoutError")

    def test_a_flush_that_times_out_counts_the_pending_records(self) -> None:
        """A broker that stops answering cannot hang the play: the final flush waits the
        delivery timeout and every record still pending is undelivered."""
        producer = FakeProducer(unanswered={1, 2})

        result = run(sample_log(), producer, watermark=False, delivery_timeout=2.5)

        assert producer.flush_timeouts == [2.5]
        assert result.undelivered == 2
        assert result.error == "KafkaTimeoutError: no acknowledgement within 2.5 s"

    def test_a_refusal_is_reported_before_a_later_timeout(self) -> None:
        """With records both refused and unanswered, the error names the refusal."""
        producer = FakeProducer(refuse={0: NotLeaderForPartitionError()}, unanswered={1})

        result = run(sample_log(), producer, watermark=False)

        assert (result.undelivered, result.error) == (2, "NotLeaderForPartitionError")


class TestWatermarkRecords:
    def test_watermark_records_are_deterministic(self) -> None:
        """The same end time gives the same watermark records (replays are byte-identical)."""
        first = watermark_records(Topics(), 2, BASE_TIME)

        assert first == watermark_records(Topics(), 2, BASE_TIME)
        assert [p for p, _ in first] == [0, 1]


class TestDelivery:
    def test_futures_already_failed_are_counted(self) -> None:
        """A future that failed before it was tracked (no metadata at send) is undelivered."""
        delivery = Delivery()
        failed = FakeFuture().failure(KafkaTimeoutError("no metadata"))
        done = FakeFuture().success("metadata")

        delivery.track(failed)
        delivery.track(done)

        assert (delivery.sent, delivery.delivered, delivery.failed) == (2, 1, 1)
        assert delivery.undelivered == 1

    def test_the_message_gives_counts_and_error_type(self) -> None:
        """The one-line report says how many of how many, and why, for any kind of record."""
        producer = FakeProducer(refuse={0: NotLeaderForPartitionError("x")})
        delivery = Delivery()
        for _ in range(3):
            delivery.track(producer.send("t", key=None, value=b"{}"))

        assert delivery.settle(producer, 1.0) == 1
        assert delivery.message("updates") == (
            "1 of 3 updates were not delivered (NotLeaderForPartitionError)"
        )

    def test_a_play_result_gives_the_same_message(self) -> None:
        """A play's result reads as the tracker does, records and watermarks together."""
        result = PlayResult(1085, 4, None, 1.0, undelivered=1089, error="KafkaTimeoutError")

        assert undelivered_message(result) == (
            "1089 of 1089 records were not delivered (KafkaTimeoutError)"
        )


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    """The sample log written as a JSON Lines event log."""
    path = tmp_path / "log.jsonl"
    write_log(path, sample_log())
    return path


def invoke(
    producer: FakeProducer, monkeypatch: pytest.MonkeyPatch, args: list[str], **kw: Any
) -> Result:
    """Run the command line with ``producer`` in place of a real Kafka producer."""
    monkeypatch.setattr("triage.replay.player.make_producer", lambda *_a, **_k: producer)
    return CliRunner().invoke(cli, args, **kw)


class TestReplayCommand:
    def test_a_delivered_replay_reports_and_exits_zero(
        self, log_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every record acknowledged: the usual summary line and exit 0."""
        producer = FakeProducer()

        result = invoke(producer, monkeypatch, ["replay", str(log_file), "--bootstrap", "h:1"])

        assert result.exit_code == 0, result.output
        assert "published 3 records and 4 watermarks" in result.stdout
        assert producer.close_timeouts == [5.0]

    def test_undelivered_records_print_one_error_line_and_exit_one(
        self, log_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Records the broker did not acknowledge: one plain error line, no summary, exit 1,
        and no record contents."""
        leak = sample_log()[0].value.decode()
        producer = FakeProducer(refuse={0: NotLeaderForPartitionError(leak)}, unanswered={5, 6})

        result = invoke(
            producer,
            monkeypatch,
            ["replay", str(log_file), "--bootstrap", "h:1", "--delivery-timeout", "0.5"],
        )

        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == (
            "error: 3 of 7 records were not delivered (NotLeaderForPartitionError)"
        )
        assert "published" not in result.stdout
        assert leak not in result.output
        assert producer.flush_timeouts == [0.5]


class TestPublishCommand:
    def test_an_acknowledged_event_is_published(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The broker acknowledges: the event is reported published, exit 0."""
        producer = FakeProducer()
        sent = FakeFuture().success("metadata")
        producer.send = lambda *_a, **_k: sent  # type: ignore[method-assign]

        result = invoke(
            producer, monkeypatch, ["publish", "-", "--bootstrap", "h:1"],
            input=make_report().model_dump_json(),
        )  # fmt: skip

        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("published report.received")
        assert producer.close_timeouts == [5.0]

    @pytest.mark.parametrize(
        ("error", "name"),
        [(None, "KafkaTimeoutError"), (NotLeaderForPartitionError, "NotLeaderForPartitionError")],
    )
    def test_an_unacknowledged_event_prints_one_error_line(
        self, monkeypatch: pytest.MonkeyPatch, error: type[Exception] | None, name: str
    ) -> None:
        """No acknowledgement (timeout or refusal): one plain error line naming the error
        type, no traceback, no event contents, exit 1."""
        event = make_report().model_dump_json()
        future = FakeFuture()
        if error is not None:
            future.failure(error(event))
        producer = FakeProducer()
        producer.send = lambda *_a, **_k: future  # type: ignore[method-assign]

        result = invoke(producer, monkeypatch, ["publish", "-", "--bootstrap", "h:1"], input=event)

        assert result.exit_code == 1
        assert result.stderr == (
            f"error: not published: the broker did not acknowledge the event ({name})\n"
        )
        assert event not in result.output
        assert producer.close_timeouts == [5.0]
