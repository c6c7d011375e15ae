"""``triage bench``: one run on the embedded broker, one JSON document of figures.

Every part uses the same generated events. The worker's throughput is given as a
share of two ceilings measured in the same run: a raw aiokafka loop (baseline) and
a bare Faust agent with a Table (faust-ceiling), its own framework's limit. Speed
targets (issue 6): ratio pipeline/baseline ≥ 0.5, p99 ≤ 100 ms at 200 events/s,
offline engine ≥ 50,000 events/s, a synthetic year through Kafka ≤ 60 s, bounded
state per victim.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from triage.bench.baseline import passthrough
from triage.bench.ceiling import CeilingSpec, check_outputs, spawn_ceiling
from triage.bench.fencing import fencing_costs
from triage.broker.admin import TopicSpec, end_offsets, ensure_topics, group_lag
from triage.broker.embedded import EmbeddedBroker
from triage.broker.provision import provision
from triage.events.base import decision_id_of
from triage.events.wire import to_millis
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import to_raw
from triage.replay.player import make_producer, play
from triage.replay.records import LogRecord
from triage.settings import TriageSettings
from triage.streaming.launch import spawn_worker, stop_worker
from triage.testing import make_report
from triage.topics import Topics

PARTS = ("offline", "baseline", "faust-ceiling", "pipeline", "fencing", "latency", "year")


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """What to measure and how big."""

    victims: int = 3000
    days: int = 90
    latency_rate: float = 200.0
    latency_seconds: float = 30.0
    year_victims: int = 12_000
    parts: tuple[str, ...] = PARTS
    workdir: Path = Path("var/bench")


def run_bench(
    config: BenchConfig, progress: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Run the selected parts; returns the figures."""
    config.workdir.mkdir(parents=True, exist_ok=True)
    engine = Engine()
    progress("generating the workload")
    gen = GeneratorConfig(victims=config.victims, days=config.days, start=date(2026, 1, 1), seed=6)
    records = list(generate_log(gen, engine))
    figures: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "workload": {"records": len(records), "victims": config.victims, "days": config.days},
    }
    if "offline" in config.parts:
        progress("offline engine")
        figures["offline"] = _offline(records, engine)
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker(log_path=config.workdir / "broker.log"))
        if "baseline" in config.parts:
            progress("baseline: raw aiokafka passthrough")
            figures["baseline"] = _baseline(broker.bootstrap, records)
        if "faust-ceiling" in config.parts:
            progress("faust-ceiling: a bare Faust agent with a Table")
            figures["faust_ceiling"] = faust_ceiling(broker.bootstrap, records, config.workdir)
        if "pipeline" in config.parts:
            progress("pipeline: the triage worker (through its forwarding stage)")
            figures["pipeline"] = _pipeline(broker.bootstrap, records, config.workdir)
            progress("pipeline: the triage worker reading the inputs directly")
            direct = _pipeline(broker.bootstrap, records, config.workdir, repartition=False)
            figures["pipeline_direct"] = direct
            # What the forwarding stage costs, side by side in one run.
            figures["forwarding_stage"] = {
                "throughput_ratio": round(
                    figures["pipeline"]["events_per_s"] / direct["events_per_s"], 2
                ),
                "extra_seconds": round(figures["pipeline"]["seconds"] - direct["seconds"], 2),
            }
        _ratios(figures)
        if "fencing" in config.parts:
            progress("fencing: what the lease, the stamps and the recovery check cost")
            figures["fencing"] = fencing_costs(records, figures.get("pipeline"))
        if "latency" in config.parts:
            progress(f"latency at {config.latency_rate:.0f} events/s")
            figures["latency"] = _latency(broker.bootstrap, config, engine)
        if "year" in config.parts:
            progress("a synthetic year through Kafka")
            figures["year"] = _year(broker.bootstrap, config, engine)
    figures["targets"] = _targets(figures)
    return figures


# -- parts -----------------------------------------------------------------------


def _offline(records: Sequence[LogRecord], engine: Engine) -> dict[str, Any]:
    topics = Topics()
    raws = [to_raw(r, topics) for r in records]
    rates = []
    for _ in range(3):
        processor = Processor(engine, topics)
        began = time.perf_counter()
        for raw in raws:
            processor.feed(raw)
        rates.append(len(raws) / (time.perf_counter() - began))
    sizes = [len(s.model_dump_json()) for s in processor.states.values()]
    return {
        "events_per_s": round(max(rates)),
        "victims": len(sizes),
        "state_bytes_per_victim_mean": round(statistics.fmean(sizes)),
        "state_bytes_per_victim_max": max(sizes),
    }


