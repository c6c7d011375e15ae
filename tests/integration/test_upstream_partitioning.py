"""Decisions do not depend on how upstream partitioned the input topics (issue 13).

The same generated log is published with confluent-kafka (librdkafka's default
partitioner, CRC32, or a random partition per record) into input topics with 3
partitions, read by a worker with ``TRIAGE_PARTITIONS=4``, and compared with the
offline replay.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.conftest import ExternalBroker
from tests.integration.kafka_helpers import (
    assert_same_outputs,
    joined,
    kafka_outputs,
    offline_outputs,
    running_worker,
    settings_for,
    wait_caught_up,
    wait_for,
)
from triage.broker.admin import TopicSpec, ensure_topics
from triage.broker.embedded import EmbeddedBroker
from triage.events.wire import to_millis
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.replay.player import watermark_records
from triage.replay.records import LogRecord
from triage.settings import TriageSettings

pytestmark = pytest.mark.integration

UPSTREAM_PARTITIONS = 3
WORKER_PARTITIONS = 4


def _log(victims: int, days: int, seed: int) -> list[LogRecord]:
    config = GeneratorConfig(
        victims=victims, days=days, start=date(2026, 2, 2), seed=seed, bad_rate=0.03
    )
    return list(generate_log(config, Engine()))


def _settings(bootstrap: str, *, repartition: bool = True) -> TriageSettings:
    """With the forwarding stage: input topics upstream made with 3 partitions (worker:
    4). Read directly: input topics with the worker's 4 partitions (a worker refuses
    others), misrouted records re-published to their key's partition."""
    settings = settings_for(
        bootstrap, f"u{uuid.uuid4().hex[:8]}.", partitions=WORKER_PARTITIONS,
        repartition=repartition,
    )  # fmt: skip
    count = UPSTREAM_PARTITIONS if repartition else WORKER_PARTITIONS
    ensure_topics(
        bootstrap,
        [TopicSpec(name, count, retention_ms=-1) for name in settings.topics.inputs],
    )
    return settings


def publish_foreign(
    settings: TriageSettings,
    records: list[LogRecord],
    *,
    speed: float | None,
    random_partition: bool,
    seed: int = 13,
    partitions: int = UPSTREAM_PARTITIONS,
) -> None:
    """Publish through librdkafka: its default partitioner (``consistent_random``), or a
    random partition per record; paced at ``speed`` × event time (None: at once); then
    one clock watermark per input partition, as the replay tools do."""
    assert settings.kafka_bootstrap is not None
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    rng = random.Random(seed)
    began, first = time.monotonic(), records[0].timestamp
    for record in records:
        if speed is not None:
            ahead = (record.timestamp - first).total_seconds() / speed - (time.monotonic() - began)
            if ahead > 0:
                producer.poll(0)
                time.sleep(ahead)
        # -1: RD_KAFKA_PARTITION_UA, the producer's partitioner chooses.
        partition = rng.randrange(partitions) if random_partition else -1
        producer.produce(
            settings.topics.with_prefix(record.topic),
            value=record.value,
            key=record.key.encode() if record.key is not None else None,
            partition=partition,
            timestamp=to_millis(record.timestamp),
            headers=[(k, v.encode()) for k, v in record.headers.items()],
            on_delivery=delivered,
        )
        producer.poll(0)
    producer.flush(30)
    last = max(r.timestamp for r in records)
    for partition, mark in watermark_records(settings.topics, partitions, last):
        producer.produce(
            mark.topic, value=mark.value, partition=partition,
            timestamp=to_millis(mark.timestamp), on_delivery=delivered,
        )  # fmt: skip
    assert producer.flush(30) == 0
    assert not failures, failures[:3]


