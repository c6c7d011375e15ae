"""The ``triage`` command line: a thin layer over the library.

Mistakes print one plain line on stderr and exit non-zero (2 for usage, 1 for
a failed check or a run error). Ctrl-C exits with status 130 and no error line.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from triage.errors import TriageError
from triage.params import FiniteFloatRange

RULES_OPTION = click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rule-set file (TOML). Default: the packaged rule set.",
)
UNITS_OPTION = click.option(
    "--units",
    "units_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Commune→unit CSV. Default: the packaged illustrative directory.",
)


PUBLISH_TIMEOUT = 30.0
"""Seconds ``triage publish`` waits for the broker to acknowledge the event (the same
figure as :data:`triage.publishing.PUBLISH_TIMEOUT`)."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one plain line on stderr and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _source(bootstrap: str | None) -> str:
    """Where the broker's address came from, for errors that cannot reach it."""
    return "--bootstrap" if bootstrap else "TRIAGE_KAFKA_BOOTSTRAP"


def _engine(rules_path: Path | None, units_path: Path | None) -> Any:
    from triage.pipeline.engine import Engine
    from triage.routing.units import load_units
    from triage.scoring.rules import load_rules

    return Engine(load_rules(rules_path), load_units(units_path))


@click.group()
@click.version_option(package_name="triage")
def cli() -> None:
    """Triage of domestic-violence reports: score, route, escalate, replay."""


# -- rules -------------------------------------------------------------------


@cli.group()
def rules() -> None:
    """Rule-set files."""


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def rules_check(file: Path) -> None:
    """Validate a rule-set FILE; names the field at fault when it is wrong."""
    from triage.scoring.rules import load_rules

    ruleset = load_rules(file)
    click.echo(f"{file}: ok (version {ruleset.version})")


# -- schemas -----------------------------------------------------------------


@cli.group()
def schemas() -> None:
    """JSON Schemas of the event contracts (schemas/)."""


