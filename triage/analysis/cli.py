"""Commands of the replay toolkit: ``record``, ``compare``, ``report``, ``whatif``.

Registered on the main group by :mod:`triage.cli`. Heavy imports stay inside
the commands so that ``triage --help`` stays fast. Mistakes raise
``click.UsageError`` (exit 2) or a :class:`~triage.errors.TriageError` (exit 1),
which the entry point prints as one line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from triage.errors import TriageError

_FILE = click.Path(dir_okay=False, path_type=Path)
UNITS_OPTION = click.option(
    "--units",
    "units_path",
    type=_FILE,
    default=None,
    help="Commune→unit CSV. Default: the packaged illustrative directory.",
)
RULES_OPTION = click.option(
    "--rules",
    "rules_path",
    type=_FILE,
    default=None,
    help="Rule-set file (TOML). Default: the packaged rule set.",
)


class EventTime(click.ParamType):
    """An ISO-8601 time with a zone (``2026-03-01T08:00:00Z``) or a date (UTC midnight)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value`` into an aware UTC datetime."""
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not an ISO-8601 date or time", param, ctx)
        if len(text) == 10:  # a bare date
            return when.replace(tzinfo=UTC)
        if when.tzinfo is None:
            self.fail(f"{text!r} has no time zone (add Z or +01:00)", param, ctx)
        return when.astimezone(UTC)


def _engine(rules_path: Path | None, units_path: Path | None) -> Any:
    from triage.pipeline.engine import Engine
    from triage.routing.units import load_units
    from triage.scoring.rules import load_rules

    return Engine(load_rules(rules_path), load_units(units_path))


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TriageError(f"{output}: cannot write ({exc.strerror})") from None
    click.echo(f"wrote {output}", err=True)


# -- record --------------------------------------------------------------------


def _topic_names(spec: str) -> list[str]:
    from triage.topics import Topics

    canonical = Topics()
    aliases = {
        "inputs": list(canonical.inputs),
        "outputs": list(canonical.outputs),
        "all": [*canonical.inputs, *canonical.outputs],
    }
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        for name in aliases.get(part, [part] if part else []):
            if name not in names:
                names.append(name)
    if not names:
        raise click.UsageError("--topics names no topic")
    return names


@click.command("record")
@click.option(
    "--topics",
    "topic_spec",
    default="inputs",
    show_default=True,
    help="Comma-separated canonical topic names, or inputs, outputs, all.",
)
@click.option("--from", "since", type=EventTime(), help="Keep records stamped at or after TIME.")
@click.option("--until", type=EventTime(), help="Keep records stamped before TIME, then stop.")
@click.option("--caught-up", is_flag=True, help="Stop at the end offsets taken at start.")
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap (default: TRIAGE_KAFKA_BOOTSTRAP)."
)
@click.option("-o", "--output", type=_FILE, required=True, help="Event log to write.")
def record(
    topic_spec: str,
    since: datetime | None,
    until: datetime | None,
    caught_up: bool,
    bootstrap: str | None,
    output: Path,
) -> None:
    """Record Kafka topics into an event log (JSON Lines) that replays like any other."""
    from triage.replay.recorder import Recorder, RecordWindow
    from triage.replay.records import write_log
    from triage.settings import load_settings

    settings = load_settings(**({"kafka_bootstrap": bootstrap} if bootstrap else {}))
    if settings.kafka_bootstrap is None:
        raise click.UsageError("no broker: pass --bootstrap or set TRIAGE_KAFKA_BOOTSTRAP")
    try:
        window = RecordWindow(since=since, until=until, caught_up=caught_up)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    recorder = Recorder(
        settings.kafka_bootstrap,
        _topic_names(topic_spec),
        naming=settings.topics,
        window=window,
        security=settings.kafka_python_security(),
        connect_timeout=settings.kafka_connect_timeout,
        source="--bootstrap" if bootstrap else "TRIAGE_KAFKA_BOOTSTRAP",
    )
    if not caught_up and until is None:
        click.echo("following the topics; Ctrl-C stops and writes the log", err=True)
    began = time.perf_counter()
    try:
        recorder.run()
    except KeyboardInterrupt:
        click.echo("interrupted: writing what was recorded", err=True)
    count = write_log(output, recorder.records())
    lossy = f"; {recorder.lossy} with non-UTF-8 keys or headers" if recorder.lossy else ""
    click.echo(
        f"recorded {count} of {recorder.read} records to {output}"
        f" in {time.perf_counter() - began:.1f}s{lossy}",
        err=True,
    )


# -- compare -------------------------------------------------------------------


def _teams(spec: str) -> dict[str, int] | None:
    from triage.demo.responders import DEFAULT_TEAMS

    if spec == "sized":
        return None
    if spec == "demo":
        return dict(DEFAULT_TEAMS)
    teams = dict(DEFAULT_TEAMS)
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        queue, _, size = part.partition("=")
        if queue not in DEFAULT_TEAMS or not size.isdigit() or int(size) < 1:
            raise click.UsageError(
                f"--teams takes sized, demo or QUEUE=N,... with QUEUE one of "
                f"{', '.join(DEFAULT_TEAMS)} (not {part!r})"
            )
        teams[queue] = int(size)
    return teams


@click.command("compare")
@click.argument("log", type=_FILE)
@click.option(
    "--rules",
    "rules_paths",
    type=_FILE,
    multiple=True,
    help="Give it twice: the baseline rule set A, then the candidate B.",
)
@UNITS_OPTION
@click.option(
    "--format", "fmt", type=click.Choice(["markdown", "html", "json"]), default="markdown"
)
@click.option(
    "--teams",
    default="sized",
    show_default=True,
    help="Responders per queue: sized (the demo's teams grown to carry A), demo, or Q=N,...",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=25,
    show_default=True,
    help="Changed cases listed in markdown (html: 200; json: all).",
)
@click.option("-o", "--output", type=_FILE, default=None, help="Write here instead of stdout.")
def compare(
    log: Path,
    rules_paths: tuple[Path, ...],
    units_path: Path | None,
    fmt: str,
    teams: str,
    limit: int,
    output: Path | None,
) -> None:
    """Replay LOG under two rule sets and report what changes, case by case."""
    from triage.analysis.compare import compare_log
    from triage.analysis.views import comparison_html, comparison_markdown
    from triage.replay.records import read_log

    if len(rules_paths) != 2:
        raise click.UsageError("give --rules twice: the baseline A, then the candidate B")
    team_sizes = _teams(teams)
    engine_a = _engine(rules_paths[0], units_path)
    engine_b = _engine(rules_paths[1], units_path)
    result = compare_log(list(read_log(log)), engine_a, engine_b, team_sizes)
    if fmt == "json":
        text = orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    elif fmt == "html":
        text = comparison_html(result, log_name=log.name, limit=max(limit, 200))
    else:
        text = comparison_markdown(result, log_name=log.name, limit=limit)
    _emit(text, output)


# -- report --------------------------------------------------------------------


@click.command("report")
@click.argument("source", type=_FILE)
@click.option("-o", "--output", type=_FILE, required=True, help="HTML page to write.")
@click.option("--json", "json_path", type=_FILE, default=None, help="Also write the figures.")
@RULES_OPTION
@UNITS_OPTION
def report(
    source: Path,
    output: Path,
    json_path: Path | None,
    rules_path: Path | None,
    units_path: Path | None,
) -> None:
    """Build the yearly review (static HTML) from an event log, or from its outputs.

    An event log is replayed offline first; an outputs file (``replay -o``, or
    ``record --topics outputs``) gives every figure but channels and response times.
    """
    from triage.analysis.report import review_file
    from triage.analysis.report_page import render_report

    began = time.perf_counter()
    review = review_file(source, _engine(rules_path, units_path))
    _emit(render_report(review, source_name=source.name), output)
    if json_path is not None:
        figures = orjson.dumps(review.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
        _emit(figures, json_path)
    click.echo(f"report built in {time.perf_counter() - began:.1f}s", err=True)


# -- whatif --------------------------------------------------------------------


def _capacities(spec: str) -> list[int | None]:
    out: list[int | None] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part == "unlimited":
            out.append(None)
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise click.UsageError(f"--capacity takes whole numbers or unlimited, not {part!r}")
    if not out:
        raise click.UsageError("--capacity names no capacity")
    return out


@click.command("whatif")
@click.argument("log", type=_FILE)
@click.option(
    "--capacity",
    default="24",
    show_default=True,
    help="Responders in the shared pool; several separated by commas; 'unlimited' too.",
)
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown")
@click.option("-o", "--output", type=_FILE, default=None, help="Write here instead of stdout.")
@RULES_OPTION
@UNITS_OPTION
def whatif(
    log: Path,
    capacity: str,
    fmt: str,
    output: Path | None,
    rules_path: Path | None,
    units_path: Path | None,
) -> None:
    """The same work first-in-first-out versus by triage priority, with the same people.

    LOG is an event log (replayed offline) or an outputs file (its queue records).
    """
    from triage.analysis.capture import capture as run_capture
    from triage.analysis.capture import parse_output
    from triage.analysis.views import whatif_markdown
    from triage.analysis.whatif import what_if
    from triage.events.outputs import QueueRecord
    from triage.replay.records import read_log
    from triage.topics import Topics

    sizes = _capacities(capacity)
    first = next(iter(read_log(log)), None)
    if first is not None and first.topic in Topics().outputs:
        parsed = (parse_output(r) for r in read_log(log) if r.topic.startswith("dv.queue."))
        queue_records = [r for r in parsed if isinstance(r, QueueRecord)]
    else:
        run = run_capture(read_log(log), _engine(rules_path, units_path))
        queue_records = run.outputs.queue_records
    result = what_if(queue_records, sizes)
    if fmt == "json":
        text = orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = whatif_markdown(result, log_name=log.name)
    _emit(text, output)


COMMANDS = (record, compare, report, whatif)
"""The commands :mod:`triage.cli` registers."""
