"""The yearly review: its figures agree with the engine's own counts, and the page stands alone."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from triage.analysis.report import YearReview, review_file, review_log, review_outputs
from triage.analysis.report_page import render_report
from triage.cli import cli
from triage.errors import EventLogError
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.pipeline.observations import Observation
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord, write_log
from triage.replay.summary import Summary

LEVELS = ("P1", "P2", "P3", "P4")
VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "line", "circle", "polyline"}


@pytest.fixture(scope="module")
def year(engine: Engine) -> list[LogRecord]:
    """A small synthetic year: 600 victims over 365 days, 2 % malformed records."""
    config = GeneratorConfig(victims=600, days=365, start=date(2026, 1, 1), seed=11, bad_rate=0.02)
    return list(generate_log(config, engine))


@pytest.fixture(scope="module")
def outputs(year: list[LogRecord], engine: Engine) -> list[LogRecord]:
    """The offline replay's output records."""
    return list(replay_offline(year, engine))


class _DangerNowSummary(Summary):
    """The replay summary without the acknowledgements and actions of scheduled reviews
    (observations marked stage ``review``): the review keeps those out of the levels'
    response times and counts them in its own compliance column."""

    def add(self, observations: Iterable[Observation]) -> None:
        super().add(o for o in observations if not (o.stage == "review" and o.kind in _ANSWERS))


_ANSWERS = ("acked", "actioned")


@pytest.fixture(scope="module")
def summary(year: list[LogRecord], engine: Engine) -> Summary:
    """The engine's own counts for the year (what ``replay --offline --json`` prints),
    reviews' answers left out (see :class:`_DangerNowSummary`)."""
    counts = _DangerNowSummary()
    for _ in replay_offline(year, engine, counts):
        pass
    return counts


@pytest.fixture(scope="module")
def review(year: list[LogRecord], engine: Engine) -> YearReview:
    """The review built from the input log."""
    return review_log(year, engine)


@pytest.fixture(scope="module")
def page(review: YearReview) -> str:
    """The rendered HTML page."""
    return render_report(review, source_name="year.jsonl")


