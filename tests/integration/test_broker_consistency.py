"""A broker that forgot, or that holds other topics than the settings say, stops the worker.

Each test reads the worker's exit status and its log: exactly one
``broker_inconsistent`` line, naming topics, counts, partitions and offsets.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.integration.conftest import ExternalBroker
from tests.integration.kafka_helpers import (
    Worker,
    publish,
    settings_for,
    start_worker,
    wait_caught_up,
)
from triage.broker import EmbeddedBroker
from triage.broker.admin import group_snapshot
from triage.broker.provision import provision
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.streaming.app import Tuning
from triage.streaming.consistency import STOP_GRACE
from triage.streaming.launch import spawn_worker
from triage.streaming.watchdog import EXIT_BROKER_INCONSISTENT

pytestmark = pytest.mark.integration

WATCH_INTERVAL = Tuning().watch_interval
"""How often a running worker reads the broker (5 s)."""


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


def _inconsistent_lines(log_path: Path) -> list[dict[str, Any]]:
    """The worker's ``broker_inconsistent`` log lines, parsed."""
    lines = []
    for line in log_path.read_bytes().splitlines():
        if b"broker_inconsistent" in line:
            lines.append(orjson.loads(line))
    return lines


def _wait_exit(worker: Worker, timeout: float) -> int:
    """The worker's exit status; fails if it is still running after ``timeout`` s."""
    try:
        return worker.proc.wait(timeout)
    except subprocess.TimeoutExpired as exc:
        worker.stop()
        raise AssertionError(f"the worker is still running:\n{worker.log_tail()}") from exc


class TestPreflight:
    """Before Faust starts, the broker's topics are compared with the settings."""

    def test_eight_partitions_against_four_partition_topics(
        self, broker: EmbeddedBroker | ExternalBroker, tmp_path: Path
    ) -> None:
        """Topics made with 4 partitions, a worker started with ``TRIAGE_PARTITIONS=8``:
        it exits with status 78 and one line naming the input topics (read directly, without
        repartitioning, so co-partitioned with the state), the internal topics and both
        counts, and creates no 8-partition state changelog."""
        settings = settings_for(broker.bootstrap, _prefix(), partitions=4, repartition=False)
        provision(settings)
        eight = settings.model_copy(update={"partitions": 8, "log_format": "json"})
        log_path = tmp_path / "worker.log"
        worker = Worker(spawn_worker(eight, log_path), log_path)

        assert _wait_exit(worker, 60) == EXIT_BROKER_INCONSISTENT
        [line] = _inconsistent_lines(log_path)
        assert line["level"] == "error"
        assert line["kind"] == "partition_count"
        for topic in (*settings.topics.inputs, *settings.topics.internal):
            assert f"topic {topic} has 4 partitions, TRIAGE_PARTITIONS is 8" in line["reason"]
        changelog = f"{settings.group_id}-victim-state-changelog"
        snapshot = group_snapshot(broker.bootstrap, settings.group_id, [changelog], [])
        assert changelog not in snapshot.partitions

    def test_with_repartitioning_inputs_may_have_any_count(
        self, broker: EmbeddedBroker | ExternalBroker, tmp_path: Path
    ) -> None:
        """With ``TRIAGE_REPARTITION=true`` only the internal topics must match: the line
        names them and not the input topics."""
        settings = settings_for(broker.bootstrap, _prefix(), partitions=4)
        provision(settings)
        eight = settings.model_copy(
            update={"partitions": 8, "log_format": "json", "repartition": True}
        )
        log_path = tmp_path / "worker.log"
        worker = Worker(spawn_worker(eight, log_path), log_path)

        assert _wait_exit(worker, 60) == EXIT_BROKER_INCONSISTENT
        [line] = _inconsistent_lines(log_path)
        for topic in settings.topics.internal:
            assert f"topic {topic} has 4 partitions, TRIAGE_PARTITIONS is 8" in line["reason"]
        for topic in settings.topics.inputs:
            assert f"topic {topic} has" not in line["reason"]

    def test_topics_not_provisioned(
        self, broker: EmbeddedBroker | ExternalBroker, tmp_path: Path
    ) -> None:
        """A worker whose topics were never created exits with status 78 and one line
        naming them, instead of waiting for topics that nobody makes."""
        settings = settings_for(broker.bootstrap, _prefix(), log_format="json")
        log_path = tmp_path / "worker.log"
        worker = Worker(spawn_worker(settings, log_path), log_path)

        assert _wait_exit(worker, 60) == EXIT_BROKER_INCONSISTENT
        [line] = _inconsistent_lines(log_path)
        assert line["kind"] == "topic_missing"
        assert f"topic {settings.topics.reports} does not exist" in line["reason"]

    def test_committed_offsets_past_the_end(
        self, broker: EmbeddedBroker | ExternalBroker, tmp_path: Path
    ) -> None:
        """Empty topics under a group that committed offset 57 (a broker that lost its logs
        but not its groups): status 78 and one line naming the partition and both offsets."""
        settings = settings_for(broker.bootstrap, _prefix(), log_format="json")
        provision(settings)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="triage-tests")
        try:
            admin.alter_group_offsets(
                settings.group_id,
                {TopicPartition(settings.topics.reports, 2): OffsetAndMetadata(57, "", -1)},
            )
        finally:
            admin.close()
        log_path = tmp_path / "worker.log"
        worker = Worker(spawn_worker(settings, log_path), log_path)

        assert _wait_exit(worker, 60) == EXIT_BROKER_INCONSISTENT
        [line] = _inconsistent_lines(log_path)
        assert line["kind"] == "log_shrank"
        assert (
            f"{settings.topics.reports}[2] ends at offset 0, below the group's committed"
            " offset 57" in line["reason"]
        )


