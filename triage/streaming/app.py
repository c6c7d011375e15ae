"""The Faust application, built by a factory: nothing connects at import time."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust
from faust.types import TP

from triage.broker.admin import ListedEnds, group_snapshot, read_records
from triage.clock import SystemClock
from triage.errors import BrokerError
from triage.observability.logging import get_logger
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.settings import TriageSettings
from triage.streaming.consistency import (
    METRICS_LINGER,
    STOP_GRACE,
    Expected,
    Problem,
    broker_watch,
    report,
)
from triage.streaming.ends import BrokerEnds
from triage.streaming.fencing import NO_GENERATION, Lease, keep_newest
from triage.streaming.forward import Forwarder
from triage.streaming.gaps import Fetched, Recovered
from triage.streaming.shell import StreamShell, partition_of
from triage.streaming.stores import store_url
from triage.streaming.watchdog import EXIT_BROKER_INCONSISTENT, EXIT_STALLED, StallWatch

log = get_logger("triage.worker")

TABLE_NAME = "victim-state"
CHANGELOG_SEAL = b"~seal"
"""Key of the tombstones that close each changelog flush (never a victim reference)."""


@dataclass(frozen=True, slots=True)
class Tuning:
    """Consumer-group and batching knobs.

    A group join on the embedded broker waits about half the rebalance timeout,
    so the defaults are short; production Kafka can use longer ones.
    """

    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    rebalance_timeout: float = 6.0
    max_poll_interval: float = 300.0
    flush_interval: float = 0.1
    """Least time between two flush cycles (each ends with a changelog seal)."""
    watch_interval: float = 5.0
    """How often the input lag is read from the broker (gauge and stall watch)."""
    tick_interval: float = 0.01
    merge_idle: float | None = None
    """How long a record waits for the other input topic once it looks caught up.

    ``None``: 0 in live mode (as Kafka Streams' ``max.task.idle.ms`` default: an
    acknowledgement is only written after its decision was read, so it cannot
    precede its report), 30 ms in replay mode, where both topics are loaded at
    once and a fetch response can trail the other topic's.
    """
    lease: float = 4.0
    """How long after its last good heartbeat the worker may still write (well
    under the session timeout: a frozen worker stops writing before the broker
    gives its partitions away)."""
    producer_linger: float = 0.005
    held_partitions: frozenset[int] = frozenset()
    """Tests only: partitions whose records the worker receives and never processes (a
    frozen partition, as the stall watch must see it). Empty in every real run; set
    from the environment by :func:`triage.streaming.run.run_worker` (``HOLD_ENV``)."""
    lane_wait: float = 60.0
    """Longest the stateful stage holds a partition's records while the forwarding
    stage still has input to forward (then it processes in arrival order)."""
    fetch_max_wait: float = 0.02
    tail_quiet: float = 10.0
    """Seconds a stage must have received nothing before it reads back what a partition
    holds past the offset expected (see :mod:`triage.streaming.gaps`)."""
    update_hold: float = 2.0
    """Wall seconds an update held for its case (the rule set's ``update_grace``) is
    kept at least, however fast stream time runs: replayed at speed, or behind a burst
    on another partition, the case may be a fetch away while an hour of stream time
    went by. The dead letter of a real orphan is the same, that much later."""


def faust_credentials(settings: TriageSettings) -> Any:
    """Faust broker credentials for the configured security protocol (or None)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if protocol in ("SSL", "SASL_SSL"):
        import ssl

        ssl_context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            ssl_context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                settings.kafka_ssl_password.get_secret_value()
                if settings.kafka_ssl_password
                else None,
            )
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ssl_context,
    )


def _limit_fetch_wait(seconds: float) -> None:
    """Make Faust's consumer ask the broker to answer fetches within ``seconds``.

    Faust hard-codes ``fetch_max_wait_ms=1500``. Apache Kafka answers a fetch as
    soon as data arrives, but Tansu holds it for a good part of the wait even
    when records are there (measured: 415 ms median at 1500 ms, 1.6 ms at 20 ms),
    which would be the floor of our latency. Called when the app is built, in the
    worker process only; idempotent.
    """
    from faust.transport.drivers import aiokafka as driver

    thread: Any = driver.AIOKafkaConsumerThread
    original = getattr(thread, "_triage_original_create", thread._create_worker_consumer)

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = int(seconds * 1000)
        return consumer

    thread._triage_original_create = original
    thread._create_worker_consumer = create


