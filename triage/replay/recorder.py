"""Recording Kafka topics into an event log (kafka-python consumer, no consumer group).

``triage record`` reads every partition of the chosen topics from the beginning,
keeps the records stamped inside ``[since, until)``, and writes them in the
event-log line format with canonical (unprefixed) topic names, ordered by record
timestamp, then topic, partition and offset. A recorded log replays like a
generated one.

The embedded broker does not answer ListOffsets by timestamp, so ``since`` is
applied by reading from the beginning and filtering (on Apache Kafka too: one
code path). The recording stops:

- with ``caught_up``: at the end offsets taken when it started (see below);
- with ``until``: once every partition has delivered a record stamped at or
  after ``until``, or sits at its end while the wall clock is past ``until``;
- otherwise: when interrupted (Ctrl-C); what was read is kept.

End offsets come from :func:`triage.broker.admin.end_offsets`, not from
``KafkaConsumer.end_offsets()``: Tansu answers ListOffsets(latest) with the base
offset of the partition's last record batch plus one, not with its end.

Records are held in memory until the end (they are sorted across partitions).
Keys and header values that are not UTF-8 cannot be written in the line format;
they are decoded with replacement characters and counted in :attr:`Recorder.lossy`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from triage.broker.admin import end_offsets, unreachable
from triage.clock import Clock, SystemClock
from triage.errors import BrokerError
from triage.events.wire import from_millis
from triage.replay.records import LogRecord
from triage.topics import Topics


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordWindow:
    """Which records to keep and when to stop."""

    since: datetime | None = None
    """Keep records stamped at or after this time."""
    until: datetime | None = None
    """Keep records stamped before this time; stop once every partition passed it."""
    caught_up: bool = False
    """Stop at the end offsets taken at start."""

    def __post_init__(self) -> None:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("--from must be before --until")

    def keeps(self, when: datetime) -> bool:
        """Whether a record stamped ``when`` belongs to the recording."""
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


@dataclass(slots=True)
class _Entry:
    sort_key: tuple[datetime, str, int, int]
    record: LogRecord


@dataclass(slots=True)
class Recorder:
    """Reads topics into memory; :meth:`records` gives them in log order."""

    bootstrap: str
    topics: Sequence[str]
    """Canonical topic names (as in event logs); ``naming`` adds the deployment's prefix."""
    naming: Topics = field(default_factory=Topics)
    window: RecordWindow = field(default_factory=RecordWindow)
    security: dict[str, Any] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)
    poll_ms: int = 200
    connect_timeout: float = 30.0
    """Seconds to wait for the broker to answer at the start."""
    source: str | None = None
    """Where ``bootstrap`` came from (``--bootstrap``, ``TRIAGE_KAFKA_BOOTSTRAP``), for
    the error that says it cannot be reached."""
    on_progress: Callable[[int], None] | None = None
    read: int = field(default=0, init=False)
    """Records consumed (kept or not)."""
    lossy: int = field(default=0, init=False)
    """Records whose key or a header value was not UTF-8."""
    _entries: list[_Entry] = field(default_factory=list, init=False, repr=False)

    def run(self) -> int:
        """Consume until the window says stop; returns how many records were kept."""
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                client_id="triage-record",
                bootstrap_timeout_ms=max(int(self.connect_timeout * 1000), 100),
                **self.security,
            )
        except KafkaTimeoutError:
            raise unreachable(self.bootstrap, self.connect_timeout, self.source) from None
        except KafkaError as exc:
            raise BrokerError(f"cannot reach the Kafka broker at {self.bootstrap}: {exc}") from exc
        try:
            self._consume(consumer)
        except KafkaError as exc:
            raise BrokerError(f"recording failed: {exc}") from exc
        finally:
            consumer.close()
        return len(self._entries)

    def records(self) -> list[LogRecord]:
        """What was kept, ordered by timestamp, then topic, partition and offset."""
        return [entry.record for entry in sorted(self._entries, key=lambda e: e.sort_key)]

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        parts = []
        for name in self.topics:
            physical = self.naming.with_prefix(name)
            found = consumer.partitions_for_topic(physical)
            if not found:
                raise BrokerError(f"topic {physical} does not exist")
            parts += [TopicPartition(physical, p) for p in sorted(found)]
        return parts

    def _consume(self, consumer: KafkaConsumer) -> None:
        parts = self._partitions(consumer)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = self._end_offsets(parts)
        done: set[TopicPartition] = set()
        if self.window.caught_up:
            done |= {tp for tp in parts if ends[tp] == 0}
        while len(done) < len(parts):
            batch = consumer.poll(timeout_ms=self.poll_ms)
            for tp, messages in batch.items():
                for message in messages:
                    if tp in done:
                        break
                    if self.window.caught_up and message.offset >= ends[tp]:
                        done.add(tp)
                        break
                    self._take(tp, message)
                    if self.window.until and from_millis(message.timestamp) >= self.window.until:
                        done.add(tp)
                if self.window.caught_up and tp not in done and consumer.position(tp) >= ends[tp]:
                    done.add(tp)
            if not batch:
                done |= self._idle(consumer, parts, ends, done)
            if done:
                consumer.pause(*done)

    def _idle(
        self,
        consumer: KafkaConsumer,
        parts: list[TopicPartition],
        ends: dict[TopicPartition, int],
        done: set[TopicPartition],
    ) -> set[TopicPartition]:
        """Partitions to stop after an empty poll."""
        open_parts = [tp for tp in parts if tp not in done]
        if self.window.caught_up:
            return {tp for tp in open_parts if consumer.position(tp) >= ends[tp]}
        if self.window.until is not None and self.clock.now() >= self.window.until:
            latest = self._end_offsets(open_parts)
            return {tp for tp in open_parts if consumer.position(tp) >= latest[tp]}
        return set()  # follow mode: keep polling until interrupted

    def _end_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        found = end_offsets(
            self.bootstrap, sorted({tp.topic for tp in parts}), security=self.security
        )
        return {tp: found.get((tp.topic, tp.partition), 0) for tp in parts}

    def _take(self, tp: TopicPartition, message: Any) -> None:
        self.read += 1
        if self.on_progress is not None and self.read % 1000 == 0:
            self.on_progress(self.read)
        stamp = from_millis(message.timestamp)
        if not self.window.keeps(stamp):
            return
        lossy = False
        key: str | None = None
        if message.key is not None:
            key, lossy = _text(message.key)
        headers: dict[str, str] = {}
        for name, raw in message.headers or ():
            headers[name], bad = _text(raw if raw is not None else b"")
            lossy = lossy or bad
        self.lossy += lossy
        logical = self.naming.logical(tp.topic)
        record = LogRecord(logical, key, stamp, message.value or b"", headers)
        self._entries.append(_Entry((stamp, logical, tp.partition, message.offset), record))


def _text(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True
