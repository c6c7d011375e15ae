"""Playing an event log onto Kafka (kafka-python producer), paced in event time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from triage.broker.admin import unreachable
from triage.errors import BrokerError
from triage.events.inputs import ClockWatermark
from triage.events.wire import format_timestamp, to_millis
from triage.replay.records import LogRecord
from triage.topics import Topics

WATERMARK_SOURCE = "urn:triage:replay"
DELIVERY_TIMEOUT = 60.0
"""Seconds a play waits, at the end, for the broker to acknowledge what it sent."""


@dataclass(frozen=True, slots=True)
class PlayResult:
    """What a play sent, and how much of it the broker did not acknowledge."""

    records: int
    watermarks: int
    last_timestamp: datetime | None
    seconds: float
    undelivered: int = 0
    error: str | None = None  # the first delivery error's type (never record contents)

    @property
    def sent(self) -> int:
        """Records and watermarks handed to the producer."""
        return self.records + self.watermarks


class Delivery:
    """Counts what the broker acknowledged of the records sent through a producer.

    kafka-python's ``send`` only queues a record; the future it returns says later
    whether the broker took it. Callbacks count both outcomes (the producer's I/O
    thread runs them, hence the lock) and no future or record is kept. An error is
    remembered by its type only, so its text cannot carry a record's contents.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.error: str | None = None

    def track(self, future: Any) -> None:
        """Count the record behind ``future`` (what ``producer.send`` returned)."""
        with self._lock:
            self.sent += 1
        future.add_callback(self._delivered)
        future.add_errback(self._failed)

    @property
    def undelivered(self) -> int:
        """Records sent and not (yet) acknowledged: failed, or still pending."""
        with self._lock:
            return self.sent - self.delivered

    def settle(self, producer: KafkaProducer, timeout: float) -> int:
        """Flush ``producer``, waiting at most ``timeout`` seconds (a stopped broker
        never answers); returns the records not delivered by then."""
        try:
            producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            with self._lock:
                if self.error is None and self.sent > self.delivered:
                    self.error = f"KafkaTimeoutError: no acknowledgement within {timeout:g} s"
        return self.undelivered

    def message(self, what: str = "records") -> str:
        """One plain line: ``N of M records were not delivered (ErrorType)``."""
        return _undelivered_message(self.undelivered, self.sent, self.error, what)

    def _delivered(self, _metadata: object) -> None:
        with self._lock:
            self.delivered += 1

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            if self.error is None:
                self.error = type(exc).__name__


def undelivered_message(result: PlayResult, what: str = "records") -> str:
    """One plain line saying how much of a play the broker did not acknowledge."""
    return _undelivered_message(result.undelivered, result.sent, result.error, what)


def _undelivered_message(undelivered: int, sent: int, error: str | None, what: str) -> str:
    reason = f" ({error})" if error else ""
    return f"{undelivered} of {sent} {what} were not delivered{reason}"


def make_producer(
    bootstrap: str,
    security: dict[str, Any] | None = None,
    *,
    connect_timeout: float = 30.0,
    source: str | None = None,
) -> KafkaProducer:
    """A producer for replay and tools: idempotent, acks from all replicas, batched.

    A broker that does not answer within ``connect_timeout`` seconds is a
    :class:`BrokerError` naming its address and ``source`` (where it came from).
    """
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            bootstrap_timeout_ms=max(int(connect_timeout * 1000), 100),
            **(security or {}),
        )
    except KafkaTimeoutError:
        raise unreachable(bootstrap, connect_timeout, source) from None
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from exc


def close_producer(producer: KafkaProducer, timeout: float = 5.0) -> None:
    """Close ``producer``, waiting at most ``timeout`` seconds for what it still holds.

    kafka-python's ``close(timeout)`` raises when its final flush times out (a
    stopped broker) and leaves its I/O thread retrying until the delivery timeout
    (two minutes); the thread is then stopped without sending. Whoever sent those
    records has counted them as undelivered already.
    """
    try:
        producer.close(timeout=timeout)
    except KafkaError:
        sender = getattr(producer, "_sender", None)  # no public way to stop it
        if sender is not None:
            sender.force_close()  # fails the pending records, closes the connections
            sender.join(timeout)
        with contextlib.suppress(KafkaError):
            producer.close(timeout=0)


def watermark_records(
    topics: Topics, partitions: int, when: datetime
) -> list[tuple[int, LogRecord]]:
    """One clock watermark per partition of the reports topic, all at ``when``."""
    stamp = format_timestamp(when)
    out = []
    for partition in range(partitions):
        mark = ClockWatermark(id=f"wm-{stamp}-p{partition}", source=WATERMARK_SOURCE, time=when)
        out.append(
            (partition, LogRecord.of_json(topics.reports, None, when, mark.model_dump(mode="json")))
        )
    return out


def play(
    records: Iterable[LogRecord],
    producer: KafkaProducer,
    topics: Topics,
    *,
    speed: float | None,
    partitions: int,
    watermark: bool = True,
    on_sent: Callable[[int, LogRecord], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    delivery_timeout: float = DELIVERY_TIMEOUT,
) -> PlayResult:
    """Send ``records`` in order. ``speed=None`` is as fast as possible; ``speed=60``
    plays one event-time minute per wall second. Record timestamps are kept.

    With ``watermark``, a clock watermark goes to every reports partition at the
    end, so that every partition's stream clock reaches the end of the log.

    Every send is checked: the result counts the records the broker did not
    acknowledge (refused, or still unanswered ``delivery_timeout`` seconds into the
    final flush). A send that raises at once is a :class:`BrokerError`.
    """
    began = monotonic()
    first: datetime | None = None
    last: datetime | None = None
    count = 0
    delivery = Delivery()
    try:
        for record in records:
            if speed is not None:
                if first is None:
                    first = record.timestamp
                due = (record.timestamp - first).total_seconds() / speed
                ahead = due - (monotonic() - began)
                if ahead > 0:
                    sleep(ahead)
            delivery.track(_send(producer, topics.with_prefix(record.topic), record, None))
            last = record.timestamp if last is None or record.timestamp > last else last
            count += 1
            if on_sent is not None:
                on_sent(count, record)
        marks: Sequence[tuple[int, LogRecord]] = ()
        if watermark and last is not None:
            marks = watermark_records(topics, partitions, last)
            for partition, mark in marks:
                delivery.track(_send(producer, mark.topic, mark, partition))
        undelivered = delivery.settle(producer, delivery_timeout)
    except KafkaError as exc:
        raise BrokerError(f"publishing failed: {exc}") from exc
    return PlayResult(count, len(marks), last, monotonic() - began, undelivered, delivery.error)


def _send(producer: KafkaProducer, topic: str, record: LogRecord, partition: int | None) -> Any:
    return producer.send(
        topic,
        key=record.key.encode() if record.key is not None else None,
        value=record.value,
        partition=partition,
        timestamp_ms=to_millis(record.timestamp),
        headers=[(k, v.encode()) for k, v in record.headers.items()],
    )
