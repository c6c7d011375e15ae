"""Faust's own ceiling: a bare Faust agent with a Table doing a toy stateful step.

Run as a child process (``python -m triage.bench.ceiling SPEC_JSON``) on the
worker's input, so the worker's throughput can be read as a share of what Faust
itself reaches for one stateful record-in, record-out step on this machine. Per
input record: read the key's entry in a Table (changelogged), update a counter
and the last value's size, and send one output naming the input's position.
Faust is imported only in the child, by the factory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from triage.broker.admin import end_offsets
from triage.broker.embedded import child_guard

TABLE_NAME = "ceiling-state"
NO_KEY = b"~none"
"""Table key of keyless inputs (the replay's clock watermarks)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CeilingSpec:
    """Where the ceiling app reads, keeps its table and writes."""

    bootstrap: str
    app_id: str
    inputs: tuple[str, ...]
    sink: str
    partitions: int
    datadir: str

    def to_json(self) -> str:
        """The spec as the child's single argument."""
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> CeilingSpec:
        """The spec back from :meth:`to_json`."""
        data = orjson.loads(text)
        data["inputs"] = tuple(data["inputs"])
        return cls(**data)


def create_ceiling_app(spec: CeilingSpec) -> Any:
    """Build the bare Faust app (one agent, one Table), tuned as the worker. Connects nothing."""
    import faust

    from triage.streaming.app import Tuning, _limit_fetch_wait

    tuning = Tuning()
    _limit_fetch_wait(tuning.fetch_max_wait)
    app = faust.App(
        spec.app_id,
        broker=[f"kafka://{host.strip()}" for host in spec.bootstrap.split(",")],
        store="memory://",
        datadir=spec.datadir,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=spec.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=tuning.session_timeout,
        broker_heartbeat_interval=tuning.heartbeat_interval,
        broker_rebalance_timeout=tuning.rebalance_timeout,
        broker_max_poll_interval=tuning.max_poll_interval,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        producer_acks=-1,
        producer_linger=tuning.producer_linger,
        web_enabled=False,
    )
    source = app.topic(*spec.inputs, key_type=bytes, value_type=bytes, internal=False)
    sink = app.topic(spec.sink, key_type=bytes, value_type=bytes, internal=False)
    table = app.Table(
        TABLE_NAME, partitions=spec.partitions, default=None, key_type=bytes, value_type=bytes
    )

    async def step(stream: Any) -> None:
        async for event in stream.events():
            key = event.key or NO_KEY
            previous = table.get(key)
            count = 1 + (orjson.loads(previous)["count"] if previous is not None else 0)
            table[key] = orjson.dumps({"count": count, "last_size": len(event.value or b"")})
            message = event.message
            await sink.send(
                key=event.key,
                value=orjson.dumps(
                    {"src": [message.topic, message.partition, message.offset], "count": count}
                ),
            )

    app.agent(source, name="ceiling")(step)
    return app


def run_ceiling(spec: CeilingSpec) -> None:
    """Run the ceiling app until SIGTERM (the child's main)."""
    import faust

    Path(spec.datadir).mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(
        create_ceiling_app(spec), loglevel="WARNING", quiet=True, redirect_stdouts=False
    )
    worker.spinner = None  # as the triage worker: no root logger at DEBUG
    worker.execute_from_commandline()


def spawn_ceiling(spec: CeilingSpec, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the ceiling app in a child process that dies with this one."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "triage.bench.ceiling", spec.to_json()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_guard(),
        )


def check_outputs(
    bootstrap: str, inputs: Sequence[str], sink: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Read the whole sink: did every input get its output, with the table's counts?

    ``table_counts_match``: each key's outputs carry the counts 1..n, n being its
    number of outputs (the Table was read and written once per input).
    """
    expected = end_offsets(bootstrap, inputs)
    ends = end_offsets(bootstrap, [sink])
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    seen: set[tuple[str, int, int]] = set()
    counts: dict[bytes | None, list[int]] = defaultdict(list)
    outputs = 0
    try:
        parts = [TopicPartition(t, p) for (t, p) in ends]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout
        while outputs < sum(ends.values()) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                for record in batch:
                    body = orjson.loads(record.value)
                    topic, partition, offset = body["src"]
                    seen.add((topic, partition, offset))
                    counts[record.key].append(body["count"])
                    outputs += 1
    finally:
        consumer.close()
    wanted = {(t, p, o) for (t, p), end in expected.items() for o in range(end)}
    return {
        "inputs": len(wanted),
        "outputs": outputs,
        "missing": len(wanted - seen),
        "table_counts_match": all(
            sorted(values) == list(range(1, len(values) + 1)) for values in counts.values()
        ),
    }


if __name__ == "__main__":  # pragma: no cover - the child process
    run_ceiling(CeilingSpec.from_json(sys.argv[1]))
