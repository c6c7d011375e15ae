"""The ``triage`` command line: a thin layer over the library.

Mistakes print one plain line on stderr and exit non-zero (2 for usage, 1 for
a failed check or a run error).
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from triage.errors import TriageError

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


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one plain line on stderr and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


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
    type=click.FloatRange(0.0, 0.5),
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
    help="Write every output record (JSON Lines) here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@RULES_OPTION
@UNITS_OPTION
def replay(
    file: Path,
    offline: bool,
    output: Path | None,
    as_json: bool,
    rules_path: Path | None,
    units_path: Path | None,
) -> None:
    """Replay an event log FILE and print a summary."""
    from triage.replay.offline import replay_offline
    from triage.replay.records import read_log, write_log
    from triage.replay.render import render_summary
    from triage.replay.summary import Summary

    if not offline:
        fail("only --offline replay is available in this version", 2)
    engine = _engine(rules_path, units_path)
    summary = Summary()
    began = time.perf_counter()
    outputs = replay_offline(read_log(file), engine, summary)
    if output is not None:
        write_log(output, outputs)
    else:
        for _ in outputs:
            pass
    elapsed = time.perf_counter() - began
    figures = summary.to_dict()
    figures["rules_version"] = engine.rules.version
    figures["seconds"] = round(elapsed, 2)
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    else:
        render_summary(figures)


def main() -> None:
    """Console entry point: usage mistakes and TriageErrors print one line."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.UsageError as exc:
        fail(exc.format_message().splitlines()[0] if exc.format_message() else str(exc), 2)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except TriageError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)


if __name__ == "__main__":  # pragma: no cover
    main()
