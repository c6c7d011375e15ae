"""Bad input through the real worker on the embedded broker: 2,000 corpus cases
interleaved with a valid generated log, published as raw bytes (keys that are not
UTF-8, no key, 100 KB records…).

The worker never crashes; every bad record reaches the dead-letter topic with its
original bytes and the reason code it must have; every valid report (v1 and v2) is
decided; contradictory updates get their outcome (dead letter, OverrideRejected, or
an ``ignored`` count on /metrics); the output topics hold what the offline replay of
the same records holds; and no sentinel personal value is in the worker's log or its
/metrics. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.live import scrape, wait_for_metrics, with_metrics_port
from tests.integration.kafka_helpers import (
    Worker,
    assert_same_outputs,
    output_set,
    read_topics,
    running_worker,
    settings_for,
    start_worker,
    wait_caught_up,
)
from triage.events.wire import to_millis
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import DEAD_LETTER_BYTES
from triage.pipeline.observations import Ignored
from triage.pipeline.processor import Processor
from triage.reliability.cases import SENTINEL_MARK, Case, Probe
from triage.reliability.corpus import CASE_KINDS, CorpusBuilder, interleave
from triage.reliability.oracle import Judgement, judge_batch, judge_expired, judge_outputs
from triage.replay.player import make_producer, watermark_records
from triage.settings import TriageSettings
from triage.testing import make_report, record_of
from triage.topics import Topics

pytestmark = pytest.mark.integration

CASES = 2_000
SEED = 7


@dataclass(frozen=True)
class FuzzRun:
    """A worker's run over the corpus, and the offline run of the same records."""

    settings: TriageSettings
    cases: list[Case]
    reports: set[str]
    kafka: Judgement
    offline: Judgement
    kafka_outputs: list[tuple[str, bytes | None, bytes]]
    offline_outputs: list[tuple[str, None, bytes]]
    offline_counts: Counter[str]
    metrics: str
    log_text: str
    worker: Worker


def publish_probes(settings: TriageSettings, probes: list[Probe], end: datetime) -> None:
    """Publish records as raw bytes (any key), then a watermark at ``end`` on every
    partition (the end of the log, as the replay tools do)."""
    assert settings.kafka_bootstrap is not None
    producer = make_producer(settings.kafka_bootstrap)
    topics = settings.topics
    try:
        for probe in probes:
            producer.send(
                topics.with_prefix(probe.topic),
                key=probe.key,
                value=probe.value,
                timestamp_ms=to_millis(probe.timestamp),
            )
        for partition, mark in watermark_records(topics, settings.partitions, end):
            producer.send(
                mark.topic, value=mark.value, partition=partition, timestamp_ms=to_millis(end)
            )
        producer.flush()
    finally:
        producer.close()


def counters(text: str) -> Counter[str]:
    """``name{label=value}`` → value of every counter sample on /metrics."""
    found: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = int(sample.value)
    return found