@schemas.command("export")
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas")
)
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema per event type and version into DIR."""
    from triage.events.schema_export import export_schemas

    written = export_schemas(directory)
    click.echo(f"wrote {len(written)} schemas to {directory}")


@schemas.command("check")
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas")
)
def schemas_check(directory: Path) -> None:
    """Fail when DIR and the event models disagree."""
    from triage.events.schema_export import check_schemas

    check_schemas(directory)
    click.echo(f"{directory}: schemas match the models")


# -- generate ----------------------------------------------------------------


@cli.command()
@click.option("--victims", type=click.IntRange(min=1), default=12_000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True)
@click.option(
    "--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2026-01-01", show_default=True
)
@click.option("--seed", type=int, default=62, show_default=True)
@click.option(
    "--bad-rate",
    type=FiniteFloatRange(0.0, 0.5),
    default=0.0,
    show_default=True,
    help="Share of malformed records to mix in.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@RULES_OPTION
@UNITS_OPTION
def generate(
    victims: int,
    days: int,
    start: datetime,
    seed: int,
    bad_rate: float,
    output: Path,
    rules_path: Path | None,
    units_path: Path | None,
) -> None:
    """Write a seeded synthetic event log (JSON Lines). Synthetic data only."""
    from triage.generate import GeneratorConfig, generate_log
    from triage.replay.records import write_log

    config = GeneratorConfig(
        victims=victims,
        days=days,
        start=date(start.year, start.month, start.day),
        seed=seed,
        bad_rate=bad_rate,
    )
    began = time.perf_counter()
    count = write_log(output, generate_log(config, _engine(rules_path, units_path)))
    click.echo(f"wrote {count} records to {output} in {time.perf_counter() - began:.1f}s", err=True)


# -- replay ------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--offline", is_flag=True, help="Run the engine here, without a broker.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Offline: write every output record (JSON Lines) here.",
)
@click.option("--json", "as_json", is_flag=True, help="Offline: print the summary as JSON.")
@click.option(
    "--expect",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Offline: compare the outputs with this file (as -o writes it); exit 1 on a difference.",
)
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap (default: TRIAGE_KAFKA_BOOTSTRAP)."
)
@click.option(
    "--speed",
    default="max",
    show_default=True,
    help="Event-time seconds per wall second (e.g. 3600), or 'max'.",
)
@click.option("--no-watermark", is_flag=True, help="Do not send end-of-log clock watermarks.")
@click.option(
    "--delivery-timeout",
    type=FiniteFloatRange(min=0.0),
    default=60.0,
    show_default=True,
    help="Seconds to wait at the end for the broker to acknowledge every record.",
)
@RULES_OPTION
@UNITS_OPTION
def replay(
    file: Path,
    offline: bool,
    output: Path | None,
    as_json: bool,
    expect: Path | None,
    bootstrap: str | None,
    speed: str,
    no_watermark: bool,
    delivery_timeout: float,
    rules_path: Path | None,
    units_path: Path | None,
) -> None:
    """Replay an event log FILE: offline through the engine, or onto Kafka.

    Onto Kafka, every record must be acknowledged: exit 1 if any was not.
    """
    if offline:
        _replay_offline(file, output, as_json, rules_path, units_path, expect)
    elif expect is not None:
        fail("--expect needs --offline", 2)
    else:
        _replay_kafka(file, bootstrap, speed, not no_watermark, delivery_timeout)


def _replay_offline(
    file: Path,
    output: Path | None,
    as_json: bool,
    rules_path: Path | None,
    units_path: Path | None,
    expect: Path | None = None,
) -> None:
    from triage.replay.offline import replay_offline
    from triage.replay.records import read_log, write_log
    from triage.replay.render import render_summary
    from triage.replay.summary import Summary

    engine = _engine(rules_path, units_path)
    summary = Summary()
    began = time.perf_counter()
    outputs: Any = replay_offline(read_log(file), engine, summary)
    if expect is not None:
        outputs = list(outputs)
    if output is not None:
        write_log(output, outputs)
    else:
        for _ in outputs:
            pass
    figures = summary.to_dict()
    figures["rules_version"] = engine.rules.version
    figures["seconds"] = round(time.perf_counter() - began, 2)
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    else:
        render_summary(figures)
    if expect is not None:
        _check_expected(outputs, expect, to_stderr=as_json)


def _check_expected(outputs: list[Any], expect: Path, *, to_stderr: bool) -> None:
    """Golden check: print a readable diff and exit 1 when outputs differ from ``expect``."""
    from triage.replay.golden import compare_outputs
    from triage.replay.records import read_log

    diff = compare_outputs(list(read_log(expect)), outputs)
    if not diff.ok:
        click.echo(diff.render(), nl=False, err=to_stderr)
        fail(f"outputs differ from {expect} (regenerate with -o {expect} if intended)")
    click.echo(f"outputs match {expect} ({len(outputs)} records)", err=True)


def _parse_speed(speed: str) -> float | None:
    if speed == "max":
        return None
    try:
        value = float(speed)
    except ValueError:
        fail(f"--speed must be a number or 'max', not {speed!r}", 2)
    if not math.isfinite(value):
        fail(f"--speed must be a finite number or 'max', not {speed!r}", 2)
    if value <= 0:
        fail("--speed must be positive", 2)
    return value


def _replay_kafka(
    file: Path, bootstrap: str | None, speed: str, watermark: bool, delivery_timeout: float
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from triage.replay.player import close_producer, make_producer, play, undelivered_message
    from triage.replay.records import read_log
    from triage.settings import load_settings

    pace = _parse_speed(speed)
    settings = load_settings(**({"kafka_bootstrap": bootstrap} if bootstrap else {}))
    if settings.kafka_bootstrap is None:
        fail("no broker: pass --bootstrap or set TRIAGE_KAFKA_BOOTSTRAP", 2)
    total = sum(1 for _ in read_log(file))
    producer = make_producer(
        settings.kafka_bootstrap,
        settings.kafka_python_security(),
        connect_timeout=settings.kafka_connect_timeout,
        source=_source(bootstrap),
    )
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task("publishing", total=total)
            result = play(
                read_log(file),
                producer,
                settings.topics,
                speed=pace,
                partitions=settings.partitions,
                watermark=watermark,
                on_sent=lambda n, _r: progress.update(task, completed=n) if n % 500 == 0 else None,
                delivery_timeout=delivery_timeout,
            )
            progress.update(task, completed=result.records)
    finally:
        close_producer(producer)
    if result.undelivered:
        fail(undelivered_message(result))
    rate = result.records / result.seconds if result.seconds > 0 else float("inf")
    click.echo(
        f"published {result.records} records and {result.watermarks} watermarks"
        f" in {result.seconds:.1f}s ({rate:,.0f}/s)"
    )


# -- broker, topics, worker, config, publish ----------------------------------


@cli.command()
def broker() -> None:
    """Run the embedded Tansu broker in the foreground; prints its bootstrap address."""
    from triage.broker.embedded import EmbeddedBroker

    with EmbeddedBroker() as running:
        click.echo(f"bootstrap {running.bootstrap} (log {running.log_path}); Ctrl-C stops it")
        try:
            while running.pid is not None:
                time.sleep(1.0)
        except KeyboardInterrupt:
            click.echo("stopping broker", err=True)


@cli.group()
def topics() -> None:
    """Kafka topics of the pipeline."""


@topics.command("create")
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap (default: TRIAGE_KAFKA_BOOTSTRAP)."
)
def topics_create(bootstrap: str | None) -> None:
    """Create the missing topics (idempotent): inputs, decisions, queues, dead letters."""
    from triage.broker.provision import provision, topic_specs
    from triage.settings import load_settings

    settings = load_settings(**({"kafka_bootstrap": bootstrap} if bootstrap else {}))
    if settings.kafka_bootstrap is None:
        fail("no broker: pass --bootstrap or set TRIAGE_KAFKA_BOOTSTRAP", 2)
    created = set(provision(settings, source=_source(bootstrap)))
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        click.echo(f"{state:8} {spec.name} ({spec.partitions} partitions)")


@cli.command()
def worker() -> None:
    """Run a stream worker. Without TRIAGE_KAFKA_BOOTSTRAP, an embedded broker starts too."""
    from triage.broker.admin import wait_for_broker
    from triage.broker.embedded import EmbeddedBroker
    from triage.broker.provision import provision
    from triage.observability.logging import configure_logging, log_names
    from triage.settings import load_settings
    from triage.streaming.ports import check_ports

    settings = load_settings()
    # Before the stream libraries load (seconds), a taken port or a wrong broker address
    # fails fast, in one line. The Kafka client logs through the worker's pipeline.
    check_ports(settings)
    if settings.kafka_bootstrap is not None:
        configure_logging(settings.log_format, settings.log_level, log_names(settings))
        wait_for_broker(
            settings.kafka_bootstrap,
            settings.kafka_connect_timeout,
            security=settings.kafka_python_security(),
            source="TRIAGE_KAFKA_BOOTSTRAP",
        )
    from triage.streaming.run import run_worker

    if settings.kafka_bootstrap is not None:
        run_worker(settings)
        return
    with EmbeddedBroker() as embedded:
        click.echo(f"embedded broker at {embedded.bootstrap}", err=True)
        settings = settings.model_copy(update={"kafka_bootstrap": embedded.bootstrap})
        provision(settings)
        run_worker(settings)


@cli.group()
def config() -> None:
    """Settings."""


@config.command("show")
def config_show() -> None:
    """Print the effective settings (secrets masked) as JSON."""
    from triage.settings import load_settings

    click.echo(orjson.dumps(load_settings().masked(), option=orjson.OPT_INDENT_2).decode())


@cli.command()
@click.argument("file", type=click.File("rb"), default="-")
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap (default: TRIAGE_KAFKA_BOOTSTRAP)."
)
def publish(file: Any, bootstrap: str | None) -> None:
    """Validate one event (JSON, from FILE or stdin) and publish it to its topic."""
    from triage.publishing import PublishRefused, send_event, validate_event
    from triage.replay.player import close_producer, make_producer
    from triage.settings import load_settings

    settings = load_settings(**({"kafka_bootstrap": bootstrap} if bootstrap else {}))
    if settings.kafka_bootstrap is None:
        fail("no broker: pass --bootstrap or set TRIAGE_KAFKA_BOOTSTRAP", 2)
    stamp = datetime.now(UTC)  # noqa: TID251 - the record timestamp of a live publication
    try:
        publication = validate_event(file.read(), settings.topics, stamp)
    except PublishRefused as exc:
        fail(str(exc), 2 if exc.usage else 1)
    producer = make_producer(
        settings.kafka_bootstrap,
        settings.kafka_python_security(),
        connect_timeout=settings.kafka_connect_timeout,
        source=_source(bootstrap),
    )
    try:
        send_event(producer, publication, PUBLISH_TIMEOUT)
    except PublishRefused as exc:
        fail(str(exc))
    finally:
        close_producer(producer)
    click.echo(f"published {publication.event.type} {publication.event.id} to {publication.topic}")


@cli.command()
@click.option("--victims", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--days", type=click.IntRange(min=1, max=90), default=7, show_default=True)
@click.option("--seed", type=int, default=62, show_default=True)
@click.option("--bad-rate", type=FiniteFloatRange(0.0, 0.5), default=0.01, show_default=True)
@click.option(
    "--speed",
    default="7200",
    show_default=True,
    help="Event-time seconds per wall second, or 'max'.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9464,
    envvar="TRIAGE_METRICS_PORT",
    show_default=True,
    show_envvar=True,
    help="The worker's /metrics port (0: none).",
)
@click.option(
    "--console-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="The web console's port on 127.0.0.1 (0: no console).",
)
@click.option("--json", "as_json", is_flag=True, help="Also print the summary as JSON.")
def demo(
    victims: int,
    days: int,
    seed: int,
    bad_rate: float,
    speed: str,
    metrics_port: int,
    console_port: int,
    as_json: bool,
) -> None:
    """Run everything: embedded broker, worker, a synthetic week, simulated responders."""
    from triage.demo.run import DemoConfig, run_demo

    config = DemoConfig(
        victims=victims,
        days=days,
        seed=seed,
        bad_rate=bad_rate,
        speed=_parse_speed(speed),
        metrics_port=metrics_port,
        console_port=console_port,
    )
    figures = run_demo(config)
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


@cli.command()
@click.option(
    "--parts",
    default="offline,baseline,faust-ceiling,pipeline,fencing,latency,year",
    show_default=True,
    help="Comma-separated parts to run.",
)
@click.option("--victims", type=click.IntRange(min=10), default=3000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True)
@click.option("--latency-seconds", type=FiniteFloatRange(min=1), default=30.0, show_default=True)
def bench(parts: str, victims: int, days: int, latency_seconds: float) -> None:
    """Measure throughput and latency on the embedded broker; prints JSON."""
    from triage.bench.runner import PARTS, BenchConfig, run_bench

    known = set(PARTS)
    chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
    if not chosen or not set(chosen) <= known:
        fail(f"--parts takes some of {', '.join(sorted(known))}", 2)
    config = BenchConfig(victims=victims, days=days, parts=chosen, latency_seconds=latency_seconds)
    figures = run_bench(config, progress=lambda m: click.echo(f"· {m}", err=True))
    click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


# -- commands defined next to their code ---------------------------------------
# (one line each: cli.add_command(<click command>), imported lazily enough to keep
# `triage --help` fast)
cli.add_command(__import__("triage.settings_reference", fromlist=["_"]).settings_doc)
cli.add_command(__import__("triage.analysis.cli", fromlist=["_"]).record)
cli.add_command(__import__("triage.analysis.cli", fromlist=["_"]).compare)
cli.add_command(__import__("triage.analysis.cli", fromlist=["_"]).report)
cli.add_command(__import__("triage.analysis.cli", fromlist=["_"]).whatif)
cli.add_command(__import__("triage.reliability.soak", fromlist=["_"]).soak)
cli.add_command(__import__("triage.console.cli", fromlist=["_"]).console)


def main() -> None:
    """Console entry point: usage mistakes and TriageErrors print one line."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            sys.exit(130)  # Ctrl-C: the user knows; no error line
        fail("aborted", 130)
    except click.UsageError as exc:
        fail(exc.format_message().splitlines()[0] if exc.format_message() else str(exc), 2)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except TriageError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