class TestBrokerForgot:
    """A running worker whose broker restarts empty exits instead of sitting idle."""

    @pytest.mark.parametrize(
        "provisioned_again",
        # Topics gone (not provisioned again) is the simpler case, and the reprovisioned
        # run may end on either message: it runs in make soak, to keep make test under
        # 15 minutes on two cores.
        [pytest.param(False, marks=pytest.mark.long), True],
        ids=["empty", "reprovisioned"],
    )
    def test_broker_restarted_empty(self, tmp_path: Path, provisioned_again: bool) -> None:
        """Its own broker stopped and restarted empty on the same port (and, in one case,
        its topics made again at once, empty): the worker that had processed a log exits
        with status 78 and one line naming what is gone or shorter, within one check."""
        records = list(
            generate_log(
                GeneratorConfig(victims=20, days=3, start=date(2026, 2, 2), seed=3, bad_rate=0.0),
                Engine(),
            )
        )
        first = EmbeddedBroker(log_path=tmp_path / "broker-1.log", startup_timeout=10.0)
        bootstrap = first.start().bootstrap
        second = EmbeddedBroker(
            port=int(bootstrap.rpartition(":")[2]),
            log_path=tmp_path / "broker-2.log",
            startup_timeout=10.0,
        )
        settings = settings_for(bootstrap, _prefix())
        worker = start_worker(settings, tmp_path / "worker.log")
        try:
            publish(settings, records)
            wait_caught_up(settings, worker)
            time.sleep(WATCH_INTERVAL + 1.0)  # at least one check of the healthy broker
            first.stop()
            second.start()
            forgot, forgot_wall = time.monotonic(), time.time()
            if provisioned_again:
                provision(settings)
            status = _wait_exit(worker, 90)
            exited = time.monotonic() - forgot
        finally:
            worker.stop()
            first.stop()
            second.stop()

        assert status == EXIT_BROKER_INCONSISTENT, worker.log_tail()
        [line] = _inconsistent_lines(worker.log_path)
        assert line["mode"] == "running"
        gone = f"topic {settings.topics.reports} does not exist"
        if provisioned_again:
            # Whether the worker reads the broker before or after the topics are back
            # is a race: either reading stops it (log_shrank: the ends it saw before).
            # The line names at most twelve partitions: any consumed topic's will do.
            shorter = [f"{t}[0] ends at offset 0, below its end" for t in settings.topics.consumed]
            assert any(s in line["reason"] for s in shorter) or gone in line["reason"], line[
                "reason"
            ]
        else:
            assert gone in line["reason"]
        # Measured: detection within one watch interval of the broker answering again,
        # then a graceful stop that may hang on it until STOP_GRACE (10 s) ends it.
        detected = datetime.fromisoformat(line["timestamp"]).timestamp() - forgot_wall
        print(
            f"\nbroker restarted {'and provisioned ' if provisioned_again else ''}empty:"
            f" {line['kind']} detected after {detected:.1f} s, exit after {exited:.1f} s"
        )
        assert detected < WATCH_INTERVAL + 2.0
        assert exited < WATCH_INTERVAL + STOP_GRACE + 5.0

    def test_topics_deleted_and_made_again(
        self, broker: EmbeddedBroker | ExternalBroker, tmp_path: Path
    ) -> None:
        """Input topics deleted and provisioned again, empty, under a running worker that
        had read them: it exits with status 78 and one line naming the shorter partitions."""
        records = list(
            generate_log(
                GeneratorConfig(victims=20, days=3, start=date(2026, 2, 2), seed=4, bad_rate=0.0),
                Engine(),
            )
        )
        settings = settings_for(broker.bootstrap, _prefix())
        worker = start_worker(settings, tmp_path / "worker.log")
        try:
            publish(settings, records)
            wait_caught_up(settings, worker)
            admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="triage-tests")
            try:
                admin.delete_topics(list(settings.topics.inputs))
            finally:
                admin.close()
            provision(settings)
            status = _wait_exit(worker, 60)
        finally:
            worker.stop()

        assert status == EXIT_BROKER_INCONSISTENT, worker.log_tail()
        [line] = _inconsistent_lines(worker.log_path)
        # Tens of milliseconds without the topics against a reading every 5 s: the
        # worker almost always sees them back, shorter than what it read.
        assert line["kind"] in ("log_shrank", "topic_missing")
        if line["kind"] == "log_shrank":
            assert "ends at offset 0, below" in line["reason"]
