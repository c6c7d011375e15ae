"""The forwarding stage: upstream records re-written into victim-keyed internal topics.

Upstream producers do not all partition alike: librdkafka's default partitioner
(``consistent_random``, CRC32) and Java's (murmur2) put the same victim on different
partitions, and an input topic may have any number of partitions. The stateful stage
owns a victim through the partition of the victim-state table, so it must not read
the inputs as upstream partitioned them. This stage (the Kafka Streams repartition
pattern) reads each input record and writes it, unchanged, to the matching internal
topic (:attr:`Topics.internal`) on the partition the project's own partitioner gives
its key (:func:`partition_of`: murmur2, ``TRIAGE_PARTITIONS`` partitions):

- same key, value (a null value stays null), headers and timestamp; three headers
  appended last (:data:`FORWARD_HEADERS`) record the upstream topic, partition and
  offset, so a dead letter still names where the record is
  (:func:`triage.streaming.upstream.unwrap`);
- a keyless record goes to partition :data:`KEYLESS_PARTITION`, where the stateful
  stage dead-letters it as it always did, except a keyless clock watermark (the
  replay tools write one per input partition at the end of a log), which goes to
  every partition: each partition's stream clock must reach it;
- an input record is acknowledged only once every forward of it is delivered, in
  the order records were received: a crash repeats forwards (exact copies, which
  the stateful stage finds already processed) and never loses one.

No state, no fencing: a worker that lost its partitions and still forwards writes
exact copies. Nothing here imports Faust; :mod:`triage.streaming.app` wires it.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from triage.events.wire import cloudevents_headers, from_millis, output_key
from triage.observability.logging import get_logger
from triage.observability.metrics import TriageMetrics
from triage.pipeline.ingest import Accepted, RawRecord, dead_letter, ingest
from triage.streaming.ends import BrokerEnds, read_to_end
from triage.streaming.gaps import FetchRange, GapGuard, ReadBack, Recovered
from triage.streaming.shell import (
    FORWARD_MAX_BYTES,
    LATEST_MS,
    InputMessage,
    SendTo,
    headers_of,
    partition_of,
    record_size,
)
from triage.streaming.upstream import (
    FORWARD_HEADERS,
    origin_headers,
)
from triage.topics import Topics

log = get_logger("triage.worker")

KEYLESS_PARTITION = 0
"""Where a keyless record (a watermark apart) is forwarded: one fixed partition, so a
repeat lands where the first copy did."""

WATERMARK_TYPE = b"clock.watermark"


@dataclass(frozen=True, slots=True)
class Forward:
    """One record to write to an internal topic."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


def is_watermark(value: bytes | None) -> bool:
    """Whether ``value`` is a clock watermark (a JSON object of that type)."""
    if not value or WATERMARK_TYPE not in value:
        return False
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and body.get("type") == WATERMARK_TYPE.decode()


def forwards(message: InputMessage, topics: Topics, partitions: int) -> list[Forward]:
    """The internal records an input record becomes (none for a topic not an input)."""
    target = topics.internal_of(message.topic)
    if target is None:
        return []
    headers = (
        *headers_of(message.headers),
        *origin_headers(message.topic, message.partition, message.offset),
    )
    key, value = message.key, message.value
    if key is not None:
        targets: Iterable[int] = (partition_of(key, partitions),)
    elif is_watermark(value):
        targets = range(partitions)
    else:
        targets = (KEYLESS_PARTITION,)
    stamp = round(message.timestamp * 1000)
    return [Forward(target, p, key, value, headers, stamp) for p in targets]


@dataclass(slots=True)
class _Pending:
    """An input record whose forwards are under way."""

    tp: tuple[str, int]
    token: Any
    deliveries: list[asyncio.Future[Any]]
    targets: list[tuple[str, int]]
    timestamp_ms: int


