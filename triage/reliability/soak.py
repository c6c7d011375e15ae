"""``triage soak``: replay a generated log through workers that meet faults: SIGKILL,
SIGSTOP/SIGCONT (a frozen worker), poison records (see :mod:`triage.reliability.faults`).

For each fault kind: an embedded broker, one worker child process (two in one
consumer group for ``freeze`` and ``mixed``), and a seeded synthetic log of about
``events`` records (some malformed; the poison records added for ``poison`` and
``mixed``), published at a steady pace (about 400 records a second, ``min_window``
(30 s) at least, longer when freezes need the time). Meanwhile ``faults`` kills or freezes happen at
seeded moments of the publication, each once the workers have produced a seeded
3–12 % more of the outputs, plus a seeded fraction of a second. A killed worker is
restarted at once; a frozen one is resumed after ``freeze_seconds`` (longer than the
session timeout, so its partitions move to the other worker). A worker that exits by
itself is restarted, as a supervisor would (exit 75, the stall watch's, is expected;
any other status is a failure: ``worker_crashed``).
When the workers have caught up, the output topics are read and checked against the
offline replay of the same log (:func:`check`, the single oracle):

- every report or alarm the offline replay decides is decided (``missing``: 0);
- each has one decision id (at-least-once may repeat it, never vary it);
- a repeated record (same id) is an exact copy, for every output type; only the
  count of copies may be non-zero;
- every dead letter the offline replay makes is made (poison records included);
- the workers process the whole input (``caught_up``: the group's commits reach the
  end, or every output is there; commits that lag behind are reported as a warning).
  A catch-up that makes no progress (no output, no commit) for ``stall_timeout``
  seconds is given up.

One JSON document is printed, a result per fault kind; the exit status is 1 when an
invariant fails in any kind.
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

from triage.params import FiniteFloatRange
from triage.reliability.faults import FAULT_KINDS, FaultKind

if TYPE_CHECKING:
    from triage.reliability.faults import Group, Poison
    from triage.replay.records import LogRecord

INVARIANTS = (
    "missing",
    "reports_with_more_than_one_decision_id",
    "non_identical_duplicates",
    "dead_letters_missing",
    "different_from_offline",
    "faults",
    "caught_up",
    "worker_crashed",
)
"""The invariants, as named in the ``failures`` of the result (see the module docstring)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakConfig:
    """A soak run of one fault kind."""

    fault: FaultKind = "kill"
    events: int = 20_000
    faults: int = 3
    """Kills or freezes (none for ``poison``)."""
    seed: int = 62
    bad_rate: float = 0.01
    partitions: int = 4
    workdir: Path = Path("var/soak")
    min_window: float = 30.0
    """Least wall time the publication lasts (short runs in tests use less)."""
    freeze_seconds: float = 16.0
    """How long a frozen worker stays stopped: more than the session timeout (10 s) and
    the rebalance that follows (about 3 s), so its partitions move to the other."""
    catch_up_timeout: float = 180.0
    """Longest wait for the workers to commit the whole input."""
    stall_timeout: float = 60.0
    """A wait that sees neither a new output nor a new commit for this long is given up."""

    def __post_init__(self) -> None:
        if self.fault not in FAULT_KINDS:
            raise ValueError(f"fault must be one of {', '.join(FAULT_KINDS)}")
        if self.events < 100:
            raise ValueError("events must be at least 100")
        if self.faults < 0:
            raise ValueError("faults must not be negative")


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
    """The seeded synthetic log of the run (about ``events`` records, no poison)."""
    from triage.generate import GeneratorConfig, generate_log
    from triage.pipeline.engine import Engine

    # About 8.4 records per victim over 60 days (reports, alarms, responders' updates).
    victims = max(10, round(config.events / 8.4))
    generator = GeneratorConfig(
        victims=victims, days=60, start=date(2026, 3, 2), seed=config.seed,
        bad_rate=config.bad_rate,
    )  # fmt: skip
    return list(generate_log(generator, Engine()))[: config.events]