@pytest.fixture(name="fuzz", scope="module")
def _fuzz(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> FuzzRun:
    engine = Engine()
    config = GeneratorConfig(victims=120, days=7, start=date(2026, 2, 2), seed=SEED)
    log = list(generate_log(config, engine))
    start, span = log[0].timestamp, log[-1].timestamp - log[0].timestamp
    builder = CorpusBuilder(
        SEED,
        start=start,
        spacing=span / CASES,
        rules_version=engine.rules.version,
        kinds=list(CASE_KINDS),
    )
    cases = list(builder.cases(CASES))
    stream = list(interleave(cases, log))
    probes = [probe for probe, _case in stream]

    topics, offline = Topics(), Judgement()
    processor = Processor(engine, topics)
    offline_outputs: list[tuple[str, None, bytes]] = []
    offline_counts: Counter[str] = Counter()
    for probe, case in stream:
        batch = processor.feed(probe.raw(topics))
        offline_outputs += [
            (topics.for_output(o), None, o.model_dump_json().encode()) for o in batch.outputs
        ]
        offline_counts.update(
            f"{o.kind}:{o.reason if isinstance(o, Ignored) else ''}" for o in batch.observations
        )
        if case is not None:
            judge_batch(case, batch.outputs, batch.observations, offline)
        judge_expired(batch.outputs, offline, final=False)
    # The log ends past the update grace, so every update held for a case that never
    # came has its dead letter (offline, and through the worker from the watermark).
    grace = engine.rules.update_grace
    wait = grace.delta if grace is not None and grace.delta is not None else timedelta(0)
    end = log[-1].timestamp + 2 * wait
    last = processor.advance(end)
    offline_outputs += [
        (topics.for_output(o), None, o.model_dump_json().encode()) for o in last.outputs
    ]
    judge_expired(last.outputs, offline)

    prefix = f"fz{uuid.uuid4().hex[:8]}."
    settings = with_metrics_port(settings_for(broker.bootstrap, prefix, log_level="DEBUG"))
    log_path = tmp_path_factory.mktemp("fuzz") / "worker.log"
    with running_worker(settings, log_path) as worker:
        wait_for_metrics(settings, worker.alive)
        publish_probes(settings, probes, end)
        wait_caught_up(settings, worker)
        assert worker.alive(), worker.log_tail()
        metrics = scrape(settings)
        kafka_outputs = read_topics(broker.bootstrap, settings.topics.outputs)
    kafka = Judgement(records=len(probes))
    judge_outputs(cases, [v for _t, _k, v in kafka_outputs], kafka)
    reports = {
        orjson.loads(r.value)["id"]
        for r in log
        if r.topic == topics.reports and b'"report.received"' in r.value
    }
    return FuzzRun(
        settings, cases, reports, kafka, offline, kafka_outputs, offline_outputs,
        offline_counts, metrics, log_path.read_text(errors="replace"), worker,
    )  # fmt: skip


class TestBadInputThroughTheWorker:
    def test_the_worker_survives_and_every_case_gets_its_outcome(self, fuzz: FuzzRun) -> None:
        """2,000 cases: the worker never crashed, each case's record got its outcome
        (dead letter with original bytes and reason, decision, rejected override)."""
        print(json.dumps({"kafka": fuzz.kafka.to_dict()}, indent=2))
        assert fuzz.worker.proc.returncode in (0, -15), fuzz.worker.log_tail()
        assert "Crashed" not in fuzz.log_text
        assert fuzz.kafka.cases == CASES
        assert set(fuzz.kafka.by_kind) == set(CASE_KINDS)
        assert fuzz.offline.ok, fuzz.offline.problems
        assert fuzz.kafka.ok, fuzz.kafka.problems

    def test_outputs_are_those_of_the_offline_replay(self, fuzz: FuzzRun) -> None:
        """Through Kafka or offline, the same records give the same output records."""
        kafka = output_set(fuzz.settings, fuzz.kafka_outputs)
        offline = output_set(fuzz.settings, fuzz.offline_outputs)
        assert_same_outputs(kafka, offline)

    def test_every_valid_report_is_decided(self, fuzz: FuzzRun) -> None:
        """Every report of the valid log around the cases is decided through Kafka."""
        decided = {
            orjson.loads(v)["source_event_id"]
            for t, _k, v in fuzz.kafka_outputs
            if t == fuzz.settings.topics.decisions and b'"triage.decision"' in v
        }
        assert fuzz.reports
        assert fuzz.reports <= decided

    def test_version_2_reports_are_decided_by_the_running_worker(self, fuzz: FuzzRun) -> None:
        """Reports with schema_version 2 (and a language) are decided; a bad language and
        the v2 field on a v1 report are dead-lettered as schema violations."""
        by_kind = Counter(c.kind for c in fuzz.cases)
        assert by_kind["report_v2"] > 0
        assert by_kind["report_v2_bad_language"] > 0
        decided = {
            orjson.loads(v)["source_event_id"]
            for _t, _k, v in fuzz.kafka_outputs
            if b'"triage.decision"' in v
        }
        v2 = {c.event_id for c in fuzz.cases if c.kind == "report_v2"}
        assert v2 <= decided

    def test_ignored_and_duplicate_updates_are_counted(self, fuzz: FuzzRun) -> None:
        """Updates that change nothing are counted on /metrics by reason (never silence),
        as are duplicates and dead letters by reason: the same counts as offline."""
        kafka = counters(fuzz.metrics)
        expected = fuzz.offline_counts
        for reason in ("no_open_assignment", "already_acknowledged", "stale_decision",
                       "already_closed"):  # fmt: skip
            got = kafka[f"triage_updates_ignored_total{{reason={reason}}}"]
            assert got == expected[f"ignored:{reason}"] > 0, reason
        assert kafka["triage_duplicates_total{}"] == sum(
            n for k, n in expected.items() if k.startswith("duplicate:")
        )
        letters = {k: n for k, n in kafka.items() if k.startswith("triage_dead_letters_total")}
        assert sum(letters.values()) == sum(fuzz.kafka.dead_letters.values())

    def test_no_personal_value_in_logs_or_metrics(self, fuzz: FuzzRun) -> None:
        """The worker logged at DEBUG; no sentinel is in any line, nor on /metrics."""
        lines = [json.loads(line) for line in fuzz.log_text.splitlines() if line.startswith("{")]
        assert lines
        assert SENTINEL_MARK not in json.dumps(lines, ensure_ascii=False)
        assert SENTINEL_MARK not in fuzz.log_text
        assert SENTINEL_MARK not in fuzz.metrics
        assert sum(1 for c in fuzz.cases if c.personal) > 100


def test_a_record_near_the_size_limit_is_dead_lettered(broker: Any, tmp_path: Path) -> None:
    """A 780 KB record between valid reports (a dead letter with all of it in base64
    would pass the producer's 1 MB limit and stop the worker) is dead-lettered with
    its first 256 KiB and the digest of the whole; the reports after it are decided."""
    settings = settings_for(broker.bootstrap, f"fz{uuid.uuid4().hex[:8]}.")
    reports = [
        make_report(victim_ref=f"V-{i:04d}BIG", time=make_report().time + timedelta(minutes=i))
        for i in range(6)
    ]
    big = orjson.loads(reports[0].model_dump_json()) | {"id": "big", "padding": "x" * 780_000}
    value = orjson.dumps(big)
    probes = [Probe(r.topic, r.key.encode() if r.key else None, r.value, r.timestamp)
              for r in map(record_of, reports)]  # fmt: skip
    probes.insert(3, Probe(probes[2].topic, probes[2].key, value, probes[2].timestamp))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        publish_probes(settings, probes, reports[-1].time)
        wait_caught_up(settings, worker, timeout=30)
    finally:
        worker.stop()
    values = [v for _t, _k, v in read_topics(broker.bootstrap, settings.topics.outputs)]
    (letter,) = [orjson.loads(v) for v in values if b'"triage.dead_letter"' in v]
    assert letter["reason"] == "oversize"
    assert base64.b64decode(letter["value_b64"]) == value[:DEAD_LETTER_BYTES]
    assert hashlib.sha256(value).hexdigest() in letter["detail"]
    assert (letter["source_offset"], letter["source_partition"]) != (None, None)
    assert len([v for v in values if b'"triage.decision"' in v]) == len(reports)


def test_sentinel_mark_is_not_base64() -> None:
    """The sentinel mark cannot occur inside base64 text, so searching for it is sound."""
    assert not re.fullmatch(r"[A-Za-z0-9+/=]*", SENTINEL_MARK)