class Forwarder:
    """Forwards input records and acknowledges each once its forwards are delivered."""

    def __init__(
        self,
        topics: Topics,
        send: SendTo,
        ack: Callable[[Any], Awaitable[Any]],
        *,
        partitions: int,
        highwater: Callable[[str, int], int | None] | None = None,
        committed: Callable[[str, int], int | None] | None = None,
        fetch_range: FetchRange | None = None,
        metrics: TriageMetrics | None = None,
        ready: Callable[[], bool] | None = None,
        tail_quiet: float = 3.0,
        log_end: Callable[[str, int], int | None] | None = None,
        ends: BrokerEnds | None = None,
        ceiling: Callable[[], int | None] | None = None,
    ) -> None:
        self.topics = topics
        self._read_back = (
            ReadBack(
                fetch_range, GapGuard(committed), stage="forward", metrics=metrics,
                log_end=log_end or highwater, ready=ready, quiet=tail_quiet,
            )
            if fetch_range is not None
            else None
        )  # fmt: skip
        """Reads records the consumer skipped from the broker (None: not checked)."""
        self._lock = asyncio.Lock()
        """Records read back at a partition's tail and records consumed go one at a time."""
        self.metrics = metrics
        self.partitions = partitions
        self._send = send
        self._ack = ack
        self._highwater = highwater
        self._ends = ends
        """Log ends asked of the broker after a moment (see :meth:`lane_caught_up`)."""
        self._ceiling = ceiling
        """Live mode: the latest time (ms) a record may take a lane to, the stateful
        stage's clock ceiling (None: replay mode, stamps as they are)."""
        self._committed = committed
        self._assigned: set[tuple[str, int]] = set()
        self._pending: deque[_Pending] = deque()
        self._in_flight: Counter[tuple[str, int]] = Counter()
        self._last_offset: dict[tuple[str, int], int] = {}
        self._through: dict[tuple[str, int], int] = {}
        """Per input partition (lane): the latest timestamp among its records forwarded,
        delivered and acknowledged (all of them, in the lane's order, up to there)."""
        self._lane_end: dict[tuple[tuple[str, int], tuple[str, int]], int] = {}
        """Per lane and internal partition: one past the highest offset delivered there."""
        self.forwarded = 0
        """Input records forwarded and acknowledged (the stall watch's sign of progress)."""

    async def on_message(self, message: InputMessage, token: Any) -> None:
        """Forward one input record, after any the consumer skipped before it (read back
        from the broker: :mod:`triage.streaming.gaps`)."""
        if self._read_back is not None:
            self._read_back.delivered(message.topic, message.partition)
        async with self._lock:
            await self._take(message, token)

    async def _take(self, message: InputMessage, token: Any) -> None:
        """Forward the records skipped before ``message`` (read back), then it."""
        if self._read_back is not None:
            skipped = await self._read_back.before(message.topic, message.partition, message.offset)
            for record in skipped:
                await self._on_record(
                    record, Recovered(record.topic, record.partition, record.offset)
                )
        await self._on_record(message, token)

    async def read_tails(self) -> None:
        """Forward what assigned input partitions hold past the offset expected while
        none of their records came for a while (skipped with nothing after them)."""
        if self._read_back is None:
            return
        for topic, partition, start, end, found in await self._read_back.overdue(
            sorted(self._assigned)
        ):
            async with self._lock:
                for record in self._read_back.fresh(topic, partition, start, end, found):
                    await self._on_record(record, Recovered(topic, partition, record.offset))

    async def _on_record(self, message: InputMessage, token: Any) -> None:
        """Forward one input record; acknowledge whatever is delivered by now.

        The record is queued for its acknowledgement before anything is sent: if a
        send raises, it stays unacknowledged at the head of the queue and no later
        record of any partition is acknowledged past it (the stall watch restarts
        the worker, which re-reads it), never skipped.
        """
        self._last_offset[(message.topic, message.partition)] = message.offset
        tp = (message.topic, message.partition)
        pending = _Pending(tp, token, [], [], round(message.timestamp * 1000))
        self._pending.append(pending)
        self._in_flight[tp] += 1
        try:
            if record_size(message) > FORWARD_MAX_BYTES:
                await self._too_big(message, pending)
            else:
                for fwd in forwards(message, self.topics, self.partitions):
                    await self._forward(fwd, pending)
        except Exception as exc:
            log.error(
                "forward_failed", topic=message.topic, partition=message.partition,
                offset=message.offset, error=type(exc).__name__,
            )  # fmt: skip
            pending.deliveries.append(asyncio.get_running_loop().create_future())  # never done
            raise
        await self.settle()

    async def _forward(self, fwd: Forward, pending: _Pending) -> None:
        pending.targets.append((fwd.topic, fwd.partition))
        delivery = await self._send(
            fwd.topic, fwd.partition, fwd.key, fwd.value, list(fwd.headers),
            # Faust truncates seconds*1000 to int: half a millisecond keeps it exact.
            (fwd.timestamp_ms + 0.5) / 1000,
        )  # fmt: skip
        pending.deliveries.append(asyncio.ensure_future(delivery))

    async def _too_big(self, message: InputMessage, pending: _Pending) -> None:
        """A record over :data:`FORWARD_MAX_BYTES`: dead-lettered here if ingestion
        refuses it, else forwarded without its own headers."""
        raw = RawRecord(
            topic=message.topic,
            key=message.key,
            value=message.value if message.value is not None else b"",
            timestamp=from_millis(round(message.timestamp * 1000)),
            partition=message.partition,
            offset=message.offset,
            headers=headers_of(message.headers),
        )
        result = ingest(raw, self.topics)
        if isinstance(result, Accepted):
            for fwd in forwards(message, self.topics, self.partitions):
                kept = tuple(h for h in fwd.headers if h[0] in FORWARD_HEADERS)
                await self._forward(
                    Forward(fwd.topic, fwd.partition, fwd.key, fwd.value, kept, fwd.timestamp_ms),
                    pending,
                )
            return
        letter = dead_letter(raw, result.reason, result.detail, self.topics)
        key = output_key(letter)
        encoded = key.encode() if key is not None else None
        log.info(
            "dead_letter", topic=message.topic, partition=message.partition,
            offset=message.offset, reason=letter.reason, record_id=letter.id, stage="forward",
        )  # fmt: skip
        await self._forward(
            Forward(
                self.topics.deadletter,
                partition_of(encoded, self.partitions) if encoded is not None else 0,
                encoded,
                letter.model_dump_json().encode(),
                tuple((k, v.encode()) for k, v in cloudevents_headers(letter).items()),
                round(message.timestamp * 1000),
            ),
            pending,
        )

    def last_offsets(self) -> dict[tuple[str, int], int]:
        """The last offset received per assigned input partition (a copy): the broker's
        log there must end after it (checked by the broker watch)."""
        return dict(self._last_offset)

    @property
    def pending(self) -> int:
        """Input records received and not acknowledged yet."""
        return len(self._pending)

    async def settle(self, *, wait: bool = False) -> None:
        """Acknowledge, in the order received, the records whose forwards are delivered.

        Stops at the first record still in flight (unless ``wait``: then waits for it).
        A failed delivery raises: the worker stops and its restart re-reads from the
        last commit, which is never past the record whose forward failed.
        """
        while self._pending:
            head = self._pending[0]
            if not wait and not all(d.done() for d in head.deliveries):
                return
            for delivery, target in zip(head.deliveries, head.targets, strict=True):
                sent = await delivery
                offset = getattr(sent, "offset", None)
                if isinstance(offset, int):
                    lane = (head.tp, target)
                    self._lane_end[lane] = max(self._lane_end.get(lane, 0), offset + 1)
            self._pending.popleft()
            self._in_flight[head.tp] -= 1
            stamp = self._lane_time(head.timestamp_ms)
            if stamp is not None:
                self._through[head.tp] = max(self._through.get(head.tp, stamp), stamp)
            await self._ack(head.token)
            self.forwarded += 1

    def _lane_time(self, stamp: int) -> int | None:
        """How far in time a delivered record takes its lane: as far as the stateful
        stage merges it. Its stamp, but in live mode never past the clock ceiling; a
        stamp past the years ingestion accepts (it will be dead-lettered) takes the lane
        nowhere: taken at face value, one record stamped 2200 let a partition's updates
        overtake every report behind it on that lane (measured: 198 cases dead-lettered
        ``unknown_case`` in the fuzz corpus)."""
        if stamp >= LATEST_MS:
            return None
        cap = self._ceiling() if self._ceiling is not None else None
        return stamp if cap is None else min(stamp, cap)

    def assign(self, tps: Iterable[tuple[str, int]]) -> None:
        """Input partitions given to this worker (the others are other workers')."""
        self._assigned.update(tp for tp in tps if tp[0] in self.topics.inputs)

    def lanes(self) -> frozenset[tuple[str, int]]:
        """The input partitions (lanes) this worker forwards now."""
        return frozenset(self._assigned)

    def lane_caught_up(self, tp: tuple[str, int], since: float | None = None) -> bool:
        """Every record the broker has on lane ``tp`` is forwarded and delivered: nothing
        in flight and the lane read to its end (:func:`read_to_end`; given ``since``, on
        an end the broker gave at or after that moment)."""
        return not self._in_flight[tp] and read_to_end(
            tp, self._last_offset.get(tp), self._highwater, self._committed, self._ends, since
        )

    def lane_through(self, tp: tuple[str, int]) -> int | None:
        """The latest timestamp (ms) lane ``tp`` has forwarded and delivered, everything
        before it in the lane included (None: nothing yet since the assignment)."""
        return self._through.get(tp)

    def lane_delivered_end(self, tp: tuple[str, int], target: tuple[str, int]) -> int:
        """One past the highest offset lane ``tp`` delivered to internal partition
        ``target`` since this worker started (0: none)."""
        return self._lane_end.get((tp, target), 0)

    def revoke(self, tps: Sequence[tuple[str, int]] | set[tuple[str, int]]) -> int:
        """Input partitions leave this worker: forget their records in flight, unacknowledged
        (their next owner re-reads and re-forwards them: exact copies). Returns how many."""
        gone = set(tps)
        self._assigned -= gone
        if self._read_back is not None:
            self._read_back.forget(gone)
        kept: deque[_Pending] = deque()
        dropped = 0
        for item in self._pending:
            if item.tp not in gone:
                kept.append(item)
                continue
            dropped += 1
            for delivery in item.deliveries:  # nobody awaits these any more
                delivery.add_done_callback(_retrieve)
        self._pending = kept
        for tp in gone:
            self._last_offset.pop(tp, None)
            self._through.pop(tp, None)
            self._in_flight.pop(tp, None)
        if dropped:
            log.info("forwards_dropped_on_revoke", records=dropped)
        return dropped


def _retrieve(delivery: asyncio.Future[Any]) -> None:
    """Mark a forgotten delivery's outcome as seen (no "never retrieved" warning)."""
    if not delivery.cancelled():
        delivery.exception()