def _baseline(bootstrap: str, records: Sequence[LogRecord]) -> dict[str, Any]:
    source, sink = f"bench.{uuid.uuid4().hex[:6]}.in", f"bench.{uuid.uuid4().hex[:6]}.out"
    ensure_topics(bootstrap, [TopicSpec(source, 4), TopicSpec(sink, 4)])
    producer = make_producer(bootstrap)
    try:
        for record in records:
            producer.send(source, key=(record.key or "").encode(), value=record.value,
                          timestamp_ms=to_millis(record.timestamp))  # fmt: skip
        producer.flush()
    finally:
        producer.close()
    rate = asyncio.run(passthrough(bootstrap, source, sink, len(records)))
    return {"events_per_s": round(rate)}


def _settings(bootstrap: str, workdir: Path) -> TriageSettings:
    prefix = f"b{uuid.uuid4().hex[:6]}."
    return TriageSettings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        group_id=f"{prefix}worker",
        clock_mode="replay",
        web_port=0,
        metrics_port=0,
        data_dir=workdir / prefix,
        log_format="json",
        log_level="WARNING",
    )


class _Worker:
    """A child process under measurement (a triage worker or the faust-ceiling app)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.peak_rss = 0

    def sample_rss(self) -> None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)
        except OSError:
            pass

    def stop(self) -> None:
        self.sample_rss()
        stop_worker(self.proc)


def _run_until_caught_up(
    settings: TriageSettings, worker: _Worker, timeout: float = 600.0, *, output: str = ""
) -> tuple[float, float]:
    """Wall times of the first output (on ``output``, by default the decisions topic)
    and of the moment every input was committed."""
    assert settings.kafka_bootstrap is not None
    bootstrap = settings.kafka_bootstrap
    output = output or settings.topics.decisions
    first: float | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError("the worker exited; see var/bench/*.log")
        worker.sample_rss()
        if first is None and sum(end_offsets(bootstrap, [output]).values()) > 0:
            first = time.perf_counter()
        if (
            first is not None
            and group_lag(bootstrap, settings.group_id, settings.topics.consumed) == 0
        ):
            return first, time.perf_counter()
        time.sleep(0.1)
    raise RuntimeError("the worker did not catch up in time")


def _pipeline(
    bootstrap: str, records: Sequence[LogRecord], workdir: Path, *, repartition: bool = True
) -> dict[str, Any]:
    settings = _settings(bootstrap, workdir).model_copy(update={"repartition": repartition})
    provision(settings)
    producer = make_producer(bootstrap)
    try:
        play(records, producer, settings.topics, speed=None, partitions=settings.partitions)
    finally:
        producer.close()
    started = time.perf_counter()
    worker = _Worker(spawn_worker(settings, workdir / "pipeline-worker.log"))
    try:
        first, done = _run_until_caught_up(settings, worker)
    finally:
        worker.stop()
    # Commits come every 0.5 s: the last one may trail the work by that much.
    return {
        "events_per_s": round(len(records) / (done - first)),
        "seconds": round(done - first, 2),
        # From the worker's start (process start and group join included): the first
        # output waits for the forwarding stage, so this is the end-to-end figure.
        "seconds_from_start": round(done - started, 2),
        "worker_peak_rss_mb": round(worker.peak_rss / 2**20, 1),
    }


def faust_ceiling(bootstrap: str, records: Sequence[LogRecord], workdir: Path) -> dict[str, Any]:
    """The pipeline part's input, topics and timing, through a bare Faust agent with a Table.

    Checks afterwards that every input (records and watermarks) got its output.
    """
    settings = _settings(bootstrap, workdir)
    provision(settings)
    sink = f"{settings.topic_prefix}bench.ceiling.out"
    ensure_topics(bootstrap, [TopicSpec(sink, settings.partitions)])
    producer = make_producer(bootstrap)
    try:
        play(records, producer, settings.topics, speed=None, partitions=settings.partitions)
    finally:
        producer.close()
    spec = CeilingSpec(
        bootstrap=bootstrap,
        app_id=settings.group_id,
        inputs=settings.topics.inputs,
        sink=sink,
        partitions=settings.partitions,
        datadir=str(settings.data_dir),
    )
    worker = _Worker(spawn_ceiling(spec, workdir / "faust-ceiling.log"))
    try:
        first, done = _run_until_caught_up(settings, worker, output=sink)
    finally:
        worker.stop()
    return {
        "events_per_s": round(len(records) / (done - first)),
        "seconds": round(done - first, 2),
        "peak_rss_mb": round(worker.peak_rss / 2**20, 1),
        **check_outputs(bootstrap, settings.topics.inputs, sink),
    }


def _ratios(figures: dict[str, Any]) -> None:
    """Throughputs measured in this run, as shares of the ceilings measured beside them."""
    rate = {k: figures[k]["events_per_s"] for k in ("baseline", "faust_ceiling") if k in figures}
    for part in ("faust_ceiling", "pipeline"):
        if part not in figures:
            continue
        for ceiling in ("baseline", "faust_ceiling"):
            if ceiling != part and ceiling in rate:
                figures[part][f"ratio_to_{ceiling}"] = round(
                    figures[part]["events_per_s"] / rate[ceiling], 3
                )


def _latency(bootstrap: str, config: BenchConfig, engine: Engine) -> dict[str, Any]:
    # Live events, so the worker runs as in production: on the wall clock.
    settings = _settings(bootstrap, config.workdir).model_copy(update={"clock_mode": "live"})
    provision(settings)
    worker = _Worker(spawn_worker(settings, config.workdir / "latency-worker.log"))
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    queue_topics = [
        settings.topics.queue(q) for q in ("immediate", "high-risk", "follow-up", "standard")
    ]

    def watch() -> None:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=5)
        consumer.assign(
            [TopicPartition(t, p) for t in queue_topics for p in range(settings.partitions)]
        )
        consumer.seek_to_beginning()
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=20).values():
                now = time.perf_counter()
                for message in batch:
                    decision = orjson.loads(message.value)["decision_id"]
                    seen.setdefault(decision, now)
        consumer.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    producer = make_producer(bootstrap)
    try:
        _warm_up(settings, producer, worker)
        count = int(config.latency_rate * config.latency_seconds)
        began = time.perf_counter()
        for n in range(count):
            due = began + n / config.latency_rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            now = datetime.now(UTC)  # noqa: TID251 - live events for a latency probe
            event = make_report(id=f"lat-{uuid.uuid4().hex}", victim_ref=f"V-L{n:08d}", time=now)
            decision = decision_id_of(event.source, event.id, engine.rules.version)
            sent[decision] = time.perf_counter()
            _send_event(producer, settings.topics.reports, event)
            producer.flush()
        producer.flush()
        deadline = time.monotonic() + 30
        while len([d for d in sent if d in seen]) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        producer.close()
        worker.stop()
        watcher.join(5)
    latencies = sorted((seen[d] - t) * 1000 for d, t in sent.items() if d in seen)
    if not latencies:
        raise RuntimeError("no queue record came back during the latency probe")
    return {
        "offered_events_per_s": config.latency_rate,
        "seconds": config.latency_seconds,
        "received": len(latencies),
        "sent": len(sent),
        "p50_ms": round(_pct(latencies, 50), 1),
        "p99_ms": round(_pct(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1),
    }


def _warm_up(settings: TriageSettings, producer: Any, worker: _Worker) -> None:
    """Wait for the worker to join and process one record before measuring."""
    now = datetime.now(UTC)  # noqa: TID251
    event = make_report(id="lat-warmup", victim_ref="V-WARMUP01", time=now)
    _send_event(producer, settings.topics.reports, event)
    producer.flush()
    _run_until_caught_up(settings, worker, timeout=120)


def _year(bootstrap: str, config: BenchConfig, engine: Engine) -> dict[str, Any]:
    gen = GeneratorConfig(victims=config.year_victims, days=365, start=date(2026, 1, 1), seed=62)
    records = list(generate_log(gen, engine))
    settings = _settings(bootstrap, config.workdir)
    provision(settings)
    worker = _Worker(spawn_worker(settings, config.workdir / "year-worker.log"))
    producer = make_producer(bootstrap)
    try:
        _warm_up(settings, producer, worker)
        began = time.perf_counter()
        result = play(
            records, producer, settings.topics, speed=None, partitions=settings.partitions
        )
        published = time.perf_counter()
        _first, done = _run_until_caught_up(settings, worker)
    finally:
        producer.close()
        worker.stop()
    return {
        "records": len(records),
        "victims": config.year_victims,
        "publish_seconds": round(published - began, 1),
        "end_to_end_seconds": round(done - began, 1),
        "events_per_s": round(result.records / (done - began)),
        "worker_peak_rss_mb": round(worker.peak_rss / 2**20, 1),
    }


def _send_event(producer: Any, topic: str, event: Any) -> None:
    producer.send(
        topic,
        key=event.victim_ref.encode(),
        value=event.model_dump_json().encode(),
        timestamp_ms=to_millis(event.time),
    )


def _pct(ordered: Sequence[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _targets(figures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "pipeline" in figures and "ratio_to_baseline" in figures["pipeline"]:
        out["ratio_ge_0.5"] = figures["pipeline"]["ratio_to_baseline"] >= 0.5
    if "latency" in figures:
        out["p99_le_100ms"] = figures["latency"]["p99_ms"] <= 100
    if "offline" in figures:
        out["offline_ge_50k_per_s"] = figures["offline"]["events_per_s"] >= 50_000
        out["state_bounded"] = figures["offline"]["state_bytes_per_victim_max"] < 64 * 1024
    if "year" in figures:
        out["year_le_60s"] = figures["year"]["end_to_end_seconds"] <= 60
    return out
