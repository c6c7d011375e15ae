"""``triage soak``: replay a generated log through a worker that is SIGKILLed and restarted.

An embedded broker, a worker child process, and a seeded synthetic log of about
``events`` records (some malformed), published at a steady pace (about 400 records
a second, 30 s at least). Meanwhile the worker is killed with SIGKILL ``kills``
times, at seeded moments of the publication (each once the running worker has
itself produced a seeded 3–12 % of the outputs, plus a seeded fraction of a second),
and at once restarted.
When the last worker has caught up, the output topics are read and checked
against the offline replay of the same log:

- every report or alarm the offline replay decides is decided (``missing``: 0);
- each has one decision id (at-least-once may repeat it, never vary it);
- a repeated record (same id) is an exact copy, for decisions, queue records and
  escalations alike; only the count of copies may be non-zero;
- every dead letter the offline replay makes is made;
- the last worker processes the whole input (``caught_up``: its commits reach the
  end, or every output is there; commits that lag behind are reported as a warning).

One JSON document is printed; the exit status is 1 when an invariant fails.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from triage.replay.records import LogRecord

INVARIANTS = (
    "missing",
    "reports_with_more_than_one_decision_id",
    "non_identical_duplicates",
    "dead_letters_missing",
    "kills",
    "caught_up",
)
"""The invariants, as named in the ``failures`` of the result (see the module docstring)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakConfig:
    """A soak run."""

    events: int = 20_000
    kills: int = 3
    seed: int = 62
    bad_rate: float = 0.01
    partitions: int = 4
    workdir: Path = Path("var/soak")
    catch_up_timeout: float = 180.0
    """Longest wait for a (re)started worker to commit the whole input."""

    def __post_init__(self) -> None:
        if self.events < 100:
            raise ValueError("events must be at least 100")
        if self.kills < 0:
            raise ValueError("kills must not be negative")


@dataclass
class _Copies:
    """Records of one type by id: how many were read, how many distinct contents."""

    seen: Counter[str] = field(default_factory=Counter)
    contents: dict[str, set[bytes]] = field(default_factory=lambda: defaultdict(set))

    def add(self, record_id: str, canonical: bytes) -> None:
        self.seen[record_id] += 1
        self.contents[record_id].add(canonical)

    def figures(self) -> dict[str, int]:
        records = sum(self.seen.values())
        return {
            "records": records,
            "distinct": len(self.seen),
            "exact_copies": records - len(self.seen) - self.non_identical(),
            "non_identical_duplicates": self.non_identical(),
        }

    def non_identical(self) -> int:
        return sum(len(c) - 1 for c in self.contents.values())


def soak_log(config: SoakConfig) -> list[LogRecord]:
    """The seeded synthetic log of the run (about ``events`` records)."""
    from triage.generate import GeneratorConfig, generate_log
    from triage.pipeline.engine import Engine

    # About 8.4 records per victim over 60 days (reports, alarms, responders' updates).
    victims = max(10, round(config.events / 8.4))
    generator = GeneratorConfig(
        victims=victims, days=60, start=date(2026, 3, 2), seed=config.seed,
        bad_rate=config.bad_rate,
    )  # fmt: skip
    return list(generate_log(generator, Engine()))[: config.events]


