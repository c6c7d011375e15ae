"""Failover: two workers share one consumer group; one is killed (SIGKILL) mid-run and
the other takes over its partitions and, through the table's changelog, their
victims' state. Nothing is missing and nothing differs from the offline replay.

Which worker processed which partition is read from their DEBUG logs (each
decision line names its partition). The group notices the dead member after the
session timeout (10 s) and rebalances in about half the rebalance timeout (3 s on
this broker, see ``triage.streaming.app.Tuning``).

The test waits for the outputs, not for the committed offsets: after a rebalance,
Faust 0.15.3 can hold each offset twice in its acked list and then commit one offset
per commit interval per partition, so the group's lag may take minutes to drain even
though every record was processed (measured; reported in issue 7).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_helpers import (
    Worker,
    assert_same_outputs,
    joined,
    output_set,
    publish,
    read_topics,
    settings_for,
    start_worker,
    wait_for,
)
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord
from triage.settings import TriageSettings

pytestmark = pytest.mark.integration


def partitions_processed(worker: Worker, since: int = 0) -> set[int]:
    """Input partitions a worker logged a decision or dead letter for (log lines from
    ``since`` on)."""
    lines = worker.log_path.read_text(errors="replace").splitlines()[since:]
    found = set()
    for line in lines:
        if '"event": "decision"' in line or '"event": "dead_letter"' in line:
            found.add(int(json.loads(line)["partition"]))
    return found


def log_length(worker: Worker) -> int:
    """How many lines a worker has logged so far."""
    return len(worker.log_path.read_text(errors="replace").splitlines())


class TestFailover:
    # The short soak's kill kind (make test) kills one of several workers mid-run and
    # checks the same: nothing missing, nothing different. This finer test (which
    # partitions moved, read from the logs) runs in make soak, to keep make test under
    # 15 minutes on two cores.
    @pytest.mark.long
    def test_the_survivor_takes_over_partitions_and_state(
        self, broker: Any, tmp_path: Path
    ) -> None:
        """Two workers split the partitions; one is SIGKILLed mid-replay; the other takes
        its partitions and their state: every report is decided, any repeat is an exact
        copy, and the outputs are exactly those of the offline replay."""
        config = GeneratorConfig(victims=150, days=20, start=date(2026, 2, 2), seed=13)
        records = list(generate_log(config, Engine()))
        offline = [(r.topic, None, r.value) for r in replay_offline(records, Engine())]
        base = settings_for(broker.bootstrap, f"fo{uuid.uuid4().hex[:8]}.", log_level="DEBUG")

        def settings(name: str) -> TriageSettings:
            return base.model_copy(update={"data_dir": tmp_path / name})

        doomed = start_worker(settings("a"), tmp_path / "worker-a.log")
        survivor = start_worker(settings("b"), tmp_path / "worker-b.log")
        try:
            wait_for(lambda: joined(doomed) and joined(survivor), "both join", 30, doomed, survivor)
            half = len(records) // 2
            publish(base, records[:half], watermark=False)
            wait_for(
                lambda: bool(partitions_processed(doomed) and partitions_processed(survivor)),
                "both process records",
                30,
                doomed,
                survivor,
            )
            publish(base, records[half:])
            doomed.kill()
            theirs, ours = partitions_processed(doomed), partitions_processed(survivor)
            mark = log_length(survivor)
            # Done when the outputs are complete, not when the offsets are committed:
            # after the rebalance Faust may commit one offset per commit for minutes
            # (see the module docstring), which says nothing about what was processed.
            wait_for(lambda: not differences(base, broker.bootstrap, offline), "the outputs",
                     45, survivor)  # fmt: skip
            taken = partitions_processed(survivor, since=mark)
        finally:
            doomed.stop()
            survivor.stop()

        assert theirs
        assert ours
        assert not theirs & ours, "one partition, one owner"
        assert theirs <= taken, f"the survivor took {taken}, the dead worker had {theirs}"
        assert_nothing_missing(base, broker.bootstrap, records, offline)

    # In make soak. Its failures, diagnosed from the records it keeps (only-kafka.jsonl,
    # only-offline.jsonl): (1) a report lost after a re-assignment, Faust having dropped
    # fetched records and committed past them: mended (triage.streaming.gaps reads them
    # back); (2) under heavy load, extra escalations only: a deadline judged before an
    # acknowledgement on the other topic arrived, the consumer's high watermark of that
    # topic being older than the record released. Nothing missing, no decision
    # different; not mended. Through the forwarding stage (the default since 4 December),
    # published at full speed: 1 and 104 extra escalations in two runs, nothing missing
    # (one review escalation at another time): each stateful stage merges lanes the
    # other worker forwards without knowing how far it got. At 3600x two workers give
    # the offline replay's outputs (test_upstream_partitioning.py).
    @pytest.mark.long
    def test_a_frozen_worker_writes_nothing_that_counts_when_it_wakes(
        self, broker: Any, tmp_path: Path
    ) -> None:
        """One of two workers is frozen (SIGSTOP) past the session timeout while records
        keep coming, then woken (SIGCONT): the survivor took its partitions, and what
        the woken worker had in hand is dropped (fenced), so nothing is missing and
        nothing differs from the offline replay. The log is published in order (each record
        on the broker before the next), so that the comparison is about the freeze, not
        about which of two topics' records reached the broker first."""
        config = GeneratorConfig(victims=150, days=20, start=date(2026, 3, 2), seed=17)
        records = list(generate_log(config, Engine()))
        offline = [(r.topic, None, r.value) for r in replay_offline(records, Engine())]
        base = settings_for(broker.bootstrap, f"fz{uuid.uuid4().hex[:8]}.", log_level="DEBUG")

        def settings(name: str) -> TriageSettings:
            return base.model_copy(update={"data_dir": tmp_path / name})

        zombie = start_worker(settings("a"), tmp_path / "worker-a.log")
        survivor = start_worker(settings("b"), tmp_path / "worker-b.log")
        try:
            wait_for(lambda: joined(zombie) and joined(survivor), "both join", 30, zombie, survivor)
            third = len(records) // 3
            publish(base, records[:third], watermark=False, ordered=True)
            wait_for(
                lambda: bool(partitions_processed(zombie) and partitions_processed(survivor)),
                "both process records",
                30,
                zombie,
                survivor,
            )
            zombie.freeze()
            mark = log_length(survivor)
            publish(base, records[third : 2 * third], watermark=False, ordered=True)
            # The session timeout (10 s) passes, the survivor takes every partition.
            wait_for(lambda: len(partitions_processed(survivor, since=mark)) >= 3,
                     "the survivor takes over", 40, survivor)  # fmt: skip
            zombie.thaw()
            publish(base, records[2 * third :], ordered=True)
            try:
                wait_for(lambda: not differences(base, broker.bootstrap, offline), "the outputs",
                         60, zombie, survivor)  # fmt: skip
            except AssertionError:
                kafka = output_set(base, read_topics(broker.bootstrap, base.topics.outputs))
                keep_differences(tmp_path, kafka, output_set(base, offline))
                assert_same_outputs(kafka, output_set(base, offline))
                raise
            time.sleep(3)  # anything the woken worker still writes would land now
            woken = zombie.log_path.read_text(errors="replace")
        finally:
            zombie.stop()
            survivor.stop()

        assert_nothing_missing(base, broker.bootstrap, records, offline)
        assert "fenced_work_dropped" in woken or "Heartbeat" in woken


