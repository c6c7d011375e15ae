"""The worker's logic around the engine, with Faust kept at arm's length.

Per partition: records from the two internal topics (written by the forwarding
stage, :mod:`triage.streaming.forward`; or, by default, the input topics) are
merged in timestamp order, fed to that partition's :class:`Processor`, and their
outputs sent. Read through the forwarding stage, a record is validated and
dead-lettered under its input topic and upstream coordinates.
A flush cycle, beside the processing and never blocking it, then waits for
those outputs to be delivered, writes the changed victim states to the table,
waits for them to be recoverable (``persisted``), and only then acknowledges
the inputs. A crash at any point therefore repeats work (the same records, with
the same ids) and never loses it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    MutableMapping,
    Sequence,
    Set,
)
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from kafka.partitioner.default import murmur2

from triage.clock import Clock, SystemClock
from triage.errors import AckGapError
from triage.events.base import EARLIEST, LATEST
from triage.events.outputs import DeadLetter, Decision, Escalation, OutputEvent
from triage.events.wire import cloudevents_headers, from_millis, output_key, to_millis
from triage.observability.logging import get_logger
from triage.observability.metrics import TriageMetrics
from triage.observability.redaction import victim_hash
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import Accepted, RawRecord, ingest, minimal_dead_letter
from triage.pipeline.merge import Merger
from triage.pipeline.observations import (
    ClockClamped,
    Decided,
    Observation,
    UpdateWaiting,
    WaitOutcome,
)
from triage.pipeline.processor import Batch, Processor
from triage.pipeline.state import VictimState, Waiting
from triage.streaming.ends import BrokerEnds, read_to_end
from triage.streaming.fencing import stamp, unstamp
from triage.streaming.gaps import Fetched, FetchRange, GapGuard, ReadBack, Recovered
from triage.streaming.upstream import (
    FORWARD_HEADERS,
    Upstream,
    origin_headers,
    unwrap,
)
from triage.topics import Topics

log = get_logger("triage.worker")

EARLIEST_MS, LATEST_MS = to_millis(EARLIEST), to_millis(LATEST)
DEFAULT_MAX_SKEW = timedelta(minutes=2)
"""How far ahead of the wall clock a live worker's stream clock may run by default."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, Java-compatible)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def headers_of(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """A consumed record's headers as ``(name, value)`` pairs, whatever form the client
    gives them in (a list of pairs, a mapping or None; a null value is empty)."""
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple(
        (
            name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name),
            bytes(value) if value is not None else b"",
        )
        for name, value in pairs
    )


FORWARD_MAX_BYTES = 768 * 1024
"""Largest record (key, value and headers) forwarded as is. The producer refuses
requests over 1 MiB, and an upstream broker may hold records of any size: one too big
to forward is dead-lettered here, as the stateful stage would (same reason, same id:
the offline replay gives the same dead letter), or forwarded without its own headers
if it is valid (the stateful stage reads only the coordinates it needs)."""

SendTo = Callable[
    [str, int, bytes | None, bytes | None, list[tuple[str, bytes]], float],
    Awaitable[Awaitable[Any]],
]
"""``send(topic, partition, key, value, headers, timestamp_s)`` → awaitable delivery."""


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


def record_size(message: InputMessage) -> int:
    """Bytes of a record's key, value and headers (what a forward would carry)."""
    size = len(message.key or b"") + len(message.value or b"")
    return size + sum(len(k) + len(v or b"") for k, v in headers_of(message.headers))


@dataclass(slots=True)
class Held:
    """A consumed record waiting in the merger, with the token that acknowledges it."""

    message: InputMessage
    token: Any
    generation: int = 0
    """The group generation it was processed under (set when it is released)."""
    origin: Upstream | None = None
    """Where it came from upstream (set when read through the forwarding stage)."""
    rerouted: bool = False
    """Re-published to its key's partition instead of processed here (read directly,
    it was on another partition): acknowledged once delivered, in offset order."""


class Lanes(Protocol):
    """What the stateful stage needs to know of the forwarding stage beside it: for
    each input partition it forwards (a lane), how far it got."""

    def lanes(self) -> frozenset[tuple[str, int]]:
        """The input partitions it forwards now."""
        ...

    def lane_caught_up(self, tp: tuple[str, int], since: float | None) -> bool:
        """Everything the broker has on the lane is forwarded and delivered (given
        ``since``: as the broker told at or after that moment)."""
        ...

    def lane_through(self, tp: tuple[str, int]) -> int | None:
        """The latest timestamp (ms) the lane forwarded and delivered, all before it too."""
        ...

    def lane_delivered_end(self, tp: tuple[str, int], target: tuple[str, int]) -> int:
        """One past the highest offset the lane delivered to an internal partition."""
        ...


