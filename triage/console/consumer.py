"""The read model's feeder: a thread that reads the topics and writes the projection.

It assigns itself every partition of the decisions, queue and case-update topics
(no consumer group: its place is the offsets stored in the read model, written in
the same transaction as the rows), projects each record and tells the web app that
something changed.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from triage.console.projection import CaseSeen, Change, project, role_of
from triage.console.store import ReadModel
from triage.console.web import Notice
from triage.observability.logging import get_logger
from triage.topics import Topics

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

log = get_logger("triage.console")


class Feeder(threading.Thread):
    """Consumes the console's topics into a :class:`ReadModel` until stopped."""

    def __init__(
        self,
        bootstrap: str,
        security: dict[str, Any],
        topics: Topics,
        model: ReadModel,
        secret: bytes,
        on_change: Callable[[], None],
        level_queues: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name="console-feeder", daemon=True)
        self._level_queues = dict(level_queues or {})
        """Each level's queue in the workers' rule set (an override withdraws the work
        in the previous level's queue)."""
        self.topics = topics
        self.model = model
        self._secret = secret
        self._on_change = on_change
        self._servers = bootstrap
        self._security = security
        self._stop_event = threading.Event()
        self.stream_time: datetime | None = None
        """The latest event time read (the demo's clock: its worker runs on event time)."""
        self.error: BaseException | None = None
        self.records = 0
        """Records read and written since this feeder started."""
        self.ready = threading.Event()
        """Set once every partition found has been read to its end at least once."""

    def status(self) -> Notice | None:
        """What the pages must say about the read model (None: up to date)."""
        if self.error is not None or (self.ident is not None and not self.is_alive()):
            name = type(self.error).__name__ if self.error else "stopped"
            return Notice(
                f"The read model stopped ({name}): what you see may be out of date.", failed=True
            )
        if not self.ready.is_set():
            return Notice("Catching up with the topics: the lists may be incomplete.")
        return None

    def stop(self) -> None:
        """Finish the current poll and exit."""
        self._stop_event.set()

    def run(self) -> None:
        """Poll, project, write; keep the error for the app to report."""
        try:
            self._run()
        except BaseException as exc:
            self.error = exc
            log.exception("console_feeder_failed")

    def _wanted(self) -> list[str]:
        return [self.topics.decisions, self.topics.updates, *self.topics.queues]

    def _run(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self._servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._security,
        )
        assigned: set[TopicPartition] = set()
        last_check = 0.0
        began = time.monotonic()
        try:
            while not self._stop_event.is_set():
                # Often at start (topics being created), then every 5 s (new partitions).
                settled = self.ready.is_set() or time.monotonic() - began > 10
                if time.monotonic() - last_check > (5.0 if settled else 0.5):
                    last_check = time.monotonic()
                    self._assign(consumer, assigned)
                if not assigned:
                    self._stop_event.wait(0.2)
                    continue
                batches = consumer.poll(timeout_ms=100, max_records=2000)
                rows: list[tuple[str, int, int, list[Change]]] = []
                latest: datetime | None = None
                for tp, records in batches.items():
                    role = role_of(tp.topic, self.topics)
                    for message in records:
                        changes = (
                            project(role, message.value, self._secret, self._level_queues)
                            if role
                            else []
                        )
                        rows.append((tp.topic, tp.partition, message.offset, changes))
                        for change in changes:
                            if isinstance(change, CaseSeen):
                                latest = change.time if latest is None else max(latest, change.time)
                if rows:
                    self.records += self.model.apply(rows)
                    if latest is not None and (
                        self.stream_time is None or latest > self.stream_time
                    ):
                        self.stream_time = latest
                    self._on_change()
                elif not self.ready.is_set() and assigned:
                    self.ready.set()
        except KafkaError:
            if not self._stop_event.is_set():
                raise
        finally:
            consumer.close()

    def _assign(self, consumer: Any, assigned: set[TopicPartition]) -> None:
        found = {
            TopicPartition(t, p)
            for t in self._wanted()
            for p in sorted(consumer.partitions_for_topic(t) or ())
        }
        if found <= assigned:
            return
        assigned |= found
        consumer.assign(sorted(assigned))
        stored = self.model.offsets()
        for tp in assigned:  # assign() forgets positions: every partition is placed again
            position = stored.get((tp.topic, tp.partition))
            if position is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, position)