def _track_heartbeats() -> None:
    """Make aiokafka's group coordinator remember when its last good heartbeat left.

    The fencing lease (:mod:`triage.streaming.fencing`) is measured from it. A
    completed join counts too. Called when the app is built; idempotent.
    """
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    coordinator: Any = GroupCoordinator
    heartbeat = getattr(coordinator, "_triage_original_heartbeat", coordinator._do_heartbeat)
    joined = getattr(coordinator, "_triage_original_joined", coordinator._on_join_complete)

    async def do_heartbeat(self: Any) -> bool:
        sent = time.monotonic()
        ok = bool(await heartbeat(self))
        if ok:
            self._triage_last_heartbeat = sent
        return ok

    async def on_join_complete(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._triage_last_heartbeat = time.monotonic()
        return await joined(self, *args, **kwargs)

    coordinator._triage_original_heartbeat = heartbeat
    coordinator._triage_original_joined = joined
    coordinator._do_heartbeat = do_heartbeat
    coordinator._on_join_complete = on_join_complete


class _ConsumerMembership:
    """The worker's group membership, read from aiokafka's coordinator.

    The consumer runs in its own thread; these are plain attribute reads.
    """

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def _coordinator(self) -> Any:
        try:
            consumer: Any = self._app.consumer
            return consumer._thread._ensure_consumer()._coordinator
        except Exception:  # not started, or stopping: not a member
            return None

    def generation(self) -> int:
        coordinator = self._coordinator()
        if coordinator is None or not coordinator.member_id:
            return NO_GENERATION
        return int(coordinator.generation)

    def last_heartbeat(self) -> float:
        coordinator = self._coordinator()
        return float(getattr(coordinator, "_triage_last_heartbeat", float("-inf")))


class FencedTable(faust.Table[bytes, bytes]):
    """The victim-state table: a recovery keeps each victim's newest-generation state.

    A changelog record written under an older group generation than the state
    already recovered for its key came from a worker that had lost the partition
    (frozen, cut off): it is skipped and logged (see :func:`fencing.newer`).
    """

    def apply_changelog_batch(self, batch: Any) -> None:
        store: Any = self.data

        def stored(key: bytes) -> bytes | None:
            try:
                value = store[key]
            except KeyError:
                return None
            return None if value is None else bytes(value)

        events = list(batch)
        kept, stale = keep_newest(((e.message.key, e.message.value, e) for e in events), stored)
        if stale:
            log.warning("stale_states_skipped", table=self.name, records=stale)
        super().apply_changelog_batch(kept)


def create_app(
    settings: TriageSettings,
    engine: Engine,
    *,
    tuning: Tuning | None = None,
    metrics: TriageMetrics | None = None,
    watch: StallWatch | None = None,
) -> tuple[faust.App, StreamShell]:
    """Build the worker's Faust app and the shell it drives. Connects nothing yet.

    ``watch`` (by default one with ``settings.stall_timeout``) is tripped, and the
    worker stopped, when the worker stalls.
    """
    if settings.kafka_bootstrap is None:
        raise ValueError("create_app needs settings.kafka_bootstrap (start a broker first)")
    tuning = tuning or Tuning()
    _limit_fetch_wait(tuning.fetch_max_wait)
    _track_heartbeats()
    topics = settings.topics
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        store=store_url(settings.store),
        datadir=str(settings.data_dir),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=tuning.session_timeout,
        broker_heartbeat_interval=tuning.heartbeat_interval,
        broker_rebalance_timeout=tuning.rebalance_timeout,
        broker_max_poll_interval=tuning.max_poll_interval,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        producer_acks=-1,
        # Without linger every output goes in its own produce request; 5 ms of
        # batching costs little latency and most of the per-request overhead.
        producer_linger=tuning.producer_linger,
        table_standby_replicas=0 if settings.replication_factor == 1 else 1,
        web_enabled=settings.web_port != 0,
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        Table=FencedTable,
    )
    # Two stages in one app (the Kafka Streams repartition pattern): the forwarding
    # stage reads the input topics however upstream partitioned them and re-writes
    # each record to an internal topic with our partitioner; the stateful stage reads
    # only those, co-partitioned with the victim-state table.
    # Without repartitioning (the default) the stateful stage reads the inputs as
    # upstream partitioned them, which must then be murmur2 of the victim reference.
    repartition = settings.repartition
    stateful = topics.internal if repartition else topics.inputs
    upstream = app.topic(*topics.inputs, key_type=bytes, value_type=bytes, internal=False)
    internal = app.topic(*stateful, key_type=bytes, value_type=bytes, internal=False)
    table = app.Table(
        TABLE_NAME,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=bytes,
        value_type=bytes,
    )
    state = _TableView(table)

    async def send(
        topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], ts: float
    ) -> Any:
        return await app.producer.send(
            topic, key, value, partition=None, timestamp=ts, headers=headers, transactional_id=None
        )

    async def send_to(
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        ts: float,
    ) -> Any:
        return await app.producer.send(
            topic, key, value, partition=partition, timestamp=ts, headers=headers,
            transactional_id=None,
        )  # fmt: skip

    stream_ref: dict[str, Any] = {}

    async def acknowledge(stream: str, event: Any) -> None:
        if isinstance(event, Recovered):
            # Read back from the broker, never delivered by Faust: its offset joins the
            # handled ones Faust's commit may pass (its gap bookkeeping, as it does for
            # offsets a fetch skipped).
            consumer: Any = app.consumer
            await consumer._add_gap(TP(event.topic, event.partition), event.offset, event.offset)
            return
        await stream_ref[stream].ack(event)

    async def ack(event: Any) -> None:
        await acknowledge("stream", event)

    async def ack_forwarded(event: Any) -> None:
        await acknowledge("forward", event)

    def ready() -> bool:
        # Reading back is safe once the group settled and the table is recovered:
        # records processed before that would miss their victims' history.
        try:
            tables: Any = app.tables
            consumer: Any = app.consumer
            return bool(
                not app.rebalancing and consumer.flow_active and not tables.recovery.in_recovery
            )
        except Exception:
            return False

    def assigned() -> list[tuple[str, int]]:
        try:
            return [(tp.topic, tp.partition) for tp in app.consumer.assignment()]
        except Exception:
            return []

    async def fetch_range(topic: str, partition: int, start: int, end: int) -> list[Fetched]:
        assert settings.kafka_bootstrap is not None
        records = await asyncio.to_thread(
            read_records, settings.kafka_bootstrap, topic, partition, start, end,
            security=settings.kafka_python_security(),
        )  # fmt: skip
        return [
            # As Faust gives a record: a null value stays None, seconds since the epoch.
            Fetched(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp / 1000,
                    list(r.headers or ()))
            for r in records
        ]  # fmt: skip

    def highwater(topic: str, partition: int) -> int | None:
        try:
            value = app.consumer.highwater(TP(topic, partition))
        except Exception:
            return None
        return int(value) if value is not None else None

    def committed(topic: str, partition: int) -> int | None:
        # The group's commit as the consumer read it at the assignment (and moved
        # with our own commits since); else as the broker said at the last watch.
        offsets: Any = getattr(app.consumer, "_committed_offset", {})
        value = offsets.get(TP(topic, partition))
        if value is None:
            return broker_view["committed"].get((topic, partition))
        return int(value)

    broker_view: dict[str, dict[tuple[str, int], int]] = {"ends": {}, "committed": {}}
    """Log ends and group commits as the last lag watch read them from the broker."""

    def log_end(topic: str, partition: int) -> int | None:
        # Where a partition's log ends: the consumer's high watermark, or the broker's
        # word at the last watch for a partition the consumer never fetched (Faust can
        # leave one paused after a restart: its records must still be read back).
        high = highwater(topic, partition)
        end = broker_view["ends"].get((topic, partition))
        if high is None or end is None:
            return high if end is None else end
        return max(high, end)

    async def write_states(states: dict[bytes, bytes]) -> None:
        # What the table's __setitem__ does (local store, then the changelog), without
        # Faust's one-record-at-a-time producer buffer: the records go to the
        # producer at once and are awaited together.
        changelog = table.changelog_topic.get_topic_name()
        store: Any = table.data
        pending = []
        for key, value in states.items():
            store[key] = value
            partition = partition_of(key, settings.partitions)
            pending.append(
                await app.producer.send(
                    changelog, key, value, partition=partition, timestamp=None,
                    headers=None, transactional_id=None,
                )
            )  # fmt: skip
        # The newest offset per partition tells a RocksDB store, at the next start,
        # how far its local copy goes (what Faust's changelog callback records).
        newest: dict[int, int] = {}
        for delivery in pending:
            sent = await delivery
            newest[sent.partition] = max(newest.get(sent.partition, -1), sent.offset)
        for partition, offset in newest.items():
            store.set_persisted_offset(TP(changelog, partition), offset)

    async def seal_changelog(partitions: set[int]) -> None:
        # Tansu 0.6 answers ListOffsets(latest) with the last *batch's* base offset
        # + 1, and Faust recovers a table up to that offset: every record after the
        # first of a final batch would be lost on restart. So once the states are
        # delivered, each written partition gets a lone tombstone for a key that is
        # never a victim: its batch holds one record, the end offset comes out right,
        # and recovery deletes nothing. Harmless on Apache Kafka. Only the shell's
        # flush cycle writes states, one cycle at a time, so nothing can join the
        # tombstone's batch; the inputs are acknowledged once it is delivered.
        await app.producer.flush()
        for partition in sorted(partitions):
            table.changelog_topic.send_soon(
                key=CHANGELOG_SEAL, value=None, partition=partition, value_serializer="raw"
            )
        await app.producer.flush()

    assert settings.kafka_bootstrap is not None
    listed = ListedEnds(settings.kafka_bootstrap, security=settings.kafka_python_security())

    async def list_ends(partitions: Sequence[tuple[str, int]]) -> Mapping[tuple[str, int], int]:
        return await asyncio.to_thread(listed.ask, partitions)

    # A record goes before another source's is known to be absent only on a log end
    # the broker gave after it arrived (the consumer's watermark may be older).
    ends = BrokerEnds(list_ends)
    forwarder = Forwarder(
        topics, send_to, ack_forwarded, partitions=settings.partitions,
        highwater=highwater, committed=committed, fetch_range=fetch_range, metrics=metrics,
        ready=ready, log_end=log_end, tail_quiet=tuning.tail_quiet, ends=ends,
        ceiling=lambda: shell.ceiling_ms(),  # the stage defined next
    )  # fmt: skip
    clock = SystemClock()
    shell = StreamShell(
        engine,
        topics,
        state,
        send,
        ack,
        partitions=settings.partitions,
        idle=tuning.merge_idle
        if tuning.merge_idle is not None
        else (0.0 if settings.clock_mode == "live" else 0.03),
        metrics=metrics,
        highwater=highwater,
        committed=committed,
        live=settings.clock_mode == "live",
        persisted=seal_changelog,
        write_states=write_states,
        flush_interval=tuning.flush_interval,
        fence=Lease(_ConsumerMembership(app), tuning.lease),
        sources=stateful,
        lanes=forwarder if repartition else None,
        lane_wait=tuning.lane_wait,
        wall_clock=clock,
        max_skew=timedelta(seconds=settings.max_clock_skew),
        reroute=send_to,
        held_partitions=tuning.held_partitions,
        fetch_range=fetch_range,
        update_hold=tuning.update_hold,
        assigned=assigned,
        ready=ready,
        log_end=log_end,
        tail_quiet=tuning.tail_quiet,
        ends=ends,
    )
    live = settings.clock_mode == "live"
    watch = watch if watch is not None else StallWatch(settings.stall_timeout)

    def consume(name: str, handle: Callable[[Any, Any], Awaitable[None]]) -> Any:
        """An agent body: each event's message to ``handle``, acknowledged by hand."""

        async def agent(stream: Any) -> None:
            manual = stream.noack()
            stream_ref[name] = manual
            try:
                async for event in manual.events():
                    await handle(event.message, event)
            except Exception as exc:
                # Faust logs the crash and restarts the agent in a process that still
                # looks healthy: count it, so that an alert sees it (the record's
                # processing never raises; a delivery or the broker may).
                if metrics is not None:
                    metrics.agent_crashes.inc()
                log.error("agent_crashed", agent=name, error=type(exc).__name__)
                raise

        return agent

    if repartition:
        app.agent(upstream, name="triage-forward")(consume("forward", forwarder.on_message))
    app.agent(internal, name="triage")(consume("stream", shell.on_message))

    @app.timer(interval=tuning.tick_interval)
    async def tick() -> None:
        try:
            if "forward" in stream_ref:
                await forwarder.settle()
                await forwarder.read_tails()
            if "stream" in stream_ref:
                await shell.tick(clock.now() if live else None)
        except Exception as exc:
            # A flush that failed (a delivery refused) stops the worker: counted like an
            # agent's crash, so that TriageAgentCrashed sees it.
            if metrics is not None:
                metrics.agent_crashes.inc()
            log.error("agent_crashed", agent="tick", error=type(exc).__name__)
            raise

    bootstrap = settings.kafka_bootstrap

    @app.timer(interval=tuning.watch_interval)
    async def watch_progress() -> None:
        # Lag as the broker sees it (committed → end of each assigned partition of
        # both stages: input and internal topics): unlike the fetch positions, it
        # survives a rebalance. The same reading checks that the broker still holds
        # what this worker knows: one restarted empty has no topics, hence no lag,
        # and the worker would sit idle.
        broker = broker_watch(app)
        if "stream" not in stream_ref or watch.tripped or broker.tripped:
            return
        assigned = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
        # Before asking: the logs must end past these.
        read = shell.last_offsets() | forwarder.last_offsets()
        expected = Expected.of(settings, table.changelog_topic.get_topic_name())
        try:
            snapshot = await asyncio.to_thread(
                group_snapshot, bootstrap, settings.group_id, expected.topics, expected.consumed,
                security=settings.kafka_python_security(), timeout=tuning.watch_interval,
            )  # fmt: skip
        except BrokerError as exc:
            log.warning("lag_unknown", error=type(exc).__name__)
            return
        broker_view["ends"] = dict(snapshot.ends)
        broker_view["committed"] = dict(snapshot.committed)
        problems = broker.observe(expected, snapshot, read)
        if problems:
            _stop_inconsistent(problems, metrics, serving=bool(settings.metrics_port))
            return
        waiting = {tp: n for tp, n in snapshot.lag().items() if tp in assigned}
        if metrics is not None:
            for topic in topics.consumed:
                total = sum(n for (t, _p), n in waiting.items() if t == topic)
                metrics.consumer_lag.labels(topics.logical(topic)).set(total)
        busy = bool(getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False))
        now = time.monotonic()
        # Progress of either stage counts; records waiting in either stage's topics
        # with neither stage moving is a stall.
        progress = shell.processed + forwarder.forwarded
        was_frozen = set(watch.frozen())  # as of the previous observation
        committed = {tp: n for tp, n in snapshot.committed.items() if tp in assigned}
        tripped = watch.observe(now, progress, waiting, busy=busy, committed=committed)
        frozen = watch.frozen(now)
        if metrics is not None:
            metrics.frozen_partitions.set(len(frozen))
        for topic, partition in frozen:
            if (topic, partition) not in was_frozen:
                log.warning(
                    "partition_frozen", topic=topic, partition=partition,
                    offset=committed.get((topic, partition)),
                    lag=waiting.get((topic, partition)),
                    seconds=round(watch.stuck_for(now)),
                )  # fmt: skip
        if tripped:
            log.error(
                "worker_stalled",
                seconds=round(max(watch.stalled_for(now), watch.stuck_for(now))),
                lag=sum(waiting.values()), partitions=sum(1 for n in waiting.values() if n),
                held=len(frozen),
            )  # fmt: skip
            # A graceful stop first (deliver, seal, commit what was done); if that
            # hangs too, leave anyway: the supervisor restarts the worker.
            hard = threading.Timer(60.0, os._exit, args=(EXIT_STALLED,))
            hard.daemon = True
            hard.start()
            os.kill(os.getpid(), signal.SIGTERM)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: faust.App, assigned: set[TP], **_: Any) -> None:
        if repartition:
            forwarder.assign((tp.topic, tp.partition) for tp in assigned)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: faust.App, revoked: set[TP], **_: Any) -> None:
        if repartition:
            forwarder.revoke(
                {(tp.topic, tp.partition) for tp in revoked if tp.topic in topics.inputs}
            )
        await shell.revoke({tp.partition for tp in revoked if tp.topic in stateful})

    del tick, watch_progress, on_assigned, on_revoked  # registered
    return app, shell


def _stop_inconsistent(
    problems: list[Problem], metrics: TriageMetrics | None, *, serving: bool
) -> None:
    """The broker contradicts the worker: one error line, the gauge, then stop.

    As for a stall: a graceful stop first, a hard exit if it hangs (sooner: see
    ``STOP_GRACE``). ``run_worker`` sees the tripped broker watch and exits with
    ``EXIT_BROKER_INCONSISTENT``; ``serving``: /metrics is served (it lingers).
    """
    report(problems, metrics, when="running")
    grace = STOP_GRACE + (METRICS_LINGER if serving else 0.0)
    hard = threading.Timer(grace, os._exit, args=(EXIT_BROKER_INCONSISTENT,))
    hard.daemon = True
    hard.start()
    os.kill(os.getpid(), signal.SIGTERM)


class _TableView(MutableMapping[bytes, bytes]):
    """The Faust table as a plain ``MutableMapping[bytes, bytes]``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getitem__(self, key: bytes) -> bytes:
        value = self._table[key]
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._table[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._table[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._table.keys())

    def __len__(self) -> int:
        return len(self._table)