def soak_input(config: SoakConfig) -> tuple[list[LogRecord], list[Poison]]:
    """The log the run publishes: :func:`soak_log`, with the poison records for the
    kinds that have them."""
    from triage.reliability.faults import has_poison, with_poison

    log = soak_log(config)
    return with_poison(log, config.seed) if has_poison(config.fault) else (log, [])


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
        copies[body["type"]].add(body["id"], _canonical(body))
        if body["type"] == "triage.decision":
            ids_per_report[body["source_event_id"]].add(body["id"])
    decided = {e for e, ids in ids_per_report.items() if e in expected_decided}
    per_report = [len(ids_per_report[e]) for e in decided]
    offline_ids = Counter(orjson.loads(v)["id"] for v in offline)
    kafka_ids = {i for c in copies.values() for i in c.seen}
    # Content against the offline replay, not only between Kafka's own copies: a record
    # only Kafka has (an escalation the offline replay does not make) or one whose id
    # offline gives other content is a distortion, whatever its copies agree on.
    offline_content = {orjson.loads(v)["id"]: _canonical(orjson.loads(v)) for v in offline}
    kafka_content = {i: contents for c in copies.values() for i, contents in c.contents.items()}
    only_kafka = sorted(kafka_ids - set(offline_ids))
    differing = sorted(
        i for i in kafka_ids & set(offline_ids)
        if kafka_content.get(i, set()) - {offline_content[i]}
    )  # fmt: skip
    figures: dict[str, Any] = {
        "records_in_log": len(log),
        "reports": len(expected_decided),
        "decided": len(decided),
        "decisions": copies["triage.decision"].figures()["distinct"],
        "missing": len(expected_decided - decided),
        "exact_copies": sum(c.figures()["exact_copies"] for c in copies.values()),
        "non_identical_duplicates": sum(c.non_identical() for c in copies.values()),
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
            "ids_only_through_kafka": len(only_kafka),
            "different_content": len(differing),
            # Ids and types only (never content): where to start looking.
            "examples": [_named(i, copies) for i in (only_kafka + differing)[:5]],
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
    if differing:
        failures.append("different_from_offline")
    return figures, failures


def _canonical(body: dict[str, Any]) -> bytes:
    """A record's content with its Kafka coordinates blanked (dead letters differ there)."""
    if body["type"] == "triage.dead_letter":
        body = {**body, "source_partition": None, "source_offset": None}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _named(record_id: str, copies: dict[str, _Copies]) -> str:
    kind = next((t for t, c in copies.items() if record_id in c.seen), "?")
    return f"{kind} {record_id}"


def run_soak(
    config: SoakConfig, progress: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Run the soak of one fault kind; returns the figures (``ok`` and ``failures``
    included, the headline figures first)."""
    import threading

    from kafka import KafkaAdminClient

    from triage.broker.admin import end_offsets
    from triage.broker.embedded import EmbeddedBroker
    from triage.broker.provision import provision
    from triage.pipeline.engine import Engine
    from triage.reliability.faults import Group, has_poison, plan, workers_for
    from triage.replay.offline import replay_offline
    from triage.replay.player import make_producer, play
    from triage.settings import TriageSettings

    began = time.monotonic()
    config.workdir.mkdir(parents=True, exist_ok=True)
    log, poisons = soak_input(config)
    offline = [r.value for r in replay_offline(log, Engine())]
    progress(f"{config.fault}: log of {len(log)} records; offline replay: {len(offline)} outputs")
    rng = Random(f"triage.soak:{config.seed}")
    signals = plan(config.fault, config.faults, rng)
    # Published at a steady pace, as live traffic comes: the workers are busy all along,
    # so a fault always lands in the middle of something. A freeze and the rebalances
    # around it take about freeze_seconds + 10 s: the publication lasts that long.
    freezes = signals.count("freeze")
    window = max(config.min_window, len(log) / 400, freezes * (config.freeze_seconds + 12.0))
    span = (log[-1].timestamp - log[0].timestamp).total_seconds()
    schedule = sorted(rng.uniform(0.1, 0.9) * window for _ in signals)
    points: list[dict[str, Any]] = []
    problems: list[str] = []
    published: dict[str, Any] = {}
    outputs: list[bytes] = []
    lag = 0
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
        inputs, internal = set(settings.topics.inputs), set(settings.topics.internal)

        def committed_on(topics: set[str]) -> int:
            offsets = admin.list_group_offsets(settings.group_id).get(settings.group_id, {})
            return sum(o.offset for tp, o in offsets.items() if tp.topic in topics and o.offset > 0)

        def committed() -> int:
            """Upstream records the forwarding stage committed."""
            return committed_on(inputs)

        def unprocessed() -> int:
            """Records not yet committed by either stage (the stateful stage reads what
            the forwarding stage wrote to the internal topics)."""
            written = sum(end_offsets(broker.bootstrap, settings.topics.internal).values())
            return max(total - committed(), 0) + max(written - committed_on(internal), 0)

        def produced() -> int:
            return sum(end_offsets(broker.bootstrap, settings.topics.outputs).values())

        def beyond(mark: int) -> Callable[[], bool]:
            return lambda: produced() > mark

        group = Group(settings, config.workdir, workers_for(config.fault))
        group.start()
        producer = make_producer(broker.bootstrap)

        def publish() -> None:
            try:
                if has_poison(config.fault):  # through a client the project did not write
                    from triage.reliability.faults import play_foreign

                    published["acknowledged"] = play_foreign(
                        log, broker.bootstrap, settings.topics,
                        speed=span / window, partitions=config.partitions,
                    )  # fmt: skip
                else:
                    result = play(
                        log, producer, settings.topics,
                        speed=span / window, partitions=config.partitions,
                    )  # fmt: skip
                    published["undelivered"] = getattr(result, "undelivered", 0)
            except Exception as exc:  # reported, not lost in the thread
                published["error"] = f"{type(exc).__name__}: {exc}"

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        started = time.monotonic()
        mark, first = 0, rng.randrange(len(group.slots))
        try:
            for n, (at, what) in enumerate(zip(schedule, signals, strict=True), start=1):
                time.sleep(max(at - (time.monotonic() - started), 0.0))
                # Only once the workers have produced a seeded share of the outputs more:
                # a fault while they still start up would test little.
                gap = round(rng.uniform(0.03, 0.12) * len(offline))
                problem = _wait(beyond(mark + gap), group, config, progress=produced)
                if problem:
                    problems.append(f"before fault {n} ({what}): {problem}")
                    break
                time.sleep(rng.uniform(0.0, 0.5))  # a random moment, not a commit boundary
                slot = group.slots[(first + n) % len(group.slots)]  # in turn
                done, mark = committed(), produced()
                point: dict[str, Any] = {
                    "fault": what, "worker": slot.name, "after_committed": done,
                    "share": round(done / total, 3), "outputs_so_far": mark,
                    "seconds": round(time.monotonic() - started, 1),
                }  # fmt: skip
                if what == "kill":
                    point["exit_code"] = slot.kill()
                    progress(f"fault {n}: SIGKILL {slot.name} after {done}/{total} committed")
                    slot.start()
                else:
                    others = [s for s in group.slots if s is not slot]
                    before = [s.assignments() for s in others]
                    progress(f"fault {n}: SIGSTOP {slot.name} for {config.freeze_seconds:g} s "
                             f"after {done}/{total} committed")  # fmt: skip
                    slot.freeze(config.freeze_seconds)
                    point["partitions_moved"] = any(
                        s.assignments() > b for s, b in zip(others, before, strict=True)
                    )
                    progress(f"fault {n}: SIGCONT {slot.name}")
                points.append(point)
                mark = produced()
            publisher.join(window + 120)
            if publisher.is_alive():
                problems.append("the publication did not end")
            expected = {orjson.loads(v)["id"] for v in offline}
            complete = _Throttled(
                lambda: expected <= _ids(_read_outputs(broker.bootstrap, settings.topics.outputs)),
                every=5.0,
            )
            if not problems:
                # Done when the input is committed, or when every output is there: after
                # a rebalance Faust may commit one offset per commit for minutes.
                problem = _wait(
                    lambda: unprocessed() == 0 or complete(), group, config, settle=2.0,
                    progress=lambda: (produced(), committed()),
                )  # fmt: skip
                if problem:
                    problems.append(f"catching up: {problem}")
            progress(f"{config.fault}: reading the output topics")
            outputs = _read_outputs(broker.bootstrap, settings.topics.outputs)
            lag = unprocessed()
        finally:
            group.stop()
            producer.close()
            admin.close()
    figures, failures = check(log, offline, outputs)
    if len(points) != len(signals):
        failures.append("faults")
    if problems or "error" in published:
        failures.append("caught_up")
    if group.crashes:
        failures.append("worker_crashed")
    warnings = []
    if figures["offline"]["ids_only_through_kafka"]:
        warnings.append(
            f"{figures['offline']['ids_only_through_kafka']} records the offline replay does"
            " not make (e.g. an escalation whose acknowledgement was fetched after a later"
            " report: the two input topics are published at once, and a record can reach"
            " the broker after a later one on the other topic): "
            + ", ".join(figures["offline"]["examples"])
        )
    if lag:
        warnings.append(
            f"{lag} input records processed but not committed at the end: the group's "
            "commits crawled (Faust after a rebalance); a restart would process them again"
        )
    return {
        "fault": config.fault,
        "records_in": len(log),
        "decided": figures["decided"],
        "dead_lettered": figures["dead_letters"]["distinct"],
        "missing": figures["missing"],
        "duplicates": figures["exact_copies"],
        "same_id_different_content": figures["non_identical_duplicates"]
        + figures["offline"]["different_content"],
        "not_in_offline": figures["offline"]["ids_only_through_kafka"],
        "inputs_not_committed": lag,
        "wall_seconds": round(time.monotonic() - began, 1),
        "ok": not failures,
        "failures": failures,
        "problems": problems,
        "warnings": warnings,
        "seed": config.seed,
        "workers": len(group.slots),
        "fault_points": points,
        "worker_exits": group.exits,
        "poison": [p.describe() for p in poisons],
        "publication": published,
        **figures,
    }


def run_soaks(
    configs: Iterable[SoakConfig], progress: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Run one soak per config (an error in one is reported, the others still run)."""
    results: dict[str, Any] = {}
    for config in configs:
        try:
            results[config.fault] = run_soak(config, progress)
        except Exception as exc:  # one kind's crash must not hide the others' figures
            results[config.fault] = {"fault": config.fault, "ok": False,
                                     "failures": ["error"], "error": repr(exc)}  # fmt: skip
    return {"ok": all(r["ok"] for r in results.values()), "kinds": results}


def _wait(
    condition: Callable[[], bool],
    group: Group,
    config: SoakConfig,
    settle: float = 0.0,
    progress: Callable[[], object] | None = None,
) -> str | None:
    """Poll ``condition`` until it held for ``settle`` s, restarting workers that exit by
    themselves; what went wrong instead, if anything (a ``progress`` figure that stays
    the same for ``config.stall_timeout`` s ends the wait)."""
    deadline = time.monotonic() + config.catch_up_timeout
    since: float | None = None
    seen: object = None
    moved = checked = time.monotonic()
    while True:
        problem = group.supervise()
        if problem:
            return problem
        if condition():
            since = since or time.monotonic()
            if time.monotonic() - since >= settle:
                return None
        else:
            since = None
        now = time.monotonic()
        if progress is not None and now - checked >= 2.0:
            checked, figure = now, progress()
            if figure != seen:
                seen, moved = figure, now
            elif now - moved > config.stall_timeout:
                return f"no progress for {config.stall_timeout:.0f} s"
        if now > deadline:
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
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,  # a dead letter may be large
    )  # fmt: skip
    try:
        parts = [TopicPartition(t, p) for (t, p), end in ends.items() if end > 0]
        if not parts:  # nothing produced at all (kafka-python refuses to seek nothing)
            return []
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
@click.option(
    "--fault",
    "kinds",
    type=click.Choice([*FAULT_KINDS, "all"]),
    multiple=True,
    default=("all",),
    show_default=True,
    help="Fault kind to run (repeatable); 'all' runs every kind, one after the other.",
)
@click.option(
    "--events",
    type=click.IntRange(min=100),
    default=20_000,
    show_default=True,
    help="Records of the 'kill' run.",
)
@click.option(
    "--other-events",
    type=click.IntRange(min=100),
    default=5_000,
    show_default=True,
    help="Records of the 'freeze', 'poison' and 'mixed' runs (freezes take wall time).",
)
@click.option(
    "--faults",
    "--kills",
    "faults",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Kills or freezes per run (not for 'poison').",
)
@click.option("--seed", type=int, default=62, show_default=True)
@click.option("--bad-rate", type=FiniteFloatRange(0.0, 0.5), default=0.01, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/soak"),
    show_default=True,
    help="Logs of the broker and of each worker (one folder per fault kind).",
)
def soak(
    kinds: tuple[str, ...],
    events: int,
    other_events: int,
    faults: int,
    seed: int,
    bad_rate: float,
    workdir: Path,
) -> None:
    """Replay a generated log while killing, freezing or poisoning the workers; print
    JSON per fault kind; exit 1 on a loss or a record with two contents in any kind."""
    chosen = FAULT_KINDS if "all" in kinds else tuple(k for k in FAULT_KINDS if k in kinds)
    configs = [
        SoakConfig(
            fault=kind,
            events=events if kind == "kill" else other_events,
            faults=faults,
            seed=seed,
            bad_rate=bad_rate,
            workdir=workdir / kind,
        )
        for kind in chosen
    ]
    result = run_soaks(configs, progress=lambda m: click.echo(f"· {m}", err=True))
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if not result["ok"]:
        raise SystemExit(1)
