"""The worker's logic around the engine, with Faust kept at arm's length.

Per partition: records from the two input topics are merged in timestamp
order, fed to that partition's :class:`Processor`, and their outputs sent.
Then, and only then, changed victim states are written to the table and the
input offsets acknowledged. A crash at any point therefore repeats work (the
same records, with the same ids) and never loses it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kafka.partitioner.default import murmur2

from triage.events.base import EARLIEST, LATEST
from triage.events.outputs import DeadLetter, Decision, Escalation, OutputEvent
from triage.observability.logging import get_logger
from triage.observability.metrics import TriageMetrics
from triage.observability.redaction import victim_hash
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord
from triage.pipeline.merge import Merger
from triage.pipeline.observations import Observation
from triage.pipeline.processor import MAX_CLOCK_JUMP, Batch, Processor
from triage.pipeline.state import VictimState
from triage.replay.offline import cloudevents_headers, output_key
from triage.replay.records import from_millis, to_millis
from triage.topics import Topics

log = get_logger("triage.worker")

_EARLIEST_MS, _LATEST_MS = to_millis(EARLIEST), to_millis(LATEST)
_HORIZON_MS = round(MAX_CLOCK_JUMP.total_seconds() * 1000)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, Java-compatible)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class InputMessage(Protocol):
    """What the shell needs of a consumed record (a Faust event fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
    headers: Any


Send = Callable[
    [str, bytes | None, bytes, list[tuple[str, bytes]], float], Awaitable[Awaitable[Any]]
]
"""``send(topic, key, value, headers, timestamp_s)`` → awaitable delivery."""


@dataclass(slots=True)
class Held:
    """A consumed record waiting in the merger, with the token that acknowledges it."""

    message: InputMessage
    token: Any


class StreamShell:
    """Feeds consumed records to per-partition processors and publishes outputs."""

    def __init__(
        self,
        engine: Engine,
        topics: Topics,
        table: MutableMapping[bytes, bytes],
        send: Send,
        ack: Callable[[Any], Awaitable[Any]],
        *,
        partitions: int,
        idle: float = 0.0,
        metrics: TriageMetrics | None = None,
        highwater: Callable[[str, int], int | None] | None = None,
        live: bool = False,
        persisted: Callable[..., Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.table = table
        self._send = send
        self._ack = ack
        self.partitions = partitions
        self.merger: Merger[Held] = Merger(topics.inputs, idle=idle)
        self.processors: dict[int, Processor] = {}
        self.metrics = metrics
        self.live = live
        self._persisted = persisted
        self._highwater = highwater
        self._last_offset: dict[tuple[str, int], int] = {}
        self._latest: dict[int, int] = {}
        self._deliveries: list[Awaitable[Any]] = []
        self._to_ack: list[Held] = []
        self._lock = asyncio.Lock()
        self.processed = 0

    # -- input ---------------------------------------------------------------

    async def on_message(self, message: InputMessage, token: Any) -> None:
        """Take one consumed record; process whatever the merge allows."""
        async with self._lock:
            self._last_offset[(message.topic, message.partition)] = message.offset
            stamp, stray = self._merge_time(message)
            self.merger.add(
                message.partition,
                message.topic,
                stamp,
                Held(message, token),
                time.monotonic(),
                stray=stray,
            )
            await self._release(message.partition)

    def _merge_time(self, message: InputMessage) -> tuple[int, bool]:
        """The timestamp a record is merged at, and whether it is a stray.

        A record stamped past the years ingestion accepts, or more than a quarter
        ahead of the partition (its stream clock, or before the first record is
        processed, the latest plausible stamp fetched) will be dead-lettered:
        held at its stamp it would keep every record behind it on its topic
        waiting while the other topic's records overtake them. It is merged at
        the partition's time instead, so it goes out in its place. A stamp from
        before 2000 holds nothing back (it goes first) and is never a reference.
        """
        stamp = round(message.timestamp * 1000)
        proc = self.processors.get(message.partition)
        if proc is not None and proc.clock is not None:
            reference: int | None = to_millis(proc.clock)
        else:
            reference = self._latest.get(message.partition)
        if stamp >= _LATEST_MS or (reference is not None and stamp > reference + _HORIZON_MS):
            return (reference if reference is not None else _EARLIEST_MS), True
        if stamp >= _EARLIEST_MS and (reference is None or stamp > reference):
            self._latest[message.partition] = stamp
        return stamp, False

    async def tick(self, wall: datetime | None = None) -> None:
        """Release records that waited long enough; in live mode move clocks to ``wall``."""
        async with self._lock:
            for partition in self.merger.partitions():
                await self._release(partition)
            if wall is not None:
                for processor in self.processors.values():
                    batch = processor.advance(wall)
                    await self._publish(batch.outputs, batch.observations)
            await self._flush()

    def lag(self) -> dict[str, int]:
        """Records fetched by the broker but not yet consumed here, per input topic."""
        lag: dict[str, int] = dict.fromkeys(self.topics.inputs, 0)
        if self._highwater is None:
            return lag
        for (topic, partition), last in list(self._last_offset.items()):
            high = self._highwater(topic, partition)
            if high is not None:
                lag[topic] += max(high - last - 1, 0)
        return lag

    def states(self) -> list[VictimState]:
        """A snapshot of every victim state this worker holds (for gauges)."""
        return [s for p in list(self.processors.values()) for s in list(p.states.values())]

    async def flush(self) -> None:
        """Wait for every pending output, persist changed states, acknowledge inputs."""
        async with self._lock:
            await self._flush()

    # -- partitions ------------------------------------------------------------

    def processor(self, partition: int) -> Processor:
        """The processor of ``partition``, rebuilt from the table on first use."""
        proc = self.processors.get(partition)
        if proc is None:
            states: dict[str, VictimState] = {}
            for key, value in list(self.table.items()):
                if key.startswith(b"V-") and partition_of(key, self.partitions) == partition:
                    states[key.decode()] = VictimState.model_validate_json(value)
            proc = Processor(self.engine, self.topics, states)
            self.processors[partition] = proc
        return proc

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions leave this worker: finish what was processed, forget the rest."""
        async with self._lock:
            await self._flush()
            if self._persisted is not None:
                await self._persisted(set(), force=True)
            gone = set(partitions)
            for partition in gone:
                self.merger.drop(partition)  # unacknowledged: the next owner gets them
                self.processors.pop(partition, None)
            # Offsets seen here say nothing about a partition when it comes back.
            for key in [k for k in self._last_offset if k[1] in gone]:
                del self._last_offset[key]
            for partition in gone:
                self._latest.pop(partition, None)

    # -- internals ---------------------------------------------------------------

    def _caught_up(self, topic: str, partition: int) -> bool:
        if self._highwater is None:
            return True
        high = self._highwater(topic, partition)
        if high is None:
            return False
        last = self._last_offset.get((topic, partition))
        return high == 0 or (last is not None and last + 1 >= high)

    async def _release(self, partition: int) -> None:
        ready = self.merger.release(
            partition, now=time.monotonic(), caught_up=lambda t: self._caught_up(t, partition)
        )
        if not ready:
            return
        processor = self.processor(partition)
        for held in ready:
            msg = held.message
            raw = RawRecord(
                topic=msg.topic,
                key=msg.key,
                value=msg.value if msg.value is not None else b"",
                timestamp=from_millis(round(msg.timestamp * 1000)),
                partition=msg.partition,
                offset=msg.offset,
            )
            began = time.perf_counter()
            batch = processor.feed(raw)
            self._log(raw, batch)
            self.processed += 1
            await self._publish(batch.outputs, batch.observations)
            self._to_ack.append(held)
            if self.metrics is not None:
                self.metrics.processing.observe(time.perf_counter() - began)
                if self.live and any(o.kind == "decided" for o in batch.observations):
                    self.metrics.report_to_decision.observe(max(time.time() - msg.timestamp, 0.0))

    def _log(self, raw: RawRecord, batch: Batch) -> None:
        for output in batch.outputs:
            if isinstance(output, DeadLetter):
                log.info(
                    "dead_letter", topic=raw.topic, partition=raw.partition, offset=raw.offset,
                    reason=output.reason, record_id=output.id,
                )  # fmt: skip
            elif isinstance(output, Decision):
                log.debug(
                    "decision", topic=raw.topic, partition=raw.partition, offset=raw.offset,
                    event_id=output.source_event_id, decision_id=output.id,
                    level_=output.level.value, victim=victim_hash(output.victim_ref),
                )  # fmt: skip
            elif isinstance(output, Escalation):
                log.info(
                    "escalation", decision_id=output.decision_id, queue=output.queue,
                    stage=output.stage, level_=output.level.value, partition=raw.partition,
                )  # fmt: skip

    async def _publish(
        self, outputs: Sequence[OutputEvent], observations: Sequence[Observation]
    ) -> None:
        for output in outputs:
            key = output_key(output)
            headers = [(k, v.encode()) for k, v in cloudevents_headers(output).items()]
            delivery = await self._send(
                self.topics.for_output(output),
                key.encode() if key is not None else None,
                output.model_dump_json().encode(),
                headers,
                # Faust truncates seconds*1000 to int: half a millisecond keeps it exact.
                (to_millis(output.time) + 0.5) / 1000,
            )
            self._deliveries.append(delivery)
        if observations and self.metrics is not None:
            self.metrics.observe(observations)

    async def _flush(self) -> None:
        if self._deliveries:
            deliveries, self._deliveries = self._deliveries, []
            await asyncio.gather(*deliveries)
        written: set[int] = set()
        for partition, processor in self.processors.items():
            for ref, state in processor.take_dirty().items():
                self.table[ref.encode()] = state.model_dump_json().encode()
                written.add(partition)
        if written and self._persisted is not None:
            await self._persisted(written)
        if self._to_ack:
            held, self._to_ack = self._to_ack, []
            for item in held:
                await self._ack(item.token)
