"""The soak's faults (``triage soak --fault``), beside the log and the oracle in
:mod:`triage.reliability.soak`.

- ``kill``: SIGKILL a worker and restart it at once.
- ``freeze``: two workers in one consumer group; SIGSTOP one for longer than the
  session timeout (its partitions move to the other), then SIGCONT: it wakes up
  believing it still owns them. What it writes then must not count.
- ``poison``: poison records in the input, each followed by valid reports: a huge
  key, huge headers, a value of several MB. They are published with a client the
  project did not write (confluent-kafka, librdkafka), so that the worker meets what
  a foreign producer really sends. The offline replay of the same log is the oracle.
- ``mixed``: kills and freezes of two workers, with the poison records in the input.

No valid-looking input that makes processing raise is known: the pure core is
property-tested never to raise (``tests/fuzz/test_properties.py``), and poison that
makes processing raise would be a bug to fix there, not a fault to inject.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from triage.replay.records import LogRecord
    from triage.settings import TriageSettings
    from triage.topics import Topics

FaultKind = Literal["kill", "freeze", "poison", "mixed"]
FAULT_KINDS: tuple[FaultKind, ...] = ("kill", "freeze", "poison", "mixed")

HUGE_KEY_BYTES = 900_000
HUGE_HEADERS = (10, 50_000)
"""Ten headers of 50,000 bytes: about 500 KB of headers on one record."""
LARGE_VALUE_BYTES = 5 * 1024 * 1024
"""5 MiB. Measured: the embedded broker (Tansu 0.6) takes records of 40 MiB and more
from confluent-kafka; 5 MiB is what the soak sends."""
WATCHDOG_EXIT = 75
"""The status a worker exits with for its supervisor to restart it (the stall watch)."""


def workers_for(kind: FaultKind) -> int:
    """How many workers a kind runs in the consumer group: two where one is frozen."""
    return 2 if kind in ("freeze", "mixed") else 1


def has_poison(kind: FaultKind) -> bool:
    """Whether the kind mixes poison records into the input."""
    return kind in ("poison", "mixed")


def plan(kind: FaultKind, count: int, rng: Random) -> list[Literal["kill", "freeze"]]:
    """The signal faults of a run, in order (none for ``poison``; ``mixed`` alternates,
    starting with a seeded one)."""
    signals: tuple[Literal["kill", "freeze"], ...] = ("kill", "freeze")
    if kind == "kill":
        return [signals[0]] * count
    if kind == "freeze":
        return [signals[1]] * count
    if kind == "poison":
        return []
    first = rng.randrange(2)
    return [signals[(first + n) % 2] for n in range(count)]


# -- poison records ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poison:
    """One poison record of the log and what it is made of."""

    name: str
    record: LogRecord

    def describe(self) -> dict[str, Any]:
        """Its name and sizes, for the soak's figures."""
        r = self.record
        return {
            "name": self.name,
            "key_bytes": len(r.key.encode()) if r.key is not None else 0,
            "header_bytes": sum(len(k) + len(v.encode()) for k, v in r.headers.items()),
            "value_bytes": len(r.value),
        }


def with_poison(log: Sequence[LogRecord], seed: int) -> tuple[list[LogRecord], list[Poison]]:
    """``log`` with the poison records spread through it, each before a stretch of valid
    records and stamped with the time of the record it precedes."""
    from dataclasses import replace

    template = next(
        (orjson.loads(r.value) for r in log if r.headers.get("ce_type") == "report.received"),
        None,
    )
    if template is None:
        raise ValueError("the log has no report to model the poison records on")
    rng = Random(f"triage.soak.poison:{seed}")

    def report(n: int, **extra: Any) -> tuple[str, bytes]:
        victim = f"V-PSN{seed % 10_000:04d}{n:02d}"
        body = {**template, "id": f"evt-poison-{seed}-{n}", "victim_ref": victim, **extra}
        return victim, orjson.dumps(body)

    _, mismatched = report(0)
    headers_victim, headers_value = report(1)
    large_victim, large_value = report(2, notes="x" * LARGE_VALUE_BYTES)
    count, size = HUGE_HEADERS
    huge_headers = {f"x-poison-{i}": "h" * size for i in range(count)}
    key = "V-" + "".join(rng.choice("0123456789ABCDEF") for _ in range(HUGE_KEY_BYTES - 2))
    made = [
        ("huge_key", key, mismatched, {}),  # key_mismatch
        ("huge_headers", headers_victim, headers_value, huge_headers),  # a valid report
        ("huge_headers_bad_value", headers_victim, headers_value[:-40], huge_headers),
        ("large_value", large_victim, large_value, {}),  # oversize
    ]
    out = list(log)
    poisons: list[Poison] = []
    # From the end, so that earlier positions stay where they were computed.
    for n in reversed(range(len(made))):
        at = (n + 1) * len(log) // (len(made) + 1)
        name, record_key, value, headers = made[n]
        when = log[at].timestamp
        body = orjson.loads(value) if name != "huge_headers_bad_value" else None
        if body is not None:  # the event's time is the record's time
            value = orjson.dumps({**body, "time": when.isoformat().replace("+00:00", "Z")})
        record = replace(log[at], topic="dv.reports.v1", key=record_key, value=value,
                         headers=headers, timestamp=when)  # fmt: skip
        out.insert(at, record)
        poisons.insert(0, Poison(name, record))
    return out, poisons