def _body(value: bytes | None) -> dict[str, object]:
    """A record's JSON object, or {} for a malformed one."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _differences(
    kafka: Counter[tuple[str, str, bytes]], offline: Counter[tuple[str, str, bytes]]
) -> dict[str, int]:
    """Records missing from Kafka, extra in Kafka, and ids present in both with
    different content, counted by record type."""
    by_id_k = {i: (t, v) for t, i, v in kafka}
    by_id_o = {i: (t, v) for t, i, v in offline}
    counts: Counter[str] = Counter()
    for i in by_id_o.keys() - by_id_k.keys():
        counts[f"missing {orjson.loads(by_id_o[i][1])['type']}"] += 1
    for i in by_id_k.keys() - by_id_o.keys():
        body = orjson.loads(by_id_k[i][1])
        counts[f"extra {body['type']} {body.get('reason', '')}".strip()] += 1
    for i in by_id_k.keys() & by_id_o.keys():
        if by_id_k[i] != by_id_o[i]:
            counts[f"different {orjson.loads(by_id_o[i][1])['type']}"] += 1
    return dict(counts)


class TestRealisticSpeed:
    """At 3600× real time, upstream partitioning changes nothing."""

    @pytest.mark.parametrize(
        "random_partition",
        # CRC32 through the forwarding stage is a subset of the random case (every record
        # may be misrouted there); it runs in make soak, to keep make test under 15 min.
        [pytest.param(False, marks=pytest.mark.long), True],
        ids=["crc32", "random"],
    )
    def test_outputs_equal_the_offline_replay(
        self, broker: EmbeddedBroker | ExternalBroker, tmp_path: Path, random_partition: bool
    ) -> None:
        """librdkafka's partitioner or a random partition per record, 3 upstream
        partitions against 4: the worker's outputs are the offline replay's, no record
        missing, none different."""
        records = _log(victims=40, days=1, seed=21)
        settings = _settings(broker.bootstrap)
        with running_worker(settings, tmp_path / "worker.log") as worker:
            publish_foreign(settings, records, speed=3600, random_partition=random_partition)
            wait_caught_up(settings, worker)
        kafka, offline = kafka_outputs(settings), offline_outputs(settings, records)
        assert _differences(kafka, offline) == {}
        assert_same_outputs(kafka, offline)

    def test_two_workers_give_the_offline_replays_outputs(
        self, broker: EmbeddedBroker | ExternalBroker, tmp_path: Path
    ) -> None:
        """Two workers in one group split the upstream and internal partitions: each
        stateful stage merges lanes the other worker forwards without knowing how far it
        got. At 3600× the outputs are still the offline replay's."""
        records = _log(victims=40, days=1, seed=21)
        settings = _settings(broker.bootstrap)
        one = settings.model_copy(update={"data_dir": tmp_path / "one"})
        two = settings.model_copy(update={"data_dir": tmp_path / "two"})
        with (
            running_worker(one, tmp_path / "one.log") as first,
            running_worker(two, tmp_path / "two.log") as second,
        ):
            wait_for(lambda: joined(first) and joined(second), "both join", 60, first, second)
            publish_foreign(settings, records, speed=3600, random_partition=True)
            wait_caught_up(settings, first)
            assert second.alive(), second.log_tail()
        kafka, offline = kafka_outputs(settings), offline_outputs(settings, records)
        assert _differences(kafka, offline) == {}


