"""Metrics are a function of the log: through Kafka or offline, the same counts.

One generated log (with malformed records) goes through a worker on the embedded
broker; its /metrics is scraped once it has caught up. The same log is replayed
offline, the processor's observations folded into a fresh :class:`TriageMetrics`.
Every counter sample and every histogram ``_count``/``_bucket`` sample must be
equal, label set by label set.

Left out, on purpose: wall-clock histograms (``triage_processing_seconds``,
``triage_report_to_decision_seconds``), gauges (open cases and lag are states,
not counts), ``_created`` timestamps, and the count of clock watermarks (the
Kafka run receives one per partition at the end of the log; the offline run
needs none).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.live import scrape, wait_for_metrics, with_metrics_port
from tests.integration.kafka_helpers import (
    publish,
    running_worker,
    settings_for,
    wait_caught_up,
)
from triage.generate import GeneratorConfig, generate_log
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.topics import Topics

pytestmark = pytest.mark.integration

WALL_CLOCK = ("triage_processing_seconds", "triage_report_to_decision_seconds")
WATERMARK = ("type", "clock.watermark")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Runs:
    """The compared samples of both runs."""

    kafka: Samples
    offline: Samples


def compared(text: str) -> Samples:
    """The samples that must match: counters, histogram counts and buckets."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith(WALL_CLOCK) or family.type not in ("counter", "histogram"):
            continue
        for sample in family.samples:
            wanted = (
                sample.name.endswith("_total")
                if family.type == "counter"
                else sample.name.endswith(("_count", "_bucket"))
            )
            if not wanted or WATERMARK in sample.labels.items():
                continue
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def offline_metrics(records: list[LogRecord]) -> str:
    """The exposition of a fresh TriageMetrics fed by an offline replay of ``records``."""
    topics = Topics()
    engine = Engine()
    processor = Processor(engine, topics)
    # As the worker builds it: every series the rule set and units allow, from zero.
    metrics = TriageMetrics(rules=engine.rules, units=engine.units)
    for record in records:
        metrics.observe(processor.feed(to_raw(record, topics)).observations)
    return generate_latest(metrics.registry).decode()


@pytest.fixture(scope="module")
def runs(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """One log, replayed through a worker and offline."""
    tmp: Path = tmp_path_factory.mktemp("equivalence")
    config = GeneratorConfig(victims=80, days=14, start=date(2026, 3, 2), seed=23, bad_rate=0.04)
    records = list(generate_log(config, Engine()))
    settings = with_metrics_port(settings_for(broker.bootstrap, f"m{uuid.uuid4().hex[:8]}."))
    with running_worker(settings, tmp / "worker.log") as worker:
        wait_for_metrics(settings, worker.alive)
        publish(settings, records)
        wait_caught_up(settings, worker)
        text = scrape(settings)
    return Runs(kafka=compared(text), offline=compared(offline_metrics(records)))


def label_text(key: tuple[str, frozenset[tuple[str, str]]]) -> str:
    """``name{a="b",…}`` for messages."""
    name, labels = key
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels)) + "}"


class TestMetricsEquivalence:
    def test_the_run_exercises_what_is_compared(self, runs: Runs) -> None:
        """The log produces acks, breaches, dead letters, decisions and queue records."""
        names = {name for name, _labels in runs.offline}
        for name in (
            "triage_events_total",
            "triage_dead_letters_total",
            "triage_decisions_total",
            "triage_queue_records_total",
            "triage_sla_breaches_total",
            "triage_time_to_ack_seconds_count",
            "triage_time_to_ack_seconds_bucket",
            "triage_time_to_action_seconds_count",
        ):
            assert name in names, name
        nonzero = {name for (name, _l), value in runs.offline.items() if value > 0}
        assert {"triage_sla_breaches_total", "triage_dead_letters_total"} <= nonzero

    def test_same_series(self, runs: Runs) -> None:
        """Both runs expose the same counter and histogram series."""
        only_kafka = sorted(label_text(k) for k in runs.kafka.keys() - runs.offline.keys())
        only_offline = sorted(label_text(k) for k in runs.offline.keys() - runs.kafka.keys())
        assert not only_kafka, f"only through Kafka: {only_kafka}"
        assert not only_offline, f"only offline: {only_offline}"

    def test_same_values(self, runs: Runs) -> None:
        """Every counter value and histogram count/bucket is equal."""
        differ = {
            label_text(key): (runs.kafka[key], value)
            for key, value in runs.offline.items()
            if key in runs.kafka and runs.kafka[key] != value
        }
        assert not differ, f"(kafka, offline) differ: {differ}"
