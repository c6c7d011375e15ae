"""Helpers for tests that run the real worker against a real broker."""

from __future__ import annotations

import signal
import subprocess
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from kafka import KafkaConsumer, TopicPartition

from triage.broker.admin import end_offsets, group_lag
from triage.broker.provision import provision
from triage.pipeline.engine import Engine
from triage.replay.offline import replay_offline
from triage.replay.player import make_producer, play
from triage.replay.records import LogRecord
from triage.settings import TriageSettings
from triage.streaming.app import Tuning
from triage.streaming.launch import spawn_worker, stop_worker


@dataclass
class Worker:
    """A ``triage worker`` subprocess and its log file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it hangs (a frozen worker is woken first)."""
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
        stop_worker(self.proc)

    def freeze(self) -> None:
        """SIGSTOP: the process stays, silent (a GC pause, VM steal or swap storm)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the frozen process resumes where it stopped."""
        self.proc.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        """Still running?"""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of its log, for assertion messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def settings_for(bootstrap: str, prefix: str, **extra: Any) -> TriageSettings:
    """Settings of an isolated pipeline: its own topics and consumer group."""
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": prefix,
        "group_id": f"{prefix}worker",
        "clock_mode": "replay",
        "web_port": 0,
        "metrics_port": 0,
    }
    return TriageSettings(**(values | extra))


def start_worker(settings: TriageSettings, log_path: Path) -> Worker:
    """Start ``triage worker`` for ``settings`` (topics are provisioned first)."""
    provision(settings)
    proc = spawn_worker(settings.model_copy(update={"log_format": "json"}), log_path)
    return Worker(proc, log_path)


@contextmanager
def running_worker(settings: TriageSettings, log_path: Path) -> Iterator[Worker]:
    """A worker for the duration of a ``with`` block."""
    worker = start_worker(settings, log_path)
    try:
        yield worker
    finally:
        worker.stop()


def publish(
    settings: TriageSettings,
    records: Iterable[LogRecord],
    *,
    watermark: bool = True,
    ordered: bool = True,
) -> int:
    """Play records onto the pipeline's input topics as fast as possible.

    ``ordered`` (the default) flushes the producer whenever the next record goes to the
    other topic, so every record is on the broker before any later record of the other
    topic is sent: the two input topics hold them in log order, as causally written ones
    are (an acknowledgement is written after its decision was read). Without it, at this
    speed a record can reach the broker after a later one on the other topic, and a
    worker reading at the same time may take them in that order: the merge cannot wait
    for a record that is not on the broker yet, so an outcome can differ from the
    offline replay's for a reason that is not the one a test is about (seen once in a
    clean-clone run of the restart test).
    """
    assert settings.kafka_bootstrap is not None
    producer = make_producer(settings.kafka_bootstrap)

    def in_topic_order(items: Iterable[LogRecord]) -> Iterator[LogRecord]:
        # Runs when the player asks for the next record, so between two sends.
        topic: str | None = None
        for record in items:
            if topic is not None and record.topic != topic:
                producer.flush()
            topic = record.topic
            yield record
        producer.flush()  # the closing watermarks go after every record

    try:
        result = play(
            in_topic_order(records) if ordered else records, producer, settings.topics,
            speed=None, partitions=settings.partitions, watermark=watermark,
        )  # fmt: skip
    finally:
        producer.close()
    return result.records


def lag(settings: TriageSettings) -> int:
    """Records the worker group has not committed yet, in both stages (input topics and
    internal topics)."""
    assert settings.kafka_bootstrap is not None
    return group_lag(settings.kafka_bootstrap, settings.group_id, settings.topics.consumed)


SETTLE = Tuning().update_hold + 1.0
"""How long the lag stays at zero before a run counts as done: an update held for its
case is kept that long in wall time (``Tuning.update_hold``) before its dead letter."""


def wait_caught_up(settings: TriageSettings, worker: Worker, timeout: float = 90.0) -> None:
    """Block until the worker committed every input record and stayed so for
    :data:`SETTLE` seconds."""
    deadline = time.monotonic() + timeout
    zero_since: float | None = None
    while time.monotonic() < deadline:
        assert worker.alive(), f"worker died:\n{worker.log_tail()}"
        if lag(settings) == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since > SETTLE:
                return
        else:
            zero_since = None
        time.sleep(0.25)
    raise AssertionError(f"worker did not catch up in {timeout:.0f}s:\n{worker.log_tail()}")


