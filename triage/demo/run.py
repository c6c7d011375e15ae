"""``triage demo``: the whole pipeline on one machine, start to summary."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from triage.broker.admin import group_lag
from triage.broker.embedded import EmbeddedBroker
from triage.broker.provision import provision
from triage.demo.monitor import OutputMonitor
from triage.demo.responders import ResponderPool
from triage.errors import TriageError
from triage.events.wire import to_millis
from triage.generate import GeneratorConfig, generate_log
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
    workdir: Path = Path("var/demo")
    timeout: float = 600.0
    delivery_timeout: float = 60.0


def run_demo(config: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the demo end to end; returns the summary figures (also printed)."""
    console = console or Console()
    config.workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        settings = load_settings(clock_mode="replay", metrics_port=config.metrics_port, web_port=0)
        if settings.kafka_bootstrap is None:
            broker = stack.enter_context(EmbeddedBroker(log_path=config.workdir / "broker.log"))
            settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
            console.print(f"embedded broker at [bold]{broker.bootstrap}[/] (log {broker.log_path})")
        assert settings.kafka_bootstrap is not None
        provision(settings)
        worker = stack.enter_context(_worker(settings, config.workdir / "worker.log"))
        console.print(
            f"worker pid {worker.proc.pid}; metrics at [bold]http://127.0.0.1:{config.metrics_port}/metrics[/]"
        )
        engine = Engine(load_rules(settings.rules_file), load_units(settings.units_file))
        gen = GeneratorConfig(
            victims=config.victims, days=config.days, start=config.start,
            seed=config.seed, bad_rate=config.bad_rate,
        )  # fmt: skip
        records = [r for r in generate_log(gen, engine) if r.topic != "dv.case-updates.v1"]
        end = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
        end += timedelta(days=config.days)
        console.print(
            f"synthetic period {config.start} + {config.days} days: {len(records)} reports"
            f" and alarms ({config.bad_rate:.0%} malformed), played at "
            + ("full speed" if config.speed is None else f"{config.speed:,.0f}× real time")
        )
        pool = ResponderPool()
        monitor = OutputMonitor(
            settings.kafka_bootstrap,
            settings.topics,
            pool,
            security=settings.kafka_python_security(),
            delivery_timeout=config.delivery_timeout,
        )
        monitor.start()
        stack.callback(monitor.join, 10)
        stack.callback(monitor.stop)
        producer = make_producer(settings.kafka_bootstrap, settings.kafka_python_security())
        stack.callback(close_producer, producer)
        sent = [0]
        played: list[PlayResult | BaseException] = []

        def publish() -> None:
            try:
                played.append(play(
                    records, producer, settings.topics, speed=config.speed,
                    partitions=settings.partitions, watermark=False,
                    on_sent=lambda n, _r: sent.__setitem__(0, n),
                    delivery_timeout=config.delivery_timeout,
                ))  # fmt: skip
            except BaseException as exc:  # reported below, not lost in the thread
                played.append(exc)

        publisher = threading.Thread(target=publish, name="demo-publisher", daemon=True)
        began = time.monotonic()
        with Live(
            _progress(monitor, pool, sent[0], len(records)), console=console, refresh_per_second=4
        ) as live:
            publisher.start()
            while publisher.is_alive():
                _check(worker, monitor, began, config.timeout)
                live.update(_progress(monitor, pool, sent[0], len(records)))
                time.sleep(0.25)
            _check_played(played)
            # Let every partition's clock reach the end of the period, after the
            # responders have done what they could by then.
            _wait_caught_up(
                settings, worker, monitor, began, config.timeout, live, pool, sent, len(records)
            )
            monitor.advance_responders(end)
            time.sleep(1.0)
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
            _wait_caught_up(
                settings, worker, monitor, began, config.timeout, live, pool, sent, len(records)
            )
            live.update(_progress(monitor, pool, sent[0], len(records)))
        figures = _summary(monitor, pool, time.monotonic() - began)
        _render(figures, console)
        return figures


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
    began: float,
    timeout: float,
    live: Live,
    pool: ResponderPool,
    sent: list[int],
    total: int,
) -> None:
    quiet_since = time.monotonic()
    last = -1
    while True:
        _check(worker, monitor, began, timeout)
        live.update(_progress(monitor, pool, sent[0], total))
        with monitor.lock:
            seen = len(monitor.tally.ids) + monitor.tally.dead_letters + monitor.tally.updates_sent
        if seen != last:
            last, quiet_since = seen, time.monotonic()
        if time.monotonic() - quiet_since > 1.5 and _lag(settings) == 0:
            return
        time.sleep(0.25)


def _progress(monitor: OutputMonitor, pool: ResponderPool, sent: int, total: int) -> Group:
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
        line = (
            f"published {sent}/{total} · dead letters {tally.dead_letters} · "
            f"responder updates {tally.updates_sent} · waiting for a responder {pool.backlog()}"
        )
    return Group(table, line)


def _summary(monitor: OutputMonitor, pool: ResponderPool, seconds: float) -> dict[str, Any]:
    with monitor.lock:
        tally = monitor.tally
        by_level: dict[str, dict[str, Any]] = {}
        for lv in LEVELS:
            handled = [h for h in pool.handled if h.level.value == lv]
            acks = [h.ack_seconds for h in handled]
            actions = [h.action_seconds for h in handled]
            by_level[lv] = {
                "decisions": tally.decisions.get(lv, 0),
                "handled": len(handled),
                "ack_p50_s": percentile(acks, 50),
                "ack_p90_s": percentile(acks, 90),
                "action_p50_s": percentile(actions, 50),
                "action_p90_s": percentile(actions, 90),
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
            "responder_updates": tally.updates_sent,
            "still_waiting": pool.backlog(),
            "seconds": round(seconds, 1),
        }


def _render(figures: dict[str, Any], console: Console) -> None:
    levels = Table(title="Summary: per level (event time; responders short-staffed)")
    for column in ("level", "decisions", "handled", "ack p50", "ack p90", "action p50",
                   "action p90", "ack breaches", "action breaches"):  # fmt: skip
        levels.add_column(column, justify="right")
    for lv, row in figures["levels"].items():
        levels.add_row(
            lv,
            str(row["decisions"]),
            str(row["handled"]),
            *(
                format_duration(row[k])
                for k in ("ack_p50_s", "ack_p90_s", "action_p50_s", "action_p90_s")
            ),
            str(row["ack_breaches"]),
            str(row["action_breaches"]),
        )
    console.print(levels)
    queues = Table(title="Queue records per queue and level")
    queues.add_column("queue")
    for lv in LEVELS:
        queues.add_column(lv, justify="right")
    for queue, counts in figures["queue_records"].items():
        queues.add_row(queue, *(str(counts[lv]) for lv in LEVELS))
    console.print(queues)
    console.print(
        f"dead letters {figures['dead_letters']} · responder updates {figures['responder_updates']}"
        f" · still waiting at the end {figures['still_waiting']} · {figures['seconds']} s"
    )
