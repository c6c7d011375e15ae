"""Watching the output topics during the demo: what the worker wrote, counted."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from triage.events.outputs import Decision, Escalation, QueueRecord
from triage.topics import Topics


@dataclass(slots=True)
class Tally:
    """Live counts of what the worker produced (read by the display thread)."""

    decisions: Counter[str] = field(default_factory=Counter)
    queue_records: Counter[tuple[str, str]] = field(default_factory=Counter)
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: int = 0
    ids: set[str] = field(default_factory=set)


class OutputMonitor(threading.Thread):
    """Consumes every output topic and counts what it reads (each id once).

    It only watches: the responders' answers are planned ahead and published with
    the reports (:mod:`triage.demo.plan`), so nothing here feeds the worker.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        security: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name="demo-monitor", daemon=True)
        self.topics = topics
        self.tally = Tally()
        self.lock = threading.Lock()
        self._stop_event = threading.Event()
        self._servers = bootstrap
        self._security = security or {}
        self.error: BaseException | None = None

    def stop(self) -> None:
        """Ask the thread to finish its current poll and exit."""
        self._stop_event.set()

    def run(self) -> None:
        """Poll and tally until stopped."""
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
        except KafkaError:
            if not self._stop_event.is_set():
                raise
        finally:
            consumer.close()

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