def read_topics(bootstrap: str, topics: Iterable[str]) -> list[tuple[str, bytes | None, bytes]]:
    """Every record of ``topics`` from the beginning to the current end: (topic, key, value)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        # Not consumer.end_offsets(): Tansu under-reports it (see triage.broker.end_offsets).
        ends = {TopicPartition(t, p): n for (t, p), n in end_offsets(bootstrap, topics).items()}
        out: list[tuple[str, bytes | None, bytes]] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            assert time.monotonic() < deadline, "reading output topics timed out"
            for records in consumer.poll(timeout_ms=200).values():
                out.extend((r.topic, r.key, r.value) for r in records)
        return out
    finally:
        consumer.close()


def normalise(topic: str, value: bytes) -> tuple[str, str, bytes]:
    """(logical topic, record id, canonical JSON) with Kafka coordinates blanked out."""
    body = orjson.loads(value)
    if body.get("type") == "triage.dead_letter":
        body["source_partition"] = None
        body["source_offset"] = None
    return topic, body["id"], orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def output_set(
    settings: TriageSettings, records: Iterable[tuple[str, bytes | None, bytes]]
) -> Counter[tuple[str, str, bytes]]:
    """A multiset of normalised output records."""
    return Counter(normalise(settings.topics.logical(t), v) for t, _k, v in records)


def kafka_outputs(settings: TriageSettings) -> Counter[tuple[str, str, bytes]]:
    """Every record on the worker's output topics, normalised."""
    assert settings.kafka_bootstrap is not None
    return output_set(settings, read_topics(settings.kafka_bootstrap, settings.topics.outputs))


def offline_outputs(
    settings: TriageSettings, records: Iterable[LogRecord]
) -> Counter[tuple[str, str, bytes]]:
    """The offline replay's outputs for ``records``, normalised the same way."""
    return output_set(
        settings, [(r.topic, None, r.value) for r in replay_offline(list(records), Engine())]
    )


def assert_same_outputs(
    kafka: Counter[tuple[str, str, bytes]], offline: Counter[tuple[str, str, bytes]]
) -> None:
    """The worker's output records are exactly the offline replay's, by id and content."""
    only_offline, only_kafka = set(offline) - set(kafka), set(kafka) - set(offline)
    differences = len(only_offline) + len(only_kafka)
    assert differences == 0, (
        f"{len(only_offline)} offline records missing from Kafka ({_tally(only_offline)}): "
        f"{_named(only_offline)}; {len(only_kafka)} Kafka records the offline replay lacks "
        f"({_tally(only_kafka)}): {_named(only_kafka)}"
    )


def _named(records: Iterable[tuple[str, str, bytes]], limit: int = 5) -> str:
    """Topic, type and id of a few records (ids only: no content in assertion messages)."""
    shown = sorted((t, orjson.loads(v).get("type", "?"), i) for t, i, v in records)[:limit]
    return ", ".join(f"{t} {kind} {i}" for t, kind, i in shown)


def _tally(records: Iterable[tuple[str, str, bytes]]) -> str:
    """How many records of each type and reason, stage or kind (codes, never content)."""
    counts: Counter[str] = Counter()
    for _topic, _id, value in records:
        body = orjson.loads(value)
        code = body.get("reason") or body.get("stage") or body.get("kind") or ""
        counts[f"{body.get('type', '?')} {code}".strip()] += 1
    return ", ".join(f"{n} {name}" for name, n in counts.most_common())


def wait_for(condition: Callable[[], bool], what: str, timeout: float, *workers: Worker) -> None:
    """Poll ``condition`` until true; fail naming ``what`` (with the workers' logs)."""
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            assert worker.alive(), f"worker died:\n{worker.log_tail()}"
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s:\n" + "\n".join(
            w.log_tail(10) for w in workers
        )
        time.sleep(0.2)


def joined(worker: Worker) -> bool:
    """The worker is ready and has been assigned partitions at least once."""
    text = worker.log_path.read_text(errors="replace")
    return "[^Worker]: Ready" in text and "Setting newly assigned partitions" in text
