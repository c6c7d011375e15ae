"""``triage demo``: the whole pipeline on one machine, start to summary.

An embedded broker, a worker in replay mode (its clocks move with event time only),
and one stream: the generator's reports and alarms with the simulated responders'
acknowledgements and actions, planned ahead in event time (:mod:`triage.demo.plan`)
and published in timestamp order, the producer flushed at each change of topic. The
worker therefore reads the same stream in the same order whatever the machine's
speed or the ``--speed`` asked for, and two runs with one seed print one summary (the
run time apart). What the worker writes is counted from its output topics and checked
against the plan's own offline run of the stream.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.measure import Measurement
from rich.table import Table

from triage.broker.admin import group_lag
from triage.broker.embedded import EmbeddedBroker
from triage.broker.provision import provision
from triage.demo.monitor import OutputMonitor, Tally
from triage.demo.plan import Expected, Plan, plan_demo
from triage.errors import TriageError
from triage.events.base import Level
from triage.events.wire import to_millis
from triage.generate import GeneratorConfig, generate_log
from triage.interrupt import CtrlC
from triage.pipeline.engine import Engine
from triage.replay.player import (
    Delivery,
    PlayResult,
    close_producer,
    make_producer,
    play,
    undelivered_message,
    watermark_records,
)
from triage.replay.records import LogRecord
from triage.replay.render import LEVELS, format_duration
from triage.replay.summary import percentile
from triage.routing.units import load_units
from triage.scoring.rules import load_rules
from triage.settings import TriageSettings, load_settings
from triage.streaming.launch import spawn_worker, stop_worker


class DemoError(TriageError):
    """The demo could not complete (worker died, broker unreachable, timeout)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    """A demo run: which synthetic period, how fast, with how many mistakes."""

    victims: int = 250
    days: int = 7
    start: date = field(default_factory=lambda: date(2026, 3, 2))
    seed: int = 62
    bad_rate: float = 0.01
    speed: float | None = 7200.0
    metrics_port: int = 9464
    console_port: int = 8080
    """The web console's port on 127.0.0.1 (0: no console)."""
    workdir: Path = Path("var/demo")
    timeout: float = 600.0
    delivery_timeout: float = 60.0


