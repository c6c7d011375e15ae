"""Running the worker: provisioning, the Faust worker loop, graceful shutdown."""

from __future__ import annotations

import dataclasses
import os
import time

import faust
from prometheus_client import start_http_server

from triage.observability.logging import configure_logging, log_names, logging_config
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.routing.units import load_units
from triage.scoring.rules import load_rules
from triage.settings import TriageSettings
from triage.streaming.app import TABLE_NAME, Tuning, create_app
from triage.streaming.consistency import METRICS_LINGER, broker_watch, preflight, report
from triage.streaming.ports import check_ports, port_error
from triage.streaming.watchdog import EXIT_BROKER_INCONSISTENT, EXIT_STALLED, StallWatch

HOLD_ENV = "TESTONLY_TRIAGE_HOLD_PARTITIONS"
"""Tests only: comma-separated partitions whose records a worker receives and never
processes (:attr:`Tuning.held_partitions`), to freeze one partition while the others run.
Outside the ``TRIAGE_`` settings on purpose: no deployment sets it."""


def _tuning_for_tests(tuning: Tuning | None) -> Tuning | None:
    held = os.environ.get(HOLD_ENV, "").strip()
    if not held:
        return tuning
    partitions = frozenset(int(p) for p in held.split(","))
    return dataclasses.replace(tuning or Tuning(), held_partitions=partitions)


def run_worker(settings: TriageSettings, *, tuning: Tuning | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM. Needs ``settings.kafka_bootstrap``.

    Before Faust starts, the ports are checked (a taken one is a one-line
    :class:`~triage.errors.ConfigError`), then the broker (:func:`~triage.streaming.
    consistency.preflight`): topics missing or partitioned otherwise, or committed
    offsets past the logs' ends, exit with ``EXIT_BROKER_INCONSISTENT`` and one error line.
    """
    check_ports(settings)
    tuning = _tuning_for_tests(tuning)
    engine = Engine(load_rules(settings.rules_file), load_units(settings.units_file))
    metrics = TriageMetrics(rules=engine.rules, units=engine.units)
    watch = StallWatch(settings.stall_timeout)
    app, shell = create_app(settings, engine, tuning=tuning, metrics=metrics, watch=watch)
    metrics.watch_open_cases(shell.states)
    serve_metrics(settings, metrics)
    configure_logging(settings.log_format, settings.log_level, log_names(settings))
    problems = preflight(settings, app.tables[TABLE_NAME].changelog_topic.get_topic_name())
    if problems:
        report(problems, metrics, when="start")
        _linger(settings)
        raise SystemExit(EXIT_BROKER_INCONSISTENT)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_format, settings.log_level, log_names(settings)),
        quiet=True,
        redirect_stdouts=False,
    )
    # Faust's terminal spinner sets the root logger to DEBUG (to spin on every record)
    # whenever the level is WARNING or above: every library's debug call then builds a
    # record (measured: 7.6 % of the worker's time). A service has no terminal to spin.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if watch.tripped:
            raise SystemExit(EXIT_STALLED) from None
        if broker_watch(app).tripped:
            _linger(settings)
            raise SystemExit(EXIT_BROKER_INCONSISTENT) from None
        raise


def serve_metrics(settings: TriageSettings, metrics: TriageMetrics) -> None:
    """Serve ``/metrics`` (unless ``metrics_port`` is 0); a port that cannot be had (taken
    since :func:`~triage.streaming.ports.check_ports`, say) is a
    :class:`~triage.errors.ConfigError` naming the setting, not a traceback."""
    if not settings.metrics_port:
        return
    try:
        start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry
        )
    except OSError as exc:
        raise port_error("metrics", settings.metrics_host, settings.metrics_port, exc) from None


def _linger(settings: TriageSettings) -> None:
    """Keep ``/metrics`` up a moment, so that a scrape sees why the worker leaves."""
    if settings.metrics_port:
        time.sleep(METRICS_LINGER)
