"""The publishing guide (docs/publishing.md): its examples run against the embedded
broker, and what they publish is on the topic and passes the worker's ingestion."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from triage.broker import TopicSpec, ensure_topics
from triage.broker.admin import end_offsets
from triage.events.wire import from_millis
from triage.pipeline.engine import STALE_REDELIVERY
from triage.pipeline.ingest import PROCESSING_ERROR, REASONS, Accepted, RawRecord, ingest
from triage.topics import Topics

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).parents[2] / "docs" / "publishing.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
PLACEHOLDER = "localhost:9092"
"""The broker address the examples show; the tests put the embedded broker's there."""


def blocks(lang: str) -> list[str]:
    """The guide's fenced code blocks in ``lang``, in order."""
    return [code for found, code in FENCE.findall(GUIDE.read_text()) if found == lang]


@dataclass(frozen=True)
class Published:
    """What the guide's runnable examples put on the reports topic."""

    topics: Topics
    records: list[Any]
    outputs: list[str]


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` from the beginning to its current end."""
    ends = end_offsets(bootstrap, [topic])
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for _t, p in sorted(ends)]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[(topic, tp.partition)] for tp in parts):
            assert time.monotonic() < deadline, "reading the reports topic timed out"
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


@pytest.fixture(name="published", scope="module")
def _published(broker: Any) -> Published:
    prefix = f"guide{uuid.uuid4().hex[:8]}."
    topics = Topics(prefix=prefix)
    ensure_topics(broker.bootstrap, [TopicSpec(t, 4) for t in topics.inputs])
    env = {
        **os.environ,
        "TRIAGE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "TRIAGE_TOPIC_PREFIX": prefix,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    runs = [[sys.executable, "-c", code] for code in blocks("python")]
    runs += [["bash", "-euc", code] for code in blocks("sh") if "triage publish" in code]
    outputs = []
    for argv in runs:
        argv[-1] = argv[-1].replace(PLACEHOLDER, broker.bootstrap)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    return Published(topics, read_all(broker.bootstrap, topics.reports), outputs)


def raw_of(record: Any, topic: str) -> RawRecord:
    """A consumed record as the worker ingests it."""
    return RawRecord(
        topic=topic,
        key=record.key,
        value=record.value,
        timestamp=from_millis(record.timestamp),
        partition=record.partition,
        offset=record.offset,
        headers=tuple(record.headers),
    )


def kcat_record() -> tuple[str, bytes, dict[str, str], bytes]:
    """The kcat example's topic, key, headers and value (its JSON file)."""
    (command,) = [code for code in blocks("sh") if code.startswith("kcat ")]
    words = shlex.split(command)
    flags: dict[str, list[str]] = {}
    for flag, value in itertools.pairwise(words):
        if flag in ("-t", "-k", "-H", "-X"):
            flags.setdefault(flag, []).append(value)
    (value,) = blocks("json")
    headers = dict(h.split("=", 1) for h in flags["-H"])
    assert words[-1] == "report.json"
    assert flags["-X"] == ["acks=all", "enable.idempotence=true", "partitioner=murmur2_random"]
    return flags["-t"][0], flags["-k"][0].encode(), headers, value.encode()


class TestRunnableExamples:
    def test_every_example_ran_and_each_published_one_record(self, published: Published) -> None:
        """The two Python examples and ``triage publish`` each put one record on the
        reports topic, keyed by its victim reference."""
        assert len(published.outputs) == 3
        assert sorted(r.key for r in published.records) == [
            b"V-SYN0101",
            b"V-SYN0102",
            b"V-SYN0103",
        ]
        assert published.outputs[-1].startswith("published report.received evt-guide-0003")

    def test_every_record_passes_ingestion(self, published: Published) -> None:
        """What the examples publish is accepted by the worker's own checks."""
        for record in published.records:
            result = ingest(raw_of(record, published.topics.reports), published.topics)

            assert isinstance(result, Accepted), result

    def test_cloudevents_headers_agree_with_the_body(self, published: Published) -> None:
        """The headers the Python examples send match the body's envelope."""
        with_headers = [r for r in published.records if r.headers]
        assert len(with_headers) == 2
        for record in with_headers:
            headers = {name: value.decode() for name, value in record.headers}
            body = orjson.loads(record.value)

            assert headers["ce_specversion"] == body["specversion"] == "1.0"
            assert (headers["ce_id"], headers["ce_type"], headers["ce_source"]) == (
                body["id"],
                body["type"],
                body["source"],
            )
            assert headers["content-type"] == "application/json"


class TestKcatExample:
    def test_the_kcat_record_would_be_accepted(self) -> None:
        """The kcat example (not run: no recent kcat here) sends a record that ingestion
        accepts, keyed by its victim, with headers that agree with its body."""
        topic, key, headers, value = kcat_record()
        body = orjson.loads(value)
        record = RawRecord(topic, key, value, datetime.now(UTC))  # noqa: TID251 - a send time

        assert isinstance(ingest(record, Topics()), Accepted)
        assert (headers["ce_id"], headers["ce_type"], headers["ce_source"]) == (
            body["id"],
            body["type"],
            body["source"],
        )


class TestReasonCodes:
    def test_the_guide_lists_every_reason_code_in_check_order(self) -> None:
        """The dead-letter table names each reason code the pipeline gives, in order."""
        table = GUIDE.read_text().split("| reason | what was wrong |\n")[1].split("\n\n")[0]
        listed = re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M)

        assert listed == [*REASONS, PROCESSING_ERROR, STALE_REDELIVERY]