def run_demo(config: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the demo end to end; returns the summary figures (also printed)."""
    console = console or Console()
    config.workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        ctrl_c = stack.enter_context(CtrlC())
        settings = load_settings(clock_mode="replay", metrics_port=config.metrics_port, web_port=0)
        if settings.kafka_bootstrap is None:
            broker = stack.enter_context(EmbeddedBroker(log_path=config.workdir / "broker.log"))
            settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
            _say(console, f"embedded broker at [bold]{broker.bootstrap}[/] (log {broker.log_path})")
        assert settings.kafka_bootstrap is not None
        provision(settings)
        ctrl_c.check()
        worker = stack.enter_context(_worker(settings, config.workdir / "worker.log"))
        _say(
            console,
            f"worker pid {worker.proc.pid}; "
            + (
                f"metrics at [bold]http://127.0.0.1:{config.metrics_port}/metrics[/]"
                if config.metrics_port
                else "no metrics endpoint (--metrics-port 0)"
            ),
        )
        if config.console_port:
            _console(stack, settings, config, console)
        engine = Engine(load_rules(settings.rules_file), load_units(settings.units_file))
        gen = GeneratorConfig(
            victims=config.victims, days=config.days, start=config.start,
            seed=config.seed, bad_rate=config.bad_rate,
        )  # fmt: skip
        records = [r for r in generate_log(gen, engine) if r.topic != "dv.case-updates.v1"]
        end = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
        end += timedelta(days=config.days)
        plan = plan_demo(records, engine, end)
        _say(
            console,
            f"synthetic period {config.start} + {config.days} days (seed {config.seed}):"
            f" {len(records)} reports and alarms ({config.bad_rate:.0%} malformed) and"
            f" {plan.updates} responder updates planned in event time, played at "
            + ("full speed" if config.speed is None else f"{config.speed:,.0f}× real time"),
        )
        monitor = OutputMonitor(
            settings.kafka_bootstrap, settings.topics, security=settings.kafka_python_security()
        )
        ctrl_c.check()
        monitor.start()
        stack.callback(monitor.join, 10)
        stack.callback(monitor.stop)
        producer = make_producer(settings.kafka_bootstrap, settings.kafka_python_security())
        stack.callback(close_producer, producer)
        ctrl_c.check()
        sent = [0]
        played: list[PlayResult | BaseException] = []

        def publish() -> None:
            try:
                played.append(play(
                    in_topic_order(plan.feed, producer, config.delivery_timeout), producer,
                    settings.topics, speed=config.speed, partitions=settings.partitions,
                    watermark=False, on_sent=lambda n, _r: sent.__setitem__(0, n),
                    delivery_timeout=config.delivery_timeout,
                ))  # fmt: skip
            except BaseException as exc:  # reported below, not lost in the thread
                played.append(exc)

        publisher = threading.Thread(target=publish, name="demo-publisher", daemon=True)
        began = time.monotonic()
        total = len(plan.feed)
        live = Live(_progress(monitor, sent[0], total), console=console, refresh_per_second=4)

        def show() -> None:
            if console.is_terminal:
                live.update(_progress(monitor, sent[0], total))

        with live if console.is_terminal else nullcontext():
            publisher.start()
            while publisher.is_alive():
                ctrl_c.check()
                _check(worker, monitor, began, config.timeout)
                show()
                time.sleep(0.25)
            _check_played(played)
            # Every partition's clock to the end of the period: the deadlines due by
            # then fire. Everything before is on the broker (the player flushed).
            delivery = Delivery()
            for partition, mark in watermark_records(settings.topics, settings.partitions, end):
                delivery.track(
                    producer.send(
                        mark.topic,
                        value=mark.value,
                        partition=partition,
                        timestamp_ms=to_millis(end),
                    )
                )
            if delivery.settle(producer, config.delivery_timeout):
                raise DemoError(delivery.message("end-of-period watermarks"))
            ctrl_c.check()
            _wait_caught_up(settings, worker, monitor, plan, began, config.timeout, show, ctrl_c)
            show()
        ctrl_c.check()
        with monitor.lock:
            figures = summarize(monitor.tally, plan, time.monotonic() - began)
        _render(figures, console)
        if config.console_port and console.is_terminal:
            _keep_console(config.console_port, console)
        return figures


def _keep_console(port: int, console: Console) -> None:
    """At a terminal, the console (and the broker and worker it shows) stays up after
    the summary until Ctrl-C, so that a person can look at the cases and act on them."""
    _say(console, f"console still at [bold]http://127.0.0.1:{port}/[/]; Ctrl-C to stop")
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


DEMO_ACCOUNTS = (("demo", "R-DEMO01", "responder"), ("demo-supervisor", "R-DEMO02", "supervisor"))
"""The demo's synthetic console accounts: user name, responder id, role."""


def _console(
    stack: ExitStack, settings: TriageSettings, config: DemoConfig, console: Console
) -> None:
    """Start the web console beside the worker, on a read model rebuilt for this run
    (the embedded broker's topics are new), with synthetic accounts; print how to sign in."""
    import secrets

    from triage.console.auth import hash_password
    from triage.console.server import ConsoleConfig, ConsoleServer

    server = ConsoleServer(
        settings,
        ConsoleConfig(
            port=config.console_port, data_dir=config.workdir / "console", rebuild=True,
            clock="stream", access_log=False, port_option="--console-port",
        ),
    )  # fmt: skip
    password = secrets.token_urlsafe(9)
    for username, responder_id, role in DEMO_ACCOUNTS:
        server.accounts.add_user(responder_id, username, hash_password(password), role)
    stack.enter_context(server)
    names = " or ".join(username for username, _, _ in DEMO_ACCOUNTS)
    _say(
        console,
        f"console at [bold]{server.url}[/]: sign in as {names}, password"
        f" [bold]{password}[/] (synthetic accounts, this run only)",
    )


def in_topic_order(
    records: Iterable[LogRecord], producer: KafkaProducer, timeout: float
) -> Iterator[LogRecord]:
    """``records`` as they are, the producer flushed whenever the next one goes to the
    other topic: every record is on the broker before any later record of the other
    topic is sent, so the worker's merge never takes an update before a report stamped
    earlier that is still on its way (or the reverse). Runs between two sends."""
    topic: str | None = None
    for record in records:
        if topic is not None and record.topic != topic:
            producer.flush(timeout=timeout)
        topic = record.topic
        yield record


def _say(console: Console, text: str) -> None:
    """One line, never wrapped (a log file keeps it whole)."""
    console.print(text, soft_wrap=True)


@dataclass(frozen=True, slots=True)
class RunningWorker:
    """The demo's worker process and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    log_start: int = 0
    """Where this run's output begins in the log (earlier runs' output comes before)."""

    def failure(self) -> DemoError | None:
        """None while the worker runs; else why it stopped, in one line."""
        code = self.proc.poll()
        if code is None:
            return None
        return DemoError(worker_exit_message(code, self.log_path, self.log_start))


def worker_exit_message(code: int, log_path: Path, start: int = 0) -> str:
    """The worker's own error line (``error: metrics port 9464 is in use ...``) when it
    printed one after byte ``start`` of its log, else its exit status and the log."""
    try:
        with log_path.open("rb") as log:
            log.seek(start)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    said = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    if said:
        return said[-1]
    return f"the worker exited with code {code}; see {log_path}"


@contextmanager
def _worker(settings: TriageSettings, log_path: Path) -> Iterator[RunningWorker]:
    start = log_path.stat().st_size if log_path.is_file() else 0
    proc = spawn_worker(settings.model_copy(update={"log_format": "json"}), log_path)
    try:
        yield RunningWorker(proc, log_path, start)
    finally:
        stop_worker(proc)


def _check_played(played: list[PlayResult | BaseException]) -> None:
    """Fail the demo if the publisher raised or the broker did not take every record."""
    if not played:
        raise DemoError("the publisher stopped without a result")
    outcome = played[0]
    if isinstance(outcome, TriageError):
        raise DemoError(f"publishing the synthetic stream failed: {outcome}") from outcome
    if isinstance(outcome, BaseException):
        raise outcome
    if outcome.undelivered:
        raise DemoError(undelivered_message(outcome))


def _check(worker: RunningWorker, monitor: OutputMonitor, began: float, timeout: float) -> None:
    if (failure := worker.failure()) is not None:
        raise failure
    if monitor.error is not None:
        raise DemoError(f"the output monitor failed: {monitor.error}")
    if time.monotonic() - began > timeout:
        raise DemoError(f"the demo did not finish within {timeout:.0f} s")


def _lag(settings: TriageSettings) -> int:
    assert settings.kafka_bootstrap is not None
    return group_lag(
        settings.kafka_bootstrap, settings.group_id, settings.topics.consumed,
        security=settings.kafka_python_security(),
    )  # fmt: skip


def _wait_caught_up(
    settings: TriageSettings,
    worker: RunningWorker,
    monitor: OutputMonitor,
    plan: Plan,
    began: float,
    timeout: float,
    show: Callable[[], None],
    ctrl_c: CtrlC,
) -> None:
    """Until the worker has committed everything and the monitor has read what it wrote:
    at once when the counts are the plan's, else after 1.5 s without anything new."""
    quiet_since = time.monotonic()
    last = -1
    while True:
        ctrl_c.check()
        _check(worker, monitor, began, timeout)
        show()
        with monitor.lock:
            seen = len(monitor.tally.ids) + monitor.tally.dead_letters
            complete = not differences(monitor.tally, plan.expected)
        if seen != last:
            last, quiet_since = seen, time.monotonic()
        if (complete or time.monotonic() - quiet_since > 1.5) and _lag(settings) == 0:
            return
        time.sleep(0.25)