# -- a foreign producer --------------------------------------------------------------


def play_foreign(
    records: Iterable[LogRecord],
    bootstrap: str,
    topics: Topics,
    *,
    speed: float | None,
    partitions: int,
) -> int:
    """:func:`triage.replay.player.play`, with confluent-kafka (librdkafka) as the
    producer: same pacing, record timestamps and final watermarks. Its ``murmur2_random``
    partitioner is the Java client's (and kafka-python's), so records land where the
    project's own player puts them. Returns how many records (watermarks included) the
    broker acknowledged; raises :class:`~triage.errors.BrokerError` if it refused any."""
    from confluent_kafka import KafkaException, Producer

    from triage.errors import BrokerError
    from triage.events.wire import to_millis
    from triage.replay.player import watermark_records

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "triage-soak-foreign",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "message.max.bytes": 2 * LARGE_VALUE_BYTES,
        }
    )
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    def send(topic: str, record: LogRecord, partition: int | None) -> None:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(
                    topic,
                    key=record.key.encode() if record.key is not None else None,
                    value=record.value,
                    headers=[(k, v.encode()) for k, v in record.headers.items()],
                    timestamp=to_millis(record.timestamp),
                    on_delivery=delivered,
                    **extra,
                )
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)

    began = time.monotonic()
    first = last = None
    count = 0
    try:
        for record in records:
            if speed is not None:
                first = first or record.timestamp
                ahead = (record.timestamp - first).total_seconds() / speed - (
                    time.monotonic() - began
                )
                if ahead > 0:
                    time.sleep(ahead)
            send(topics.with_prefix(record.topic), record, None)
            last = record.timestamp if last is None or record.timestamp > last else last
            count += 1
        marks = watermark_records(topics, partitions, last) if last is not None else []
        for partition, mark in marks:
            send(mark.topic, mark, partition)
        if producer.flush(60):
            errors.append("records still queued after 60 s")
    except KafkaException as exc:
        raise BrokerError(f"publishing failed: {exc}") from exc
    if errors:
        raise BrokerError(f"publishing failed: {errors[0]} ({len(errors)} records)")
    return count + len(marks)


# -- workers -----------------------------------------------------------------------


@dataclass
class Slot:
    """One member of the worker group: its process (restarted in place), data and logs."""

    name: str
    settings: TriageSettings
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int | None] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        """The log of its current process."""
        return self.workdir / f"worker-{self.name}-{self.starts - 1}.log"

    def start(self) -> None:
        """Start (or restart) its process."""
        from triage.streaming.launch import spawn_worker

        self.starts += 1
        self.proc = spawn_worker(self.settings, self.log_path)

    def kill(self) -> int | None:
        """SIGKILL (no shutdown, no flush, no commit); its exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)  # a frozen process dies as well, but say so
        self.proc.kill()
        return self.proc.wait(10)

    def freeze(self, seconds: float) -> None:
        """SIGSTOP for ``seconds``, then SIGCONT."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)

    def assignments(self) -> int:
        """How many partition assignments its current process has logged."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return text.count("Setting newly assigned partitions")

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL if it hangs."""
        from triage.streaming.launch import stop_worker

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            stop_worker(self.proc)


class Group:
    """The workers of a soak, and their supervisor: a worker that exits by itself is
    restarted at once (as systemd or Kubernetes would), its status recorded."""

    MAX_EXITS = 5
    """Exits by themselves in one run beyond which the workers are crash-looping."""

    def __init__(self, settings: TriageSettings, workdir: Path, count: int) -> None:
        self.slots = [
            Slot(
                name,
                settings.model_copy(update={"data_dir": workdir / f"worker-{name}"}),
                workdir,
            )
            for name in "ab"[:count]
        ]
        self.exits: list[dict[str, Any]] = []

    def start(self) -> None:
        """Start every worker."""
        for slot in self.slots:
            slot.start()

    def supervise(self) -> str | None:
        """Restart the workers that exited by themselves; a problem when they crash-loop."""
        for slot in self.slots:
            assert slot.proc is not None
            code = slot.proc.poll()
            if code is None:
                continue
            self.exits.append({"worker": slot.name, "code": code})
            if len(self.exits) > self.MAX_EXITS:
                return f"the workers exited by themselves {len(self.exits)} times"
            slot.start()
        return None

    @property
    def crashes(self) -> list[dict[str, Any]]:
        """Exits by themselves other than the stall watch's (which asks for a restart)."""
        return [e for e in self.exits if e["code"] != WATCHDOG_EXIT]

    def stop(self) -> None:
        """Stop every worker."""
        for slot in self.slots:
            slot.stop()


__all__ = [
    "FAULT_KINDS",
    "FaultKind",
    "Group",
    "Poison",
    "Slot",
    "has_poison",
    "plan",
    "play_foreign",
    "with_poison",
    "workers_for",
]