class Fence(Protocol):
    """Whether this worker may write now, and under which group generation.

    :class:`triage.streaming.fencing.Lease` is the worker's; without one (tests,
    tools) the shell always writes, under generation 0.
    """

    def token(self) -> int | None:
        """The generation to write under now, or ``None`` while writing must wait."""
        ...

    def fenced(self) -> bool:
        """True when the broker no longer counts this worker as a member."""
        ...


class _Unfenced:
    """The fence of a shell that is alone (tests, tools): always generation 0."""

    def token(self) -> int | None:
        return 0

    def fenced(self) -> bool:
        return False


@dataclass(slots=True)
class _Work:
    """What processing left for one flush, all of it made under ``generation``.

    ``stage`` says how far the flush got: a flush whose lease lapsed stops
    where it is and resumes there (nothing is written twice, nothing skipped).
    """

    generation: int
    deliveries: list[Awaitable[Any]]
    states: dict[bytes, bytes]
    written: set[int]
    held: list[Held]
    stage: int = 0


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
        fence: Fence | None = None,
        committed: Callable[[str, int], int | None] | None = None,
        sources: Sequence[str] | None = None,
        lanes: Lanes | None = None,
        lane_wait: float = 10.0,
        wall_clock: Clock | None = None,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        reroute: SendTo | None = None,
        held_partitions: frozenset[int] = frozenset(),
        fetch_range: FetchRange | None = None,
        update_hold: float = 0.0,
        assigned: Callable[[], Iterable[tuple[str, int]]] | None = None,
        ready: Callable[[], bool] | None = None,
        tail_quiet: float = 3.0,
        log_end: Callable[[str, int], int | None] | None = None,
        ends: BrokerEnds | None = None,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.table = table
        self._send = send
        self._ack = ack
        self.partitions = partitions
        self.sources = tuple(sources) if sources is not None else topics.inputs
        """The topics records are consumed from, merged in this rank order. The worker
        reads the internal topics (:attr:`Topics.internal`, written by the forwarding
        stage); by default the input topics, taken as already partitioned by murmur2."""
        self._lanes = lanes
        self._lane_wait = lane_wait
        """Longest a partition waits for the forwarding stage (then it goes on: a busy
        upstream must not starve it, and the stall watch must see progress)."""
        self._blocked_since: dict[int, float] = {}
        self._waited_out: set[int] = set()
        self._lane_rank: dict[str, tuple[int, int]] = {}
        # Read through the forwarding stage, a partition's records come from many
        # upstream partitions (lanes), each in its upstream order: they are merged
        # lane by lane in timestamp order. A record is released once no lane this
        # worker forwards can still bring an earlier one here: each lane with
        # nothing waiting has forwarded past the record's time (or all it has), and
        # this stage received every forward that lane delivered here (see
        # _lanes_passed). Otherwise: one source per topic.
        self.merger: Merger[Held] = (
            Merger((), idle=idle, rank=self._lane_rank.__getitem__)
            if lanes is not None
            else Merger(self.sources, idle=idle)
        )
        self.processors: dict[int, Processor] = {}
        self.metrics = metrics
        self.live = live
        self.wall_clock: Clock = wall_clock if wall_clock is not None else SystemClock()
        """Live mode: the wall clock that bounds event time (with ``max_skew``)."""
        self.max_skew = max_skew
        self._persisted = persisted
        self._write_states = write_states
        self._highwater = highwater
        self._ends = ends
        """Log ends asked of the broker after a record arrived (None: the consumer's high
        watermark alone says whether a source is read to its end)."""
        self._committed = committed
        self._assigned = assigned
        self._read_back = (
            ReadBack(
                fetch_range, GapGuard(committed), stage="stateful", metrics=metrics,
                log_end=(log_end or highwater) if assigned is not None else None,
                ready=ready, quiet=tail_quiet,
            )
            if fetch_range is not None
            else None
        )  # fmt: skip
        """Reads records the consumer skipped from the broker (None: not checked)."""
        self._update_hold = update_hold
        """Wall seconds an update held for its case is kept at least, whatever stream
        time does (0: stream time alone, as offline)."""
        self._held_since: dict[tuple[str, int | None, int | None], float] = {}
        self._last_offset: dict[tuple[str, int], int] = {}
        self._deliveries: list[Awaitable[Any]] = []
        self._to_ack: list[Held] = []
        self._lock = asyncio.Lock()
        """Held while records are processed (and while a flush takes what they left)."""
        self._flush_lock = asyncio.Lock()
        """One flush cycle at a time: states reach the table in the order they were made."""
        self._cycle: asyncio.Task[None] | None = None
        self._flush_interval = flush_interval
        self._last_cycle = float("-inf")
        self._fence: Fence = fence if fence is not None else _Unfenced()
        self._generation: dict[int, int] = {}
        """The generation each processor was built under (it serves no other)."""
        self._parked: list[_Work] = []
        """Flushes taken but not finished because the lease lapsed, oldest first."""
        self._unacked: dict[tuple[str, int], deque[int]] = {}
        """Offsets received and not yet acknowledged, per input partition, in order."""
        self._done: dict[tuple[str, int], dict[int, list[Any]]] = {}
        """Handled records waiting for earlier ones to be acknowledged (offset → token)."""
        self._held_partitions = held_partitions
        """Tests only (see :attr:`Tuning.held_partitions`): never released."""
        self._reroute = reroute if lanes is None else None
        """Read directly (no forwarding stage): how a record found on a partition its key
        does not belong to is re-published to its own (see :meth:`_misrouted`)."""
        self.rerouted = 0
        """Misrouted input records re-published to their key's partition."""
        self.processed = 0
        self.dropped = 0
        """Processed inputs whose states and acks were dropped because of fencing."""

    # -- input ---------------------------------------------------------------

    async def on_message(self, message: InputMessage, token: Any) -> None:
        """Take one consumed record; process whatever the merge allows.

        Records the consumer skipped before it (their offsets come first) are read
        back from the broker and taken first (:mod:`triage.streaming.gaps`).
        """
        found: list[Fetched] = []
        if self._read_back is not None:
            self._read_back.delivered(message.topic, message.partition)
            found = await self._read_back.before(message.topic, message.partition, message.offset)
        async with self._lock:
            for record in found:
                await self._accept(record, Recovered(record.topic, record.partition, record.offset))
            await self._accept(message, token)

    async def _read_tails(self) -> None:
        """Read back what partitions hold past the offset expected while none of their
        records came for a while (skipped, with nothing after them to show it)."""
        if self._read_back is None or self._assigned is None:
            return
        mine = [tp for tp in self._assigned() if tp[0] in self.sources]
        for topic, partition, start, end, found in await self._read_back.overdue(mine):
            async with self._lock:
                for record in self._read_back.fresh(topic, partition, start, end, found):
                    await self._accept(record, Recovered(topic, partition, record.offset))

    async def _accept(self, message: InputMessage, token: Any) -> None:
        """Hold one record in the merge (or forward it, misrouted); release what may go.
        Called under the lock."""
        tp = (message.topic, message.partition)
        self._last_offset[tp] = message.offset
        pending = self._unacked.setdefault(tp, deque())
        if not pending or message.offset > pending[-1]:
            # A re-delivery of an offset still pending (the consumer sought back) is
            # not a second entry: acknowledged once, the first would wait for ever.
            pending.append(message.offset)
        if self._misrouted(message):
            await self._forward_misrouted(Held(message, token))
            return
        stamp, stray = self._merge_time(message)
        held = Held(message, token)
        source = message.topic
        if self._lanes is not None:
            held.origin = origin = unwrap(
                message.topic, message.partition, message.offset,
                headers_of(message.headers), self.topics,
            )  # fmt: skip
            source = f"{origin.topic}[{origin.partition}]"
            if source not in self._lane_rank:
                rank = (
                    self.topics.inputs.index(origin.topic)
                    if origin.topic in self.topics.inputs
                    else len(self.topics.inputs)
                )
                self._lane_rank[source] = (rank, origin.partition)
        self.merger.add(message.partition, source, stamp, held, time.monotonic(), stray=stray)
        await self._release(message.partition)

    def _misrouted(self, message: InputMessage) -> bool:
        """Whether ``message``, read directly from an input topic, sits on a partition
        other than the one the project's partitioner gives its key.

        Its victim's state lives with that other partition: processed here, the record
        would be decided without her history, and her updates would not find it. An
        upstream producer with another partitioner (librdkafka's CRC32, a random or
        explicit partition) puts records there. A record already re-published by a
        worker (it carries :data:`FORWARD_HEADERS`) is processed wherever it is, so
        nothing is forwarded twice; a keyless one is dead-lettered where it is.
        """
        if self._reroute is None or message.key is None:
            return False
        if message.topic not in self.topics.inputs:
            return False
        if partition_of(message.key, self.partitions) == message.partition:
            return False
        names = [name for name, _ in headers_of(message.headers)[-3:]]
        if tuple(names) == FORWARD_HEADERS:
            return False
        if record_size(message) > FORWARD_MAX_BYTES:
            # Too big to re-publish whole: forwarded without its own headers if it is
            # valid; if ingestion refuses it, it is dead-lettered here (it touches no
            # victim's state, so the partition does not matter).
            raw = RawRecord(
                topic=message.topic, key=message.key, value=message.value or b"",
                timestamp=from_millis(round(message.timestamp * 1000)),
                partition=message.partition, offset=message.offset, headers=(),
            )  # fmt: skip
            return isinstance(ingest(raw, self.topics), Accepted)
        return True

    async def _forward_misrouted(self, held: Held) -> None:
        """Re-publish a misrouted record to its key's partition of the same topic, and
        acknowledge it once delivered (in offset order, with the flush of the records
        around it; a crash before that repeats the forward, an exact copy that the
        victim's partition finds already processed).

        Same key, value, headers and timestamp; the three :data:`FORWARD_HEADERS` name
        where it was, so that a dead letter still names its upstream coordinates. A
        record too big to forward whole goes without its own headers (the producer
        refuses requests over 1 MiB)."""
        assert self._reroute is not None
        msg = held.message
        target = partition_of(msg.key, self.partitions) if msg.key is not None else 0
        own = headers_of(msg.headers)
        if record_size(msg) > FORWARD_MAX_BYTES:
            own = ()
        headers = [*own, *origin_headers(msg.topic, msg.partition, msg.offset)]
        stamp = round(msg.timestamp * 1000)
        # Faust truncates seconds*1000 to int: half a millisecond keeps it exact.
        delivery = await self._reroute(
            msg.topic, target, msg.key, msg.value, headers, (stamp + 0.5) / 1000
        )
        self._deliveries.append(delivery)
        token = self._fence.token()
        held.generation = token if token is not None else self._generation.get(msg.partition, 0)
        held.rerouted = True
        self._to_ack.append(held)
        self.rerouted += 1
        log.warning(
            "misrouted_record_forwarded", topic=msg.topic, partition=msg.partition,
            offset=msg.offset, target=target,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.misrouted.inc()

    def _merge_time(self, message: InputMessage) -> tuple[int, bool]:
        """The timestamp a record is merged at, and whether it is a stray.

        A record stamped past the years ingestion accepts will be dead-lettered:
        held at its stamp it would keep every record behind it on its source
        waiting while the other sources' records overtake them. It is merged where
        its source is: at the time of the record held before it there (the merger's
        rule for strays), or first when none is held (everything before it on its
        source is processed). Merged at the partition's time instead, as before, it
        held its source back whenever that time ran ahead of it: through the
        forwarding stage a partition's clock, or the latest stamp fetched, follows
        the lane that is furthest ahead, and the updates of a fuzz run overtook the
        reports behind a record stamped 2200. A stamp from before 2000 holds nothing
        back (it goes first) and is never a reference. Any other stamp is plausible
        however long the partition was quiet: in replay mode the log is the truth and
        the record is merged at its stamp; in live mode a stamp past the clock
        ceiling (wall clock plus skew) is merged at the ceiling, the time the
        processor takes its event at.
        """
        stamp = round(message.timestamp * 1000)
        if stamp >= LATEST_MS:
            return EARLIEST_MS, True
        ceiling = self._ceiling()
        if ceiling is not None:
            stamp = min(stamp, to_millis(ceiling))
        return stamp, False

    def _ceiling(self) -> datetime | None:
        """Live mode: the latest time a record may move a stream clock to, the wall
        clock plus the allowed skew (to the millisecond, as Kafka timestamps); None in
        replay mode, where event time alone is the truth."""
        if not self.live:
            return None
        ceiling = self.wall_clock.now() + self.max_skew
        return ceiling.replace(microsecond=ceiling.microsecond // 1000 * 1000)

    def ceiling_ms(self) -> int | None:
        """:meth:`_ceiling` in milliseconds (the forwarding stage caps lane times by it)."""
        ceiling = self._ceiling()
        return None if ceiling is None else to_millis(ceiling)

    async def tick(self, wall: datetime | None = None) -> None:
        """Release records that waited long enough; in live mode move clocks to ``wall``.

        Then start a flush cycle in the background unless one is running; a cycle
        that failed (a delivery refused) raises here, so the worker stops.
        """
        await self._read_tails()
        async with self._lock:
            for partition in self.merger.partitions():
                await self._release(partition)
            token = self._fence.token()
            if token is not None and self._held_since:
                # Held updates kept past their grace: their case may have come since.
                for partition, processor in self.processors.items():
                    if self._generation.get(partition) == token:
                        batch = processor.recheck()
                        await self._publish(batch.outputs, batch.observations)
                horizon = time.monotonic() - max(self._update_hold, self._lane_wait)
                for key in [k for k, t in self._held_since.items() if t < horizon]:
                    del self._held_since[key]
            if wall is not None and token is not None:
                # A worker that woke from a freeze must not fire the deadlines of
                # cases it may no longer own (their acknowledgements went elsewhere).
                for partition, processor in self.processors.items():
                    if self._generation.get(partition) == token:
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
            and (self._deliveries or self._to_ack or self._parked or self._dirty())
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

    def processor(self, partition: int, generation: int = 0) -> Processor:
        """The processor of ``partition`` for ``generation``, rebuilt from the table
        on first use and whenever the generation changed (what it held in memory
        may be older than what the partition's owners wrote since)."""
        proc = self.processors.get(partition)
        if proc is None or self._generation.get(partition) != generation:
            states: dict[str, VictimState] = {}
            for key, value in list(self.table.items()):
                if key.startswith(b"V-") and partition_of(key, self.partitions) == partition:
                    states[key.decode()] = VictimState.model_validate_json(unstamp(value)[1])
            proc = Processor(self.engine, self.topics, states, hold=partial(self._hold, partition))
            self.processors[partition] = proc
            self._generation[partition] = generation
        return proc

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions leave this worker: persist what was processed, forget the rest.

        Inputs of the revoked partitions are not acknowledged: Faust has already
        forgotten their acknowledgements, and one made now would linger and be
        committed if the partition came back. Their next owner re-reads them and
        finds them handled (duplicates). A worker that is no longer a member, or
        whose lease lapsed (it was frozen), writes nothing at all: its states may
        be older than what the new owner wrote since.
        """
        await self.flushed()
        gone = set(partitions)
        async with self._flush_lock, self._lock:
            self._park(self._take())
            parked, self._parked = self._parked, []
            if self._fence.token() is None:
                self._drop(parked, "fenced")
                gone |= set(self.processors)
            else:
                for work in parked:
                    work.held = [h for h in work.held if h.message.partition not in gone]
                    await self._complete(work)
            for partition in gone:
                self.merger.drop(partition)  # unacknowledged: the next owner gets them
                self.processors.pop(partition, None)
                self._generation.pop(partition, None)
            if self._read_back is not None:
                self._read_back.forget_partitions(gone)
            # Offsets seen here say nothing about a partition when it comes back.
            for key in [k for k in self._last_offset if k[1] in gone]:
                del self._last_offset[key]
            for key in [k for k in self._unacked if k[1] in gone]:
                del self._unacked[key]
            for key in [k for k in self._done if k[1] in gone]:
                del self._done[key]

    # -- internals ---------------------------------------------------------------

    def _hold(self, partition: int, held: Waiting) -> bool:
        """Keep an update held for its case past its grace while it has been held less
        than ``update_hold`` wall seconds here, or less than ``lane_wait`` while what
        feeds ``partition`` is behind the broker: at a replay's speed, or behind a
        backlog on another partition, its case may be a fetch away while an hour of
        stream time went by. Offline, stream time alone decides; the dead letter is the
        same, later."""
        since = self._held_since.get((held.topic, held.partition, held.offset))
        if since is None:
            return False
        age = time.monotonic() - since
        return age < self._update_hold or (age < self._lane_wait and self._behind(partition))

    def _behind(self, partition: int) -> bool:
        """Whether records that feed ``partition`` are still to come: a source topic not
        read to its end or, through the forwarding stage, a lane of this worker not
        forwarded to its end or a forward delivered here and not received yet."""
        lanes = self._lanes
        if lanes is None:
            return not all(self._caught_up(topic, partition) for topic in self.sources)
        for tp in lanes.lanes():
            if not lanes.lane_caught_up(tp, None):
                return True
            internal = self.topics.internal_of(tp[0])
            if internal is not None and self._received_end(internal, partition) < (
                lanes.lane_delivered_end(tp, (internal, partition))
            ):
                return True
        return False

    def _lanes_passed(
        self, partition: int, timestamp_ms: int, arrived: float, waiting: Set[str]
    ) -> bool:
        """Whether no lane can still bring ``partition`` a record earlier than
        ``timestamp_ms``: each lane this worker forwards, unless it has a record
        ``waiting`` here already, has forwarded everything up to that time (or all
        the broker has, and the record has waited the merge's ``idle`` seconds since
        it ``arrived``: a producer's batch for that lane may trail the others, and
        this stage read the lane's internal partition to its end), and this stage
        received every forward that lane delivered here.

        Lanes other workers forward are not waited for (their records may arrive
        late, as records always may in live mode). A partition held back for
        ``lane_wait`` seconds without a release goes on in arrival order (a lane
        that never moves must not stop the others; one warning per episode).
        """
        lanes = self._lanes
        assert lanes is not None
        now = time.monotonic()
        blocked = False
        for tp in lanes.lanes():
            if f"{tp[0]}[{tp[1]}]" in waiting:
                continue
            internal = self.topics.internal_of(tp[0])
            if internal is not None and self._received_end(internal, partition) < (
                lanes.lane_delivered_end(tp, (internal, partition))
            ):
                blocked = True
                break
            through = lanes.lane_through(tp)
            if through is not None and through >= timestamp_ms:
                continue
            # Caught up upstream says nothing of what the lane forwarded before this
            # worker started: those forwards sit in the internal partition, maybe
            # unread. So the internal partition must be read to its end too (killed and
            # restarted, updates went before the reports forwarded before the crash).
            if not (
                now - arrived >= self.merger.idle
                and lanes.lane_caught_up(tp, arrived)
                and (internal is None or self._caught_up(internal, partition, arrived))
            ):
                blocked = True
                break
        if not blocked:
            self._blocked_since.pop(partition, None)
            self._waited_out.discard(partition)
            return True
        since = self._blocked_since.setdefault(partition, now)
        if now - since < self._lane_wait:
            return False
        if partition not in self._waited_out:
            self._waited_out.add(partition)
            log.warning("forward_wait_expired", partition=partition, seconds=round(now - since))
        return True

    def _received_end(self, topic: str, partition: int) -> int:
        """One past the last offset received from ``topic[partition]`` since the
        assignment (before any: the group's commit there, or 0)."""
        last = self._last_offset.get((topic, partition))
        if last is not None:
            return last + 1
        done = self._committed(topic, partition) if self._committed is not None else None
        return done or 0

    def _caught_up(self, topic: str, partition: int, since: float | None = None) -> bool:
        """Whether ``topic[partition]`` is read to its end (:func:`read_to_end`; given
        ``since``, on an end the broker gave after the record about to go arrived)."""
        tp = (topic, partition)
        return read_to_end(
            tp, self._last_offset.get(tp), self._highwater, self._committed, self._ends, since
        )

    async def _release(self, partition: int) -> None:
        if partition in self._held_partitions:
            return
        generation = self._fence.token()
        if generation is None:
            return  # the lease lapsed: records wait in the merger for the broker's word
        ready = self.merger.release(
            partition, now=time.monotonic(),
            caught_up=lambda topic, since: self._caught_up(topic, partition, since),
            passed=None if self._lanes is None else partial(self._lanes_passed, partition),
        )  # fmt: skip
        if not ready:
            return
        processor = self.processor(partition, generation)
        ceiling = self._ceiling()
        for held in ready:
            msg = held.message
            # A forward names its input topic and upstream coordinates in headers it
            # carries last: the record is validated, and dead-lettered, as read there.
            origin = held.origin or unwrap(
                msg.topic, msg.partition, msg.offset, headers_of(msg.headers), self.topics
            )
            raw = RawRecord(
                topic=origin.topic,
                key=msg.key,
                value=msg.value if msg.value is not None else b"",
                timestamp=from_millis(round(msg.timestamp * 1000)),
                partition=origin.partition,
                offset=origin.offset,
                headers=origin.headers,
            )
            began = time.perf_counter()
            batch = processor.feed(raw, ceiling)
            if self._update_hold > 0 and any(
                isinstance(o, UpdateWaiting) and o.outcome is WaitOutcome.WAITING
                for o in batch.observations
            ):
                self._held_since[(raw.topic, raw.partition, raw.offset)] = time.monotonic()
            self._log(raw, batch)
            self.processed += 1
            await self._publish(batch.outputs, batch.observations)
            held.generation = generation
            self._to_ack.append(held)
            if self.metrics is not None:
                self.metrics.processing.observe(time.perf_counter() - began)
                if self.live and any(isinstance(o, Decided) for o in batch.observations):
                    self.metrics.report_to_decision.observe(max(time.time() - msg.timestamp, 0.0))

    def _log(self, raw: RawRecord, batch: Batch) -> None:
        log.debug(
            "record_processed", topic=raw.topic, partition=raw.partition, offset=raw.offset,
            stamp=to_millis(raw.timestamp), outcome=sorted({o.kind for o in batch.observations}),
        )  # fmt: skip
        first = batch.observations[0] if batch.observations else None
        if isinstance(first, ClockClamped):  # the processor puts it first
            log.warning(
                "clock_clamped", topic=raw.topic, partition=raw.partition, offset=raw.offset,
                event_type=first.event_type, ahead_s=round(first.seconds, 3),
            )  # fmt: skip
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
            if isinstance(output, DeadLetter):
                self._deliveries.append(await self._send_dead_letter(output))
                continue
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

    async def _send_dead_letter(self, letter: DeadLetter) -> Awaitable[Any]:
        """Send ``letter``; its delivery, to await like any other.

        If the producer or the broker refuses it (too large, say) with an error that
        retrying cannot cure, its minimal form (same id, coordinates, sizes, digests,
        reason; no payload) is sent instead and the delivery is that one's: a bad
        record must not stop the worker. If the minimal one fails too, or the first
        error is retriable, the delivery fails and the worker stops, as for any output.
        """
        topic = self.topics.for_output(letter)
        # Faust truncates seconds*1000 to int: half a millisecond keeps it exact.
        timestamp = (to_millis(letter.time) + 0.5) / 1000

        async def send(one: DeadLetter) -> Awaitable[Any]:
            key = output_key(one)
            headers = [(k, v.encode()) for k, v in cloudevents_headers(one).items()]
            value = one.model_dump_json().encode()
            return await self._send(
                topic, key.encode() if key is not None else None, value, headers, timestamp
            )

        def reduce(exc: Exception) -> DeadLetter:
            if getattr(exc, "retriable", False):
                raise exc
            cause = type(exc).__name__
            log.warning(
                "dead_letter_reduced", record_id=letter.id, reason=letter.reason, error=cause
            )
            if self.metrics is not None:
                self.metrics.dead_letters_reduced.inc()
            return minimal_dead_letter(letter, cause)

        try:
            delivery = await send(letter)
        except Exception as exc:
            return await send(reduce(exc))

        async def delivered() -> Any:
            try:
                return await delivery
            except Exception as exc:
                return await (await send(reduce(exc)))

        return asyncio.ensure_future(delivered())

    def _dirty(self) -> bool:
        return any(p.dirty for p in self.processors.values())

    def _take(self) -> _Work:
        """What processing left for a flush: deliveries, changed states (serialised
        now, stamped with their generation), their partitions, inputs to ack.

        Taken under the processing lock, so an event's outputs, state and input
        are never split between two cycles. Processors are built under the
        current generation; one left from another generation holds nothing
        that may be written.
        """
        generation = self._fence.token()
        deliveries, self._deliveries = self._deliveries, []
        held, self._to_ack = self._to_ack, []
        if generation is not None and any(h.generation != generation for h in held):
            stale = [h for h in held if h.generation != generation]
            held = [h for h in held if h.generation == generation]
            self._drop([_Work(-1, [], {}, set(), stale)], "generation")
        states: dict[bytes, bytes] = {}
        written: set[int] = set()
        for partition, proc in self.processors.items():
            if proc.dirty:
                built = self._generation.get(partition, 0)
                changed = proc.take_dirty()
                if generation is not None and built != generation:
                    self.dropped += len(changed)
                    continue
                written.add(partition)
                for ref, state in changed.items():
                    states[ref.encode()] = stamp(built, state.model_dump_json().encode())
        if generation is None:
            # Lease lapsed: the work keeps the generation its processors had.
            generation = next(iter(self._generation.values()), 0)
        return _Work(generation, deliveries, states, written, held)

    def _park(self, work: _Work) -> None:
        if work.deliveries or work.states or work.held:
            self._parked.append(work)

    def _drop(self, parked: list[_Work], why: str) -> None:
        """Forget parked work: no state written, no input acknowledged."""
        inputs = sum(len(w.held) for w in parked)
        states = sum(len(w.states) for w in parked)
        self.dropped += inputs
        if not parked:
            return
        log.warning("fenced_work_dropped", why=why, inputs=inputs, states=states)
        if self.metrics is not None:
            self.metrics.fenced.labels(why).inc()

    async def _flush_cycle(self) -> None:
        async with self._flush_lock:
            async with self._lock:
                self._park(self._take())
            while self._parked:
                if not await self._complete(self._parked[0]):
                    return  # the lease lapsed: resume from here next cycle
                self._parked.pop(0)

    async def _complete(self, work: _Work) -> bool:
        """Deliver, persist and acknowledge ``work``; False if the lease lapsed first.

        Outputs first: a state that says an event was handled must never be
        recoverable while that event's outputs could still be lost. States and
        acknowledgements only under the generation that made them.
        """
        if work.stage == 0:
            # One by one, not gather(): most are done by now, and awaiting a done
            # future costs nothing, where gather() schedules a callback for each.
            for delivery in work.deliveries:
                await delivery
            work.stage = 1
        if work.stage == 1:
            token = self._fence.token()
            if token is None:
                return False
            if token != work.generation:
                self._drop([work], "generation")
                return True
            if self._write_states is not None:
                await self._write_states(work.states)
            else:
                for key, value in work.states.items():
                    self.table[key] = value
            if work.written and self._persisted is not None:
                await self._persisted(work.written)
            work.stage = 2
        token = self._fence.token()
        if token is None:
            return False
        if token != work.generation:
            self._drop([work], "generation")
            return True
        for item in work.held:
            if self._lanes is not None or item.rerouted:
                await self._ack_in_order(item)
            else:
                self._check_order(item.message)
                await self._ack(item.token)
                await self._ack_done(item.message)
        return True

    async def _ack_in_order(self, item: Held) -> None:
        """Acknowledge ``item`` once every record received before it on its partition is.

        Merged lane by lane, an internal partition's records are processed out of
        offset order: an acknowledgement waits here for those before it, so that no
        commit passes a record not yet handled.
        """
        msg = item.message
        tp = (msg.topic, msg.partition)
        pending = self._unacked.get(tp)
        if not pending:
            return  # received before a revoke forgot it: not ours to acknowledge
        if msg.offset < pending[0]:
            await self._ack(item.token)  # a re-delivery, already ordered
            return
        done = self._done.setdefault(tp, {})
        done.setdefault(msg.offset, []).append(item.token)  # a re-delivery's copy too
        await self._ack_done(msg)

    async def _ack_done(self, message: InputMessage) -> None:
        """Acknowledge the records of ``message``'s partition that were handled out of
        order and now follow the acknowledged ones without a gap."""
        tp = (message.topic, message.partition)
        pending, done = self._unacked.get(tp), self._done.get(tp)
        while pending and done and pending[0] in done:
            for token in done.pop(pending.popleft()):
                await self._ack(token)

    def _check_order(self, message: InputMessage) -> None:
        """Refuse to acknowledge past a received record that was never acknowledged.

        Faust commits up to the highest acknowledged offset and tolerates a gap
        of one record (or any, before a partition's first commit): a record lost
        between the consumer and an acknowledgement would be skipped for good.
        Here it stops the worker instead; its restart re-reads from the commit.
        """
        pending = self._unacked.get((message.topic, message.partition))
        if not pending:
            return  # received before a revoke forgot it: not ours to order
        head = pending[0]
        if head == message.offset:
            pending.popleft()
            return
        if message.offset < head:
            return  # older than anything pending: a re-delivery, already ordered
        log.error(
            "ack_gap", topic=message.topic, partition=message.partition,
            unacknowledged=head, offset=message.offset,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.ack_gaps.inc()
        raise AckGapError(
            f"{message.topic}[{message.partition}] offset {head} was received but never"
            f" handled; refusing to acknowledge {message.offset}"
        )

    def last_offsets(self) -> dict[tuple[str, int], int]:
        """The last offset received per assigned input partition (a copy): the broker's
        log there must end after it (checked by the broker watch)."""
        return dict(self._last_offset)