def _progress(monitor: OutputMonitor, sent: int, total: int) -> Group:
    with monitor.lock:
        tally = monitor.tally
        table = Table(title="triage demo: live", show_header=True)
        table.add_column("")
        for lv in LEVELS:
            table.add_column(lv, justify="right")
        table.add_row("decisions", *(str(tally.decisions.get(lv, 0)) for lv in LEVELS))
        table.add_row(
            "queue records",
            *(
                str(sum(n for (q, lvl), n in tally.queue_records.items() if lvl == lv))
                for lv in LEVELS
            ),
        )
        table.add_row(
            "escalations",
            *(
                str(sum(n for (lvl, _s), n in tally.escalations.items() if lvl == lv))
                for lv in LEVELS
            ),
        )
        line = f"published {sent}/{total} · dead letters {tally.dead_letters}"
    return Group(table, line)


def differences(tally: Tally, expected: Expected) -> list[str]:
    """Where the worker's counts differ from the plan's (``what key: worker ≠ plan``)."""

    def named(counts: Mapping[str, int] | Mapping[tuple[str, str], int]) -> dict[str, int]:
        return {k if isinstance(k, str) else "/".join(k): n for k, n in counts.items() if n}

    out: list[str] = []
    for what, ours, theirs in (
        ("decisions", named(tally.decisions), named(expected.decisions)),
        ("queue records", named(tally.queue_records), named(expected.queue_records)),
        ("escalations", named(tally.escalations), named(expected.escalations)),
    ):
        for key in sorted(set(ours) | set(theirs)):
            if ours.get(key, 0) != theirs.get(key, 0):
                out.append(f"{what} {key}: {ours.get(key, 0)} ≠ {theirs.get(key, 0)}")
    if tally.dead_letters != expected.dead_letters:
        out.append(f"dead letters: {tally.dead_letters} ≠ {expected.dead_letters}")
    return out


