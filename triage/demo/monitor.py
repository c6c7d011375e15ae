"""Watching the output topics during the demo, and driving the responders from them."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from triage.demo.responders import ResponderPool
from triage.errors import BrokerError
from triage.events.outputs import Decision, Escalation, QueueRecord
from triage.events.wire import to_millis
from triage.replay.player import Delivery, close_producer
from triage.topics import Topics


@dataclass(slots=True)
class Tally:
    """Live counts of what the worker produced (read by the display thread)."""

    decisions: Counter[str] = field(default_factory=Counter)
    queue_records: Counter[tuple[str, str]] = field(default_factory=Counter)
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: int = 0
    updates_sent: int = 0
    ids: set[str] = field(default_factory=set)


class OutputMonitor(threading.Thread):
    """Consumes every output topic; feeds queue records to the responders and
    publishes their acknowledgements and actions to the case-updates topic."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        pool: ResponderPool,
        *,
        security: dict[str, Any] | None = None,
        delivery_timeout: float = 30.0,
    ) -> None:
        super().__init__(name="demo-monitor", daemon=True)
        self.topics = topics
        self.pool = pool
        self.tally = Tally()
        self.lock = threading.Lock()
        self._stop_event = threading.Event()
        self._servers = bootstrap
        self._security = security or {}
        self.error: BaseException | None = None
        self._advance_to: datetime | None = None
        self._delivery_timeout = delivery_timeout

    def stop(self) -> None:
        """Ask the thread to finish its current poll and exit."""
        self._stop_event.set()

    def advance_responders(self, when: datetime) -> None:
        """Let the responders' clock reach ``when`` (end of the period)."""
        with self.lock:
            self._advance_to = when

    def run(self) -> None:
        """Poll, tally, respond; until stopped."""
        try:
            self._run()
        except BaseException as exc:  # reported by the demo, not lost
            self.error = exc

    def _run(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self._servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._security,
        )
        producer = KafkaProducer(
            bootstrap_servers=self._servers, acks="all", linger_ms=5, **self._security
        )
        try:
            wanted = [self.topics.decisions, self.topics.deadletter, *self.topics.queues]
            parts = [
                TopicPartition(t, p)
                for t in wanted
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            consumer.assign(parts)
            consumer.seek_to_beginning()
            while not self._stop_event.is_set():
                batches = consumer.poll(timeout_ms=100, max_records=2000)
                for records in batches.values():
                    for message in records:
                        self._take(message.topic, message.value)
                with self.lock:
                    if self._advance_to is not None:
                        self.pool.advance(self._advance_to)
                        self._advance_to = None
                    due = self.pool.due()
                delivery = Delivery()
                for event in due:
                    delivery.track(
                        producer.send(
                            self.topics.updates,
                            key=event.victim_ref.encode(),
                            value=event.model_dump_json().encode(),
                            timestamp_ms=to_millis(event.time),
                        )
                    )
                if due:
                    if delivery.settle(producer, self._delivery_timeout):
                        raise BrokerError(delivery.message("responder updates"))
                    with self.lock:
                        self.tally.updates_sent += len(due)
        except KafkaError:
            if not self._stop_event.is_set():
                raise
        finally:
            consumer.close()
            close_producer(producer)

    def _take(self, topic: str, value: bytes) -> None:
        tally = self.tally
        try:
            if topic == self.topics.deadletter:
                with self.lock:
                    tally.dead_letters += 1
                return
            if topic == self.topics.decisions:
                if b'"triage.decision"' in value:
                    decision = Decision.model_validate_json(value)
                    with self.lock:
                        if decision.id not in tally.ids:
                            tally.ids.add(decision.id)
                            tally.decisions[decision.level.value] += 1
                return
            if topic == self.topics.queue("supervisor"):
                escalation = Escalation.model_validate_json(value)
                with self.lock:
                    if escalation.id not in tally.ids:
                        tally.ids.add(escalation.id)
                        tally.escalations[(escalation.level.value, escalation.stage)] += 1
                return
            record = QueueRecord.model_validate_json(value)
        except ValidationError:
            return  # not ours to judge here; the worker validated what it wrote
        with self.lock:
            if record.id not in tally.ids:
                tally.ids.add(record.id)
                tally.queue_records[(record.queue, record.level.value)] += 1
            self.pool.offer(record)