class _Tables(HTMLParser):
    """Collects every table with an id: rows of (text, data-value) cells; checks nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.stack: list[str] = []
        self.tags: list[str] = []
        self._table: str | None = None
        self._cell: tuple[list[str], str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)
        found = dict(attrs)
        if tag == "table" and found.get("id"):
            self._table = found["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td" and self._table is not None:
            self._cell = ([], found.get("data-value"))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack[-1:] == [tag], f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "td" and self._cell is not None and self._table is not None:
            text, value = self._cell
            self.tables[self._table][-1].append(("".join(text), value))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0].append(data)


@pytest.fixture(scope="module")
def tables(page: str) -> dict[str, dict[str, list[tuple[str, str | None]]]]:
    """Each table of the page by id, its body rows by their first cell."""
    parser = _Tables()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed elements: {parser.stack}"
    return {
        ident: {row[0][0]: row[1:] for row in rows if row} for ident, rows in parser.tables.items()
    }


def _value(cell: tuple[str, str | None]) -> Any:
    return None if cell[1] is None else orjson.loads(cell[1])


class TestFiguresAgreeWithTheEngine:
    """Every figure the engine counts itself comes out the same in the review."""

    def test_decisions_queues_breaches_overrides_dead_letters(
        self, review: YearReview, summary: Summary
    ) -> None:
        """Levels, kinds, queue records, missed deadlines, overrides and dead letters match."""
        mine, theirs = review.to_dict(), summary.to_dict()
        for key in (
            "decisions_by_level",
            "decisions_by_kind",
            "queue_records",
            "sla_breaches",
            "overrides",
            "overrides_rejected",
            "dead_letters",
            "unknown_communes",
        ):
            if key == "sla_breaches":
                danger_now = {
                    lv: {st: n for st, n in row.items() if st != "review"}
                    for lv, row in mine[key].items()
                }
                assert danger_now == theirs[key], key
                for lv, row in mine[key].items():
                    assert row["review"] == summary.breaches[(lv, "review")], lv
                continue
            assert mine[key] == theirs[key], key
        assert sum(row["review"] for row in mine["sla_breaches"].values()) > 0
        assert mine["queue_records_by_kind"]["reassessment"] == theirs["reassessments_due"]
        assert sum(theirs["dead_letters"].values()) > 0
        assert sum(theirs["overrides"].values()) > 0

    def test_response_times(self, review: YearReview, summary: Summary) -> None:
        """Counts and percentiles of time to acknowledge and to act match, level by level."""
        mine, theirs = review.to_dict(), summary.to_dict()
        for stage in ("time_to_ack", "time_to_action"):
            for lv in LEVELS:
                ours = {k: mine[stage][lv][k] for k in ("n", "p50_s", "p90_s")}
                assert ours == theirs[stage][lv], (stage, lv)

    def test_deadlines_met_are_the_on_time_acknowledgements(
        self, review: YearReview, summary: Summary
    ) -> None:
        """Deadlines met, over all queues, are the acknowledgements and actions not late."""
        figures = review.to_dict()["compliance_by_queue"]
        theirs = summary.to_dict()
        for stage, key in (("ack", "time_to_ack"), ("action", "time_to_action")):
            met = sum(row[stage]["met"] for row in figures.values())
            total = sum(theirs[key][lv]["n"] for lv in LEVELS)
            late = sum(summary.late[(lv, stage)] for lv in LEVELS)
            assert met == total - late, stage
            missed = sum(row[stage]["missed"] for row in figures.values())
            assert missed == sum(theirs["sla_breaches"][lv][stage] for lv in LEVELS)
        missed = sum(row["review"]["missed"] for row in figures.values())
        assert missed == sum(summary.breaches[(lv, "review")] for lv in LEVELS)
        assert sum(row["review"]["met"] for row in figures.values()) > 0

    def test_reports_and_alarms_are_the_assessments(self, review: YearReview) -> None:
        """Reports by channel and alarms add up to the decisions they caused, month by month."""
        figures = review.to_dict()
        kinds = figures["decisions_by_kind"]
        assert sum(figures["reports_by_channel"].values()) == kinds["assessment"]
        assert sum(figures["alarms"].values()) == kinds["alarm"]
        assert sum(figures["reports_by_month"].values()) == kinds["assessment"]
        by_month = figures["decisions_by_month"]
        for lv in LEVELS:
            assert sum(m[lv] for m in by_month.values()) == figures["decisions_by_level"][lv]
        assert len(by_month) == 12

    def test_repeat_victims(self, review: YearReview) -> None:
        """Victims by number of incidents add up to the victims and to the assessments."""
        figures = review.to_dict()
        repeat = figures["repeat_victims"]
        assert sum(repeat["by_incidents"].values()) == repeat["victims"]
        moves = sum(repeat["re_reports"].values())
        assert repeat["victims"] + moves == sum(figures["decisions_by_level"].values())
        assert repeat["re_reports"]["raised"] > 0


class TestPage:
    """The HTML page: the same figures, self-contained, with charts."""

    def test_tables_carry_the_engine_figures(
        self, tables: dict[str, Any], summary: Summary
    ) -> None:
        """The page's tables hold, as exact values, the engine's levels, times and counts."""
        theirs = summary.to_dict()
        for lv in LEVELS:
            assert _value(tables["levels"][lv][0]) == theirs["decisions_by_level"][lv]
            for ident, key in (
                ("time-to-ack", "time_to_ack"),
                ("time-to-action", "time_to_action"),
            ):
                n, p50, p90 = (_value(c) for c in tables[ident][lv][:3])
                assert (n, p50, p90) == tuple(theirs[key][lv][k] for k in ("n", "p50_s", "p90_s"))
            ack, action, review = (_value(c) for c in tables["breaches"][lv])
            assert {"ack": ack, "action": action} == theirs["sla_breaches"][lv]
            assert review == summary.breaches[(lv, "review")]
        dead = {k: _value(v[0]) for k, v in tables["dead-letters"].items()}
        assert dead == theirs["dead_letters"]
        overrides = {k: _value(v[0]) for k, v in tables["overrides"].items()}
        assert overrides == theirs["overrides"]
        rejected = {k: _value(v[0]) for k, v in tables["overrides-rejected"].items()}
        assert rejected == theirs["overrides_rejected"]

    def test_every_section_is_there(self, tables: dict[str, Any]) -> None:
        """Channels, levels, times, compliance per queue and unit, repeats, overrides, dead
        letters all have their table."""
        assert {
            "channels",
            "alarms",
            "levels",
            "queue-records",
            "time-to-ack",
            "time-to-action",
            "sla-queue",
            "sla-unit",
            "breaches",
            "repeat-victims",
            "re-reports",
            "overrides",
            "overrides-by-reason",
            "overrides-rejected",
            "dead-letters",
            "dead-letters-by-topic",
        } <= set(tables)
        assert len(tables["sla-unit"]) > 5

    def test_self_contained_without_script(self, page: str) -> None:
        """No script, no stylesheet link, no image or font fetched: one file is the page."""
        lowered = page.lower()
        for forbidden in ("<script", "<link", "src=", "href=", "url(", "@import", "<iframe"):
            assert forbidden not in lowered, forbidden
        assert lowered.count("http") == lowered.count('xmlns="http://www.w3.org/2000/svg"')

    def test_charts_are_inline_svg_with_titles(self, page: str) -> None:
        """Charts are inline SVG, each titled for people and for screen readers."""
        titles = re.findall(r"<svg [^>]*><title>([^<]+)</title><text [^>]*>([^<]+)</text>", page)
        assert len(titles) == page.count("<svg ") >= 9
        assert all(spoken == shown for spoken, shown in titles)


class TestOutputsFile:
    """The review built from output records instead of the input log."""

    def test_same_output_figures_without_inputs(
        self, outputs: list[LogRecord], review: YearReview
    ) -> None:
        """From outputs, every output figure is the same; channels and times are missing."""
        mine, full = review_outputs(outputs).to_dict(), review.to_dict()
        for key in (
            "decisions_by_level",
            "decisions_by_month",
            "queue_records",
            "sla_breaches",
            "overrides",
            "overrides_rejected",
            "dead_letters",
            "repeat_victims",
        ):
            assert mine[key] == full[key], key
        assert mine["time_to_ack"] is None
        assert mine["reports_by_channel"] == {}

    def test_page_says_what_is_missing(self, outputs: list[LogRecord]) -> None:
        """The page from outputs says that channels and response times need the input log."""
        text = render_report(review_outputs(outputs), source_name="outputs.jsonl")
        assert text.count("Not in an outputs file") == 2

    def test_file_kind_is_detected(
        self, year: list[LogRecord], outputs: list[LogRecord], engine: Engine, tmp_path: Path
    ) -> None:
        """An input log is replayed, an outputs file is read, anything else is refused."""
        log, out, other = tmp_path / "log.jsonl", tmp_path / "out.jsonl", tmp_path / "x.jsonl"
        write_log(log, year[:200])
        write_log(out, outputs[:200])
        write_log(other, [LogRecord("elsewhere", None, year[0].timestamp, b"{}")])
        assert review_file(log, engine).source == "log"
        assert review_file(out, engine).source == "outputs"
        with pytest.raises(EventLogError, match="neither an input nor an output"):
            review_file(other, engine)


class TestReportCommand:
    """``triage report``."""

    def test_writes_the_page_and_the_figures(
        self, year: list[LogRecord], review: YearReview, tmp_path: Path
    ) -> None:
        """The command writes the HTML page and, on request, the same figures as JSON."""
        log, html, figures = tmp_path / "year.jsonl", tmp_path / "r.html", tmp_path / "r.json"
        write_log(log, year)
        result = CliRunner().invoke(
            cli, ["report", str(log), "-o", str(html), "--json", str(figures)]
        )
        assert result.exit_code == 0, result.output
        assert html.read_text().startswith("<!DOCTYPE html>")
        assert orjson.loads(figures.read_bytes()) == orjson.loads(orjson.dumps(review.to_dict()))