def summarize(tally: Tally, plan: Plan, seconds: float) -> dict[str, Any]:
    """The figures of a run: the worker's counts (``tally``), the responders' answers
    sent before the end of the period (``plan``), and the run's wall-clock time."""
    by_level: dict[str, dict[str, Any]] = {}
    for lv in LEVELS:
        handled = [h for h in plan.responders.handled if h.level.value == lv]
        acks = [h.ack_seconds for h in handled if h.acknowledged < plan.end]
        actions = [h.action_seconds for h in handled if h.acted < plan.end]
        by_level[lv] = {
            "decisions": tally.decisions.get(lv, 0),
            "queue_records": sum(n for (_q, lvl), n in tally.queue_records.items() if lvl == lv),
            "acknowledged": len(acks),
            "ack_p50_s": percentile(acks, 50),
            "ack_p90_s": percentile(acks, 90),
            "acted": len(actions),
            "action_p50_s": percentile(actions, 50),
            "action_p90_s": percentile(actions, 90),
            "waiting": plan.responders.backlog(Level(lv)),
            "ack_breaches": tally.escalations.get((lv, "ack"), 0),
            "action_breaches": tally.escalations.get((lv, "action"), 0),
        }
    queues: dict[str, dict[str, int]] = {}
    for (queue, lv), n in sorted(tally.queue_records.items()):
        queues.setdefault(queue, dict.fromkeys(LEVELS, 0))[lv] = n
    return {
        "levels": by_level,
        "queue_records": queues,
        "dead_letters": tally.dead_letters,
        "responder_updates": plan.updates,
        "still_waiting": plan.responders.backlog(),
        "differences_from_plan": differences(tally, plan.expected),
        "seconds": round(seconds, 1),
    }


LEVEL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("level", "the urgency level, P1 (most urgent) to P4"),
    ("decisions", "triage decisions the worker wrote at this level (dv.decisions.v1)"),
    (
        "queue records",
        "work the worker wrote to the protection queues at this level: new cases,"
        " updates, re-assessments, referrals (supervisor escalations not included)",
    ),
    ("acked", "queue records a simulated responder acknowledged before the period ended"),
    (
        "ack p50",
        "median event time from a queue record to its acknowledgement, over the acked records",
    ),
    ("ack p90", "90th percentile of the same"),
    (
        "acted",
        "queue records whose action (on scene, victim contacted, safety plan, referral)"
        " was sent before the period ended",
    ),
    ("action p50", "median event time from a queue record to its action, over the acted records"),
    ("action p90", "90th percentile of the same"),
    ("waiting", "queue records no responder had started on when the period ended"),
    (
        "ack breaches",
        "escalations the worker wrote to the supervisor queue: acknowledgement deadline passed",
    ),
    ("action breaches", "the same for the action deadline"),
)
"""The per-level table's columns, each with what it counts."""

