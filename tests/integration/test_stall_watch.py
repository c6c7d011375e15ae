"""A frozen partition is seen and acted on while the worker processes the others.

The worker is told (a tests-only environment variable) never to process one input
partition's records: they are received, held, never committed, exactly what a
partition stuck in processing looks like from outside, while the other partitions
run. The stall watch must name it (log ``partition_frozen``, gauge
``triage_frozen_partitions``) and, at ``TRIAGE_STALL_TIMEOUT``, stop the worker with
status 75 for its supervisor to restart it.
"""

from __future__ import annotations

import time
import uuid
from datetime import date
from pathlib import Path

import orjson
import pytest

from tests.deploy.live import http_get, with_metrics_port
from tests.integration.conftest import ExternalBroker
from tests.integration.kafka_helpers import kafka_outputs, publish, running_worker, settings_for
from triage.broker.embedded import EmbeddedBroker
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.streaming.run import HOLD_ENV
from triage.streaming.shell import partition_of
from triage.streaming.watchdog import EXIT_STALLED

pytestmark = pytest.mark.integration

FROZEN = 2


def test_a_frozen_partition_is_named_and_the_worker_restarts(
    broker: EmbeddedBroker | ExternalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partition 2 frozen, the others processed: within the stall timeout the log names
    the partition, /metrics shows two frozen partitions (partition 2 of both input
    topics), and the worker exits 75; the reports of the other partitions were decided
    meanwhile."""
    records = list(
        generate_log(
            GeneratorConfig(victims=40, days=2, start=date(2026, 2, 2), seed=5, bad_rate=0.0),
            Engine(),
        )
    )
    settings = with_metrics_port(
        settings_for(broker.bootstrap, f"st{uuid.uuid4().hex[:8]}.", stall_timeout=6.0)
    )
    monkeypatch.setenv(HOLD_ENV, str(FROZEN))
    log_path = tmp_path / "worker.log"
    seen_gauge = False
    with running_worker(settings, log_path) as worker:
        publish(settings, records)
        deadline = time.monotonic() + 90
        while worker.proc.poll() is None and time.monotonic() < deadline:
            if not seen_gauge:
                seen_gauge = (_frozen_gauge(settings.metrics_port) or 0.0) == 2.0
            time.sleep(0.5)
        code = worker.proc.poll()
        outputs = kafka_outputs(settings)
    text = log_path.read_text(errors="replace")
    assert code == EXIT_STALLED, text[-3000:]
    frozen_lines = [orjson.loads(line) for line in text.splitlines() if "partition_frozen" in line]
    assert frozen_lines
    assert {line["partition"] for line in frozen_lines} == {FROZEN}
    assert "worker_stalled" in text
    assert seen_gauge
    decided = {
        orjson.loads(v)["victim_ref"] for t, _i, v in outputs if t.endswith("dv.decisions.v1")
    }
    others = {r.key for r in records if r.key and partition_of(r.key.encode(), 4) != FROZEN}
    assert decided, "the other partitions were processed"
    assert all(partition_of(ref.encode(), 4) != FROZEN for ref in decided)
    assert decided <= others


def _frozen_gauge(port: int | None) -> float | None:
    try:
        body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=1).decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith("triage_frozen_partitions "):
            return float(line.split()[1])
    return None
