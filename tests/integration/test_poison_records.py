"""Poison records on the real broker: each ends in one attempt, as a bounded dead letter.

A record with a 900 KB key, one with ten 50 KB headers (500 KB) and one with a 5 MB
value, each followed by a valid report for another victim, are published with
confluent-kafka (Tansu takes records of 10 MB; the Kafka clients' own 1 MiB request
limit is what a dead letter copying such a record would hit). The worker must
dead-letter each poison record with a bounded dead letter, decide the reports after
them, commit to the end of its input, never crash its processing loop, and give the
same outputs as the offline replay.
"""

from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path
from typing import Protocol

import orjson
import pytest

from tests.integration.kafka_helpers import (
    assert_same_outputs,
    kafka_outputs,
    offline_outputs,
    read_topics,
    running_worker,
    settings_for,
    wait_caught_up,
)
from triage.events.wire import to_millis
from triage.pipeline.ingest import DEAD_LETTER_MAX_JSON
from triage.replay.records import LogRecord
from triage.settings import TriageSettings
from triage.streaming.shell import partition_of
from triage.testing import after, make_report

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from confluent_kafka import Producer

pytestmark = pytest.mark.integration

REPORTS = "dv.reports.v1"
BIG_KEY = "V-" + "9" * 899_998
"""900 KB: its base64 copy alone (1.2 MB) is over a Kafka client's 1 MiB request limit."""
HEADERS = {f"x-blob-{i}": "h" * 50_000 for i in range(10)}
"""Ten headers of 50 KB each: 500 KB of headers."""
BIG_VALUE = b"x" * 5_000_000
"""5 MB: Tansu accepts it (it took 10 MB when probed)."""
VICTIMS = ("V-POISON01", "V-POISON02", "V-POISON03")


class Broker(Protocol):
    """What the ``broker`` fixture yields: an EmbeddedBroker or an external address."""

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the broker."""
        ...


def poison_log() -> list[LogRecord]:
    """Three poison records, each followed by a valid report for a new victim."""
    poison = [
        # A valid report under a 900 KB key: refused as key_mismatch.
        LogRecord(REPORTS, BIG_KEY, after(minutes=0), make_report().model_dump_json().encode()),
        # Truncated JSON with 500 KB of headers: refused as invalid_json.
        LogRecord(REPORTS, VICTIMS[0], after(minutes=1), b'{"type": "report.rec', HEADERS),
        # 5 MB: refused as oversize before it is parsed.
        LogRecord(REPORTS, VICTIMS[1], after(minutes=2), BIG_VALUE),
    ]
    log = []
    for i, (bad, victim) in enumerate(zip(poison, VICTIMS, strict=True)):
        report = make_report(victim_ref=victim, time=after(minutes=i, seconds=30))
        log += [bad, LogRecord(REPORTS, victim, report.time, report.model_dump_json().encode())]
    return log


def produce(settings: TriageSettings, log: list[LogRecord]) -> None:
    """Publish ``log`` as is; each poison record on the partition of the report after it."""
    assert settings.kafka_bootstrap is not None
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "message.max.bytes": 8 << 20}
    )
    errors: list[object] = []
    for i, record in enumerate(log):
        follower = log[i + 1] if i % 2 == 0 else record
        assert follower.key is not None
        producer.produce(
            settings.topics.with_prefix(record.topic),
            key=record.key.encode() if record.key is not None else None,
            value=record.value,
            headers=[(k, v.encode()) for k, v in record.headers.items()],
            partition=partition_of(follower.key.encode(), settings.partitions),
            timestamp=to_millis(record.timestamp),
            on_delivery=lambda err, _msg: errors.append(err) if err is not None else None,
        )
        producer.flush(30)  # one at a time: the order within a partition is the test's
    assert errors == []


class TestPoisonRecords:
    def test_every_poison_record_ends_as_a_bounded_dead_letter(
        self, broker: Broker, tmp_path: Path
    ) -> None:
        """Each poison record becomes one dead letter under the bound, with its parts'
        sizes and digests; the reports after them are decided, the worker commits to the
        end of its input without a crash, and Kafka and offline give the same outputs."""
        settings = settings_for(broker.bootstrap, f"t{uuid.uuid4().hex[:8]}.")
        log = poison_log()
        log_path = tmp_path / "worker.log"
        with running_worker(settings, log_path) as worker:
            began = time.monotonic()
            produce(settings, log)
            wait_caught_up(settings, worker)
            caught_up = time.monotonic() - began
            assert worker.alive()

        raw_letters = [
            v for _t, _k, v in read_topics(broker.bootstrap, [settings.topics.deadletter])
        ]
        letters = {orjson.loads(v)["reason"]: orjson.loads(v) for v in raw_letters}
        sizes = {orjson.loads(v)["reason"]: len(v) for v in raw_letters}
        print(f"caught up in {caught_up:.1f} s; dead-letter JSON sizes: {sizes}")
        assert len(raw_letters) == 3
        assert set(letters) == {"key_mismatch", "invalid_json", "oversize"}
        assert all(size < DEAD_LETTER_MAX_JSON for size in sizes.values())
        assert letters["key_mismatch"]["key_size"] == len(BIG_KEY)
        assert letters["invalid_json"]["header_count"] == len(HEADERS)
        assert {h["size"] for h in letters["invalid_json"]["headers"]} == {50_000}
        assert letters["oversize"]["value_size"] == len(BIG_VALUE)
        assert all(letter["source_offset"] is not None for letter in letters.values())

        decided = {
            orjson.loads(v)["victim_ref"]
            for _t, _k, v in read_topics(broker.bootstrap, [settings.topics.decisions])
        }
        assert decided == set(VICTIMS)
        text = log_path.read_text(errors="replace")
        assert "agent_crashed" not in text
        assert "dead_letter_reduced" not in text
        assert_same_outputs(kafka_outputs(settings), offline_outputs(settings, log))