def check(
    log: list[LogRecord], offline: list[bytes], outputs: Iterable[bytes]
) -> tuple[dict[str, Any], list[str]]:
    """Figures and failed invariants of the worker's ``outputs`` against the offline ones."""
    expected_decided = {
        body["source_event_id"]
        for body in map(orjson.loads, offline)
        if body["type"] == "triage.decision" and body["kind"] in ("assessment", "alarm")
    }
    expected_letters = {
        b["id"] for b in map(orjson.loads, offline) if b["type"] == "triage.dead_letter"
    }
    copies: dict[str, _Copies] = defaultdict(_Copies)
    ids_per_report: dict[str, set[str]] = defaultdict(set)
    for value in outputs:
        body = orjson.loads(value)
        if body["type"] == "triage.dead_letter":  # coordinates differ between deliveries
            body["source_partition"] = body["source_offset"] = None
        copies[body["type"]].add(body["id"], orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        if body["type"] == "triage.decision":
            ids_per_report[body["source_event_id"]].add(body["id"])
    decided = {e for e, ids in ids_per_report.items() if e in expected_decided}
    per_report = [len(ids_per_report[e]) for e in decided]
    offline_ids = Counter(orjson.loads(v)["id"] for v in offline)
    kafka_ids = {i for c in copies.values() for i in c.seen}
    figures: dict[str, Any] = {
        "records_in_log": len(log),
        "reports": len(expected_decided),
        "decisions": copies["triage.decision"].figures()["distinct"],
        "missing": len(expected_decided - decided),
        "decision_ids_per_report": {
            "max": max(per_report, default=0),
            "reports_with_more_than_one": sum(n > 1 for n in per_report),
        },
        "decision_records": copies["triage.decision"].figures(),
        "queue_records": copies["triage.queue_record"].figures(),
        "escalations": copies["triage.escalation"].figures(),
        "dead_letters": {
            **copies["triage.dead_letter"].figures(),
            "expected": len(expected_letters),
            "missing": len(expected_letters - set(copies["triage.dead_letter"].seen)),
        },
        "offline": {
            "records": len(offline_ids),
            "ids_only_offline": len(set(offline_ids) - kafka_ids),
            "ids_only_through_kafka": len(kafka_ids - set(offline_ids)),
        },
    }
    failures = []
    if figures["missing"]:
        failures.append("missing")
    if figures["decision_ids_per_report"]["reports_with_more_than_one"]:
        failures.append("reports_with_more_than_one_decision_id")
    if any(c.non_identical() for c in copies.values()):
        failures.append("non_identical_duplicates")
    if figures["dead_letters"]["missing"]:
        failures.append("dead_letters_missing")
    return figures, failures


def run_soak(
    config: SoakConfig, progress: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Run the soak; returns the figures (``ok`` and ``failures`` included)."""
    import threading

    from kafka import KafkaAdminClient

    from triage.broker.admin import end_offsets
    from triage.broker.embedded import EmbeddedBroker
    from triage.broker.provision import provision
    from triage.pipeline.engine import Engine
    from triage.replay.offline import replay_offline
    from triage.replay.player import make_producer, play
    from triage.settings import TriageSettings
    from triage.streaming.launch import spawn_worker, stop_worker

    began = time.monotonic()
    config.workdir.mkdir(parents=True, exist_ok=True)
    log = soak_log(config)
    offline = [r.value for r in replay_offline(log, Engine())]
    progress(f"log of {len(log)} records; offline replay: {len(offline)} outputs")
    # Published at a steady pace, as live traffic comes: the worker is busy all along,
    # so a kill always lands in the middle of something.
    window = max(30.0, len(log) / 400)
    span = (log[-1].timestamp - log[0].timestamp).total_seconds()
    rng = Random(f"triage.soak:{config.seed}")
    schedule = sorted(rng.uniform(0.1, 0.9) * window for _ in range(config.kills))
    kills: list[dict[str, Any]] = []
    exits: list[int | None] = []
    problems: list[str] = []
    with EmbeddedBroker(log_path=config.workdir / "broker.log") as broker:
        settings = TriageSettings(
            kafka_bootstrap=broker.bootstrap, topic_prefix=f"soak{config.seed}.",
            group_id=f"soak{config.seed}-worker", partitions=config.partitions,
            clock_mode="replay", web_port=0, metrics_port=0, log_format="json",
            data_dir=config.workdir / "worker",
        )  # fmt: skip
        provision(settings)
        total = len(log) + config.partitions  # the log, then one watermark per partition

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="triage-soak")
        inputs = set(settings.topics.inputs)

        def committed() -> int:
            offsets = admin.list_group_offsets(settings.group_id).get(settings.group_id, {})
            return sum(o.offset for tp, o in offsets.items() if tp.topic in inputs and o.offset > 0)

        def produced() -> int:
            return sum(end_offsets(broker.bootstrap, settings.topics.outputs).values())

        def beyond(mark: int) -> Callable[[], bool]:
            return lambda: produced() > mark

        workers = [spawn_worker(settings, config.workdir / "worker-0.log")]
        producer = make_producer(broker.bootstrap)
        publisher = threading.Thread(
            target=play, args=(log, producer, settings.topics),
            kwargs={"speed": span / window, "partitions": config.partitions}, daemon=True,
        )  # fmt: skip
        publisher.start()
        started = time.monotonic()
        mark = 0
        try:
            for n, at in enumerate(schedule, start=1):
                time.sleep(max(at - (time.monotonic() - started), 0.0))
                # Only once the running worker has itself produced a seeded share of the
                # outputs: a kill while it still starts up would test little.
                gap = round(rng.uniform(0.03, 0.12) * len(offline))
                problem = _wait(beyond(mark + gap), workers[-1], config)
                if problem:
                    problems.append(f"before kill {n}: {problem}")
                    break
                time.sleep(rng.uniform(0.0, 0.5))  # a random moment, not a commit boundary
                done, mark = committed(), produced()
                workers[-1].kill()
                exits.append(workers[-1].wait(10))
                kills.append({"after_committed": done, "share": round(done / total, 3),
                              "outputs_so_far": mark,
                              "seconds": round(time.monotonic() - started, 1)})  # fmt: skip
                progress(f"kill {n}: SIGKILL after {done}/{total} committed inputs; restarting")
                workers.append(spawn_worker(settings, config.workdir / f"worker-{n}.log"))
            publisher.join(window + 120)
            expected = {orjson.loads(v)["id"] for v in offline}
            complete = _Throttled(
                lambda: expected <= _ids(_read_outputs(broker.bootstrap, settings.topics.outputs)),
                every=5.0,
            )
            if not problems:
                # Done when the input is committed, or when every output is there: after
                # a rebalance Faust may commit one offset per commit for minutes.
                problem = _wait(
                    lambda: committed() >= total or complete(), workers[-1], config, settle=2.0
                )
                if problem:
                    problems.append(f"catching up: {problem}")
            progress("reading the output topics")
            outputs = _read_outputs(broker.bootstrap, settings.topics.outputs)
            lag = total - committed()
        finally:
            stop_worker(workers[-1])
            producer.close()
            admin.close()
    figures, failures = check(log, offline, outputs)
    if len(kills) != config.kills:
        failures.append("kills")
    if problems:
        failures.append("caught_up")
    warnings = []
    if lag:
        warnings.append(
            f"{lag} input records processed but not committed at the end: the group's "
            "commits crawled (Faust after a rebalance); a restart would process them again"
        )
    return {
        "seed": config.seed,
        "events": len(log),
        "kills": len(kills),
        "kill_points": kills,
        "killed_exit_codes": exits,
        **figures,
        "inputs_not_committed": lag,
        "wall_seconds": round(time.monotonic() - began, 1),
        "ok": not failures,
        "failures": failures,
        "problems": problems,
        "warnings": warnings,
    }


def _wait(
    condition: Callable[[], bool], worker: Any, config: SoakConfig, settle: float = 0.0
) -> str | None:
    """Poll ``condition`` until it held for ``settle`` s; what went wrong instead, if anything."""
    deadline = time.monotonic() + config.catch_up_timeout
    since: float | None = None
    while True:
        if worker.poll() is not None:
            return f"the worker exited by itself with code {worker.returncode}"
        if condition():
            since = since or time.monotonic()
            if time.monotonic() - since >= settle:
                return None
        else:
            since = None
        if time.monotonic() > deadline:
            return f"still not so after {config.catch_up_timeout:.0f} s"
        time.sleep(0.2)


class _Throttled:
    """A condition that is expensive to evaluate: evaluated at most every ``every`` s."""

    def __init__(self, condition: Callable[[], bool], every: float) -> None:
        self.condition, self.every = condition, every
        self.last, self.value = float("-inf"), False

    def __call__(self) -> bool:
        if not self.value and time.monotonic() - self.last >= self.every:
            self.last, self.value = time.monotonic(), self.condition()
        return self.value


def _ids(values: Iterable[bytes]) -> set[str]:
    return {orjson.loads(v)["id"] for v in values}


def _read_outputs(bootstrap: str, topics: Iterable[str]) -> list[bytes]:
    """Every record of ``topics``, from the beginning to their current ends."""
    from kafka import KafkaConsumer, TopicPartition

    from triage.broker.admin import end_offsets

    ends = end_offsets(bootstrap, topics)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(t, p) for (t, p), end in ends.items() if end > 0]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        values: list[bytes] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[(tp.topic, tp.partition)] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError("reading the output topics took more than 120 s")
            for records in consumer.poll(timeout_ms=200).values():
                values.extend(r.value for r in records)
        return values
    finally:
        consumer.close()


@click.command()
@click.option("--events", type=click.IntRange(min=100), default=20_000, show_default=True)
@click.option("--kills", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--seed", type=int, default=62, show_default=True)
@click.option("--bad-rate", type=click.FloatRange(0.0, 0.5), default=0.01, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/soak"),
    show_default=True,
    help="Logs of the broker and of each worker.",
)
def soak(events: int, kills: int, seed: int, bad_rate: float, workdir: Path) -> None:
    """Replay a generated log while SIGKILLing the worker; print JSON; exit 1 on a loss."""
    config = SoakConfig(events=events, kills=kills, seed=seed, bad_rate=bad_rate, workdir=workdir)
    result = run_soak(config, progress=lambda m: click.echo(f"· {m}", err=True))
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if not result["ok"]:
        raise SystemExit(1)