class TestMaxSpeed:
    """As fast as possible, with a random partition per record."""

    def test_every_report_decided_and_every_update_finds_its_case(
        self,
        broker: EmbeddedBroker | ExternalBroker,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Every report is decided, no update is dead-lettered for want of its case, and
        the remaining differences from the offline replay are counted (printed)."""
        records = _log(victims=300, days=30, seed=7)
        settings = _settings(broker.bootstrap)
        with running_worker(settings, tmp_path / "worker.log") as worker:
            publish_foreign(settings, records, speed=None, random_partition=True)
            wait_caught_up(settings, worker)
        kafka, offline = kafka_outputs(settings), offline_outputs(settings, records)
        bodies = [orjson.loads(v) for _t, _i, v in kafka]
        decided = {b["source_event_id"] for b in bodies if b["type"] == "triage.decision"}
        reports = {
            body["source_event_id"]
            for body in (orjson.loads(v) for _t, _i, v in offline)
            if body["type"] == "triage.decision"
        }
        offline_unknown = sum(
            1 for _t, _i, v in offline if orjson.loads(v).get("reason") == "unknown_case"
        )
        unknown = sum(1 for b in bodies if b.get("reason") == "unknown_case")
        differences = _differences(kafka, offline)
        with capsys.disabled():
            print(f"\nmax speed, {len(records)} records: differences {differences}")
        assert reports <= decided
        assert unknown == offline_unknown


@pytest.mark.long  # the misrouted-record logic is in tests/unit/test_misrouted.py
class TestReadDirectly:
    """Without the forwarding stage (the default), a record upstream put on another
    partition than its key's is re-published there: decided with the victim's history,
    found by her updates. Order across that hop is not kept: a forwarded record comes
    after records of its new partition published after it, so a deadline can fire
    before a forwarded acknowledgement arrives (exact order needs the forwarding stage,
    ``TRIAGE_REPARTITION``)."""

    def test_librdkafka_partitioner_at_realistic_speed(
        self,
        broker: EmbeddedBroker | ExternalBroker,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """librdkafka's default partitioner (CRC32) into 4-partition topics at 3600×:
        every offline output is there with the same content, no update is dead-lettered
        for want of its case, the only extras are escalations of deadlines that fired
        before a forwarded acknowledgement arrived; misrouted records are logged
        without their keys."""
        records = _log(victims=40, days=1, seed=21)
        settings = _settings(broker.bootstrap, repartition=False)
        log_path = tmp_path / "worker.log"
        with running_worker(settings, log_path) as worker:
            publish_foreign(
                settings, records, speed=3600, random_partition=False,
                partitions=WORKER_PARTITIONS,
            )  # fmt: skip
            wait_caught_up(settings, worker)
        kafka, offline = kafka_outputs(settings), offline_outputs(settings, records)
        lines = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if "misrouted_record_forwarded" in line
        ]
        differences = _differences(kafka, offline)
        with capsys.disabled():
            print(f"\nread directly, 3600x, {len(lines)} forwarded: differences {differences}")
        assert lines
        assert not any("V-" in line for line in lines)
        assert set(differences) <= {"extra triage.escalation"}

    def test_random_partitions_at_max_speed(
        self,
        broker: EmbeddedBroker | ExternalBroker,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A random partition per record, as fast as possible: every report is decided
        (with her history: no decision differs from offline); the differences from the
        offline replay, which come from order across the hop, are printed."""
        records = _log(victims=150, days=14, seed=7)
        settings = _settings(broker.bootstrap, repartition=False)
        with running_worker(settings, tmp_path / "worker.log") as worker:
            publish_foreign(
                settings, records, speed=None, random_partition=True,
                partitions=WORKER_PARTITIONS,
            )  # fmt: skip
            wait_caught_up(settings, worker)
            offline = offline_outputs(settings, records)
            # Reports and alarms (an override decided offline may be dead-lettered here
            # when its grace ran out before its forwarded case came: counted below).
            initial = {
                body.get("id")
                for body in (_body(r.value) for r in records)
                if body.get("type") in ("report.received", "device.alarm")
            }
            reports = {
                body["source_event_id"]
                for body in (orjson.loads(v) for _t, _i, v in offline)
                if body["type"] == "triage.decision" and body["source_event_id"] in initial
            }
            deadline = time.monotonic() + 30
            while True:
                kafka = kafka_outputs(settings)
                bodies = [orjson.loads(v) for _t, _i, v in kafka]
                decided = {b["source_event_id"] for b in bodies if b["type"] == "triage.decision"}
                if reports <= decided or time.monotonic() > deadline:
                    break
                time.sleep(1)
        differences = _differences(kafka, offline)
        with capsys.disabled():
            print(f"\nread directly, max speed, {len(records)} records: differences {differences}")
        assert reports <= decided
        assert "different triage.decision" not in differences
