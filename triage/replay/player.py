"""Playing an event log onto Kafka (kafka-python producer), paced in event time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from triage.errors import BrokerError
from triage.events.inputs import ClockWatermark
from triage.replay.records import LogRecord, format_timestamp, to_millis
from triage.topics import Topics

WATERMARK_SOURCE = "urn:triage:replay"


@dataclass(frozen=True, slots=True)
class PlayResult:
    """What a play sent."""

    records: int
    watermarks: int
    last_timestamp: datetime | None
    seconds: float


def make_producer(bootstrap: str, security: dict[str, Any] | None = None) -> KafkaProducer:
    """A producer for replay and tools: idempotent, acks from all replicas, batched."""
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            **(security or {}),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from exc


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
) -> PlayResult:
    """Send ``records`` in order. ``speed=None`` is as fast as possible; ``speed=60``
    plays one event-time minute per wall second. Record timestamps are kept.

    With ``watermark``, a clock watermark goes to every reports partition at the
    end, so that every partition's stream clock reaches the end of the log.
    """
    began = monotonic()
    first: datetime | None = None
    last: datetime | None = None
    count = 0
    try:
        for record in records:
            if speed is not None:
                if first is None:
                    first = record.timestamp
                due = (record.timestamp - first).total_seconds() / speed
                ahead = due - (monotonic() - began)
                if ahead > 0:
                    sleep(ahead)
            _send(producer, topics.with_prefix(record.topic), record, None)
            last = record.timestamp if last is None or record.timestamp > last else last
            count += 1
            if on_sent is not None:
                on_sent(count, record)
        marks: Sequence[tuple[int, LogRecord]] = ()
        if watermark and last is not None:
            marks = watermark_records(topics, partitions, last)
            for partition, mark in marks:
                _send(producer, mark.topic, mark, partition)
        producer.flush()
    except KafkaError as exc:
        raise BrokerError(f"publishing failed: {exc}") from exc
    return PlayResult(count, len(marks), last, monotonic() - began)


def _send(producer: KafkaProducer, topic: str, record: LogRecord, partition: int | None) -> None:
    producer.send(
        topic,
        key=record.key.encode() if record.key is not None else None,
        value=record.value,
        partition=partition,
        timestamp_ms=to_millis(record.timestamp),
        headers=[(k, v.encode()) for k, v in record.headers.items()],
    )