QUEUE_COLUMNS_NOTE = (
    "queue: a protection queue (dv.queue.<name>.v1); P1..P4: queue records the worker"
    " wrote to it at that level"
)
LEVELS_TITLE = "Summary: per level (event time; responders short-staffed)"
QUEUES_TITLE = "Queue records per queue and level"


def _level_rows(figures: dict[str, Any]) -> list[list[str]]:
    rows = []
    for lv, row in figures["levels"].items():
        rows.append(
            [
                lv,
                str(row["decisions"]),
                str(row["queue_records"]),
                str(row["acknowledged"]),
                format_duration(row["ack_p50_s"]),
                format_duration(row["ack_p90_s"]),
                str(row["acted"]),
                format_duration(row["action_p50_s"]),
                format_duration(row["action_p90_s"]),
                str(row["waiting"]),
                str(row["ack_breaches"]),
                str(row["action_breaches"]),
            ]
        )
    return rows


def _queue_rows(figures: dict[str, Any]) -> list[list[str]]:
    return [
        [queue, *(str(counts[lv]) for lv in LEVELS)]
        for queue, counts in figures["queue_records"].items()
    ]


def _footer(figures: dict[str, Any]) -> list[str]:
    diff = figures["differences_from_plan"]
    check = (
        "the worker wrote exactly the counts of the plan's offline run of the same stream"
        if not diff
        else "the worker's counts differ from the plan's offline run: " + "; ".join(diff)
    )
    return [
        f"dead letters {figures['dead_letters']} (input records the worker refused)"
        f" · responder updates {figures['responder_updates']} (acknowledgements and actions"
        f" published) · still waiting at the end {figures['still_waiting']}",
        check,
        f"run time {figures['seconds']} s (wall clock: the only figure that varies"
        " between two runs with one seed)",
    ]


def plain_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width text table: every cell whole, the first column left-aligned and
    the others right-aligned, columns two spaces apart, no colour."""
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([title, line(columns), rule, *(line(row) for row in rows)])


def render_plain(figures: dict[str, Any]) -> str:
    """The summary as plain text (for a log file): tables, then what each column counts."""
    names = [name for name, _ in LEVEL_COLUMNS]
    width = max(len(name) for name in names)
    out = [
        plain_table(LEVELS_TITLE, names, _level_rows(figures)),
        *(f"  {name.ljust(width)}  {meaning}" for name, meaning in LEVEL_COLUMNS),
        "",
        plain_table(QUEUES_TITLE, ["queue", *LEVELS], _queue_rows(figures)),
        f"  {QUEUE_COLUMNS_NOTE}",
        "",
        *_footer(figures),
    ]
    return "\n".join(out) + "\n"


def _render(figures: dict[str, Any], console: Console) -> None:
    """Rich tables on a terminal wide enough for them; else (a file, a pipe, a narrow
    terminal) the plain text, where nothing is cut. Column definitions either way."""
    levels = Table(title=LEVELS_TITLE, box=box.SIMPLE_HEAD)
    for name, _ in LEVEL_COLUMNS:
        levels.add_column(name.replace(" ", "\n"), justify="right", no_wrap=True)
    for row in _level_rows(figures):
        levels.add_row(*row)
    wanted = Measurement.get(console, console.options.update_width(10_000), levels).maximum
    if not console.is_terminal or wanted > console.width:
        console.file.write(render_plain(figures))
        console.file.flush()
        return
    console.print(levels)
    width = max(len(name) for name, _ in LEVEL_COLUMNS)
    for name, meaning in LEVEL_COLUMNS:
        console.print(f"  {name.ljust(width)}  {meaning}", markup=False, highlight=False)
    queues = Table(title=QUEUES_TITLE, box=box.SIMPLE_HEAD)
    queues.add_column("queue", no_wrap=True)
    for lv in LEVELS:
        queues.add_column(lv, justify="right", no_wrap=True)
    for row in _queue_rows(figures):
        queues.add_row(*row)
    console.print(queues)
    console.print(f"  {QUEUE_COLUMNS_NOTE}", markup=False, highlight=False)
    for line in _footer(figures):
        console.print(line, markup=False, highlight=False)
