"""The worker's logic around the engine, with Faust kept at arm's length.

Per partition: records from the two input topics are merged in timestamp
order, fed to that partition's :class:`Processor`, and their outputs sent.
A flush cycle, beside the processing and never blocking it, then waits for
those outputs to be delivered, writes the changed victim states to the table,
waits for them to be recoverable (``persisted``), and only then acknowledges
the inputs. A crash at any point therefore repeats work (the same records, with
the same ids) and never loses it.
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
        persisted: Callable[[set[int]], Awaitable[None]] | None = None,
        flush_interval: float = 0.0,
        write_states: Callable[[dict[bytes, bytes]], Awaitable[None]] | None = None,
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
        self._write_states = write_states
        self._highwater = highwater
        self._last_offset: dict[tuple[str, int], int] = {}
        self._latest: dict[int, int] = {}
        self._deliveries: list[Awaitable[Any]] = []
        self._to_ack: list[Held] = []
        self._lock = asyncio.Lock()
        """Held while records are processed (and while a flush takes what they left)."""
        self._flush_lock = asyncio.Lock()
        """One flush cycle at a time: states reach the table in the order they were made."""
        self._cycle: asyncio.Task[None] | None = None
        self._flush_interval = flush_interval
        self._last_cycle = float("-inf")
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
        """Release records that waited long enough; in live mode move clocks to ``wall``.

        Then start a flush cycle in the background unless one is running; a cycle
        that failed (a delivery refused) raises here, so the worker stops.
        """
        async with self._lock:
            for partition in self.merger.partitions():
                await self._release(partition)
            if wall is not None:
                for processor in self.processors.values():
                    batch = processor.advance(wall)
                    await self._publish(batch.outputs, batch.observations)
        cycle = self._cycle
        if cycle is not None and cycle.done():
            self._cycle = None
            cycle.result()
        now = time.monotonic()
        if (
            self._cycle is None
            and now - self._last_cycle >= self._flush_interval
            and (self._deliveries or self._to_ack or self._dirty())
        ):
            self._last_cycle = now
            self._cycle = asyncio.ensure_future(self._flush_cycle())

    async def flushed(self) -> None:
        """Wait for the flush cycle under way, if any (raises what it raised)."""
        cycle, self._cycle = self._cycle, None
        if cycle is not None:
            await cycle

    def states(self) -> list[VictimState]:
        """A snapshot of every victim state this worker holds (for gauges)."""
        return [s for p in list(self.processors.values()) for s in list(p.states.values())]

    async def flush(self) -> None:
        """Deliver every pending output, persist changed states, acknowledge inputs."""
        await self.flushed()
        await self._flush_cycle()

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
        await self.flushed()
        async with self._flush_lock, self._lock:
            await self._complete(*self._take())
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

    def _dirty(self) -> bool:
        return any(p.dirty for p in self.processors.values())

    def _take(self) -> tuple[list[Awaitable[Any]], dict[bytes, bytes], set[int], list[Held]]:
        """What processing left for a flush: deliveries, changed states (serialised
        now), their partitions, inputs to ack.

        Taken under the processing lock, so an event's outputs, state and input
        are never split between two cycles.
        """
        deliveries, self._deliveries = self._deliveries, []
        held, self._to_ack = self._to_ack, []
        states: dict[bytes, bytes] = {}
        written: set[int] = set()
        for partition, proc in self.processors.items():
            if proc.dirty:
                written.add(partition)
                for ref, state in proc.take_dirty().items():
                    states[ref.encode()] = state.model_dump_json().encode()
        return deliveries, states, written, held

    async def _flush_cycle(self) -> None:
        async with self._flush_lock:
            async with self._lock:
                taken = self._take()
            await self._complete(*taken)

    async def _complete(
        self,
        deliveries: list[Awaitable[Any]],
        states: dict[bytes, bytes],
        written: set[int],
        held: list[Held],
    ) -> None:
        # Outputs first: a state that says an event was handled must never be
        # recoverable while that event's outputs could still be lost.
        # One by one, not gather(): most are done by now, and awaiting a done future
        # costs nothing, where gather() schedules a callback for every one.
        for delivery in deliveries:
            await delivery
        if self._write_states is not None:
            await self._write_states(states)
        else:
            for key, value in states.items():
                self.table[key] = value
        if written and self._persisted is not None:
            await self._persisted(written)
        for item in held:
            await self._ack(item.token)