Outputs = list[tuple[str, None, bytes]]


Normalised = Counter[tuple[str, str, bytes]]


def keep_differences(directory: Path, kafka: Normalised, offline: Normalised) -> None:
    """Write the differing records of both sides next to the workers' logs, for diagnosis."""
    for name, ours, theirs in (("only-kafka", kafka, offline), ("only-offline", offline, kafka)):
        lines = [value.decode() for _t, _i, value in sorted(set(ours) - set(theirs))]
        (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def differences(settings: TriageSettings, bootstrap: str, offline: Outputs) -> int:
    """How many output records differ between the worker's topics and the offline replay."""
    kafka = output_set(settings, read_topics(bootstrap, settings.topics.outputs))
    return len(set(kafka) ^ set(output_set(settings, offline)))


def assert_nothing_missing(
    settings: TriageSettings, bootstrap: str, records: list[LogRecord], offline: Outputs
) -> None:
    """Every report decided, repeats only exact copies, outputs equal to offline."""
    outputs = read_topics(bootstrap, settings.topics.outputs)
    contents: dict[str, set[bytes]] = {}
    for _topic, _key, value in outputs:
        body = orjson.loads(value)
        if body["type"] == "triage.dead_letter":
            body["source_partition"] = body["source_offset"] = None
        contents.setdefault(body["id"], set()).add(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    differing = [i for i, copies in contents.items() if len(copies) > 1]
    assert not differing, f"{len(differing)} ids produced with different contents"
    decided = {
        orjson.loads(value)["source_event_id"]
        for _t, _k, value in outputs
        if b'"triage.decision"' in value
    }
    reports = {
        orjson.loads(r.value)["id"]
        for r in records
        if r.topic == "dv.reports.v1" and b'"report.received"' in r.value
    }
    assert reports
    missing = reports - decided
    assert not missing, f"{len(missing)} reports without a decision"
    assert differences(settings, bootstrap, offline) == 0
