"""The yearly review: its figures agree with the engine's own counts, and the page stands alone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
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
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord, write_log
from triage.replay.summary import Summary
from triage.testing import (
    decision_id_for,
    make_ack,
    make_action,
    make_alarm,
    make_closed,
    make_override,
    make_report,
    make_watermark,
    record_of,
)

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


@pytest.fixture(scope="module")
def summary(year: list[LogRecord], engine: Engine) -> Summary:
    """The engine's own counts for the year (what ``replay --offline --json`` prints)."""
    counts = Summary()
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
            assert mine[key] == theirs[key], key
        assert sum(row["review"] for row in mine["sla_breaches"].values()) > 0
        assert mine["queue_records_by_kind"]["reassessment"] == theirs["reassessments_due"]
        reviews = [sum(m.values()) for m in mine["reviews_by_month_and_level"].values()]
        assert sum(reviews) == theirs["reassessments_due"]
        for lv in LEVELS:
            by_month = mine["reviews_by_month_and_level"].values()
            assert sum(m[lv] for m in by_month) == theirs["reassessments_due_by_level"][lv]
        assert mine["dormant_by_level"] == theirs["cases_dormant_by_level"]
        assert sum(mine["reactivated_by_kind"].values()) == theirs["cases_reactivated"]
        assert mine["escalations_by_stage"]["conflict"] == theirs["conflicting_resends"]
        assert sum(theirs["dead_letters"].values()) > 0
        assert sum(theirs["overrides"].values()) > 0

    def test_response_times(self, review: YearReview, summary: Summary) -> None:
        """Counts and percentiles of time to acknowledge and to act match, level by level
        (new information only: reviews' answers are apart on both sides)."""
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
        met = sum(row["review"]["met"] for row in figures.values())
        answers = ("time_to_review_ack", "time_to_review_action")
        total = sum(theirs[key][lv]["n"] for key in answers for lv in LEVELS)
        late = sum(summary.late[(lv, f"review_{st}")] for lv in LEVELS for st in ("ack", "action"))
        assert met == total - late > 0

    def test_compliance_per_level_adds_up_to_the_queues(self, review: YearReview) -> None:
        """Deadlines met and missed per level add up to those per queue, stage by stage,
        and each level carries the packaged rules' target."""
        figures = review.to_dict()
        by_level, by_queue = figures["sla_by_level"], figures["compliance_by_queue"]
        for stage in ("ack", "action", "review"):
            for what in ("met", "missed"):
                assert sum(row[stage][what] for row in by_level.values()) == sum(
                    row[stage][what] for row in by_queue.values()
                ), (stage, what)
        assert {lv: row["target"] for lv, row in by_level.items()} == {
            "P1": 0.95,
            "P2": 0.9,
            "P3": 0.9,
            "P4": 0.9,
        }
        assert figures["sla_targets_rules"] == Engine().rules.version

    def test_reports_and_alarms_are_the_assessments(self, review: YearReview) -> None:
        """Reports by channel and alarms add up to the decisions they caused, month by month."""
        figures = review.to_dict()
        kinds = figures["decisions_by_kind"]
        assert sum(figures["reports_by_channel"].values()) == kinds["assessment"]
        assert sum(figures["alarms"].values()) == kinds["alarm"]
        assert sum(figures["reports_by_month"].values()) == kinds["assessment"]
        work = figures["work_by_month"].values()
        reports = sum(m["new_cases"] + m["repeat_reports"] for m in work)
        assert reports == kinds["assessment"]
        assert sum(m["alarms"] for m in work) == kinds["alarm"]
        assert sum(m["overrides"] for m in work) == sum(figures["overrides"].values())
        by_month = figures["decisions_by_month"]
        for lv in LEVELS:
            assert sum(m[lv] for m in by_month.values()) == figures["decisions_by_level"][lv]
        # Twelve months decided; a later one may hold inputs only (a closure in the first
        # hour of January, Paris time, after a log that ends on 31 December UTC).
        assert len([m for m in by_month.values() if any(m.values())]) == 12

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
            assert {"ack": ack, "action": action, "review": review} == theirs["sla_breaches"][lv]
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
            "work-by-month",
            "escalations-by-month",
            "sla-level",
            "dormancy-by-month",
            "cases-at-end",
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
            "escalations_by_month_and_stage",
            "reviews_by_month_and_level",
            "dormant_by_level",
            "reactivated_by_kind",
        ):
            theirs = full[key]
            if isinstance(theirs, dict) and set(theirs) - set(mine[key]):
                # The full log may add a month that holds inputs only (a closure in the
                # first hour of January, Paris time, after a log ending 31 December UTC).
                extra = set(theirs) - set(mine[key])
                assert all(not any(theirs[m].values()) for m in extra), key
                theirs = {m: c for m, c in theirs.items() if m not in extra}
            assert mine[key] == theirs, key
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


def _at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


P3_ANSWERS = {"separation": "yes", "substance_abuse": "yes"}  # 4 points: P3, 30-day reviews
A, B, C, D = "V-000A01", "V-000B02", "V-000C03", "V-000D04"


@pytest.fixture(scope="module")
def small() -> list[LogRecord]:
    """Four victims over the first half of 2026, every kind of work and escalation once.

    A (P3): report 5 Jan, answered; reviews 4 Feb (answered), 6 Mar and 5 Apr (not);
    dormant 5 May; a report on 3 Jun reactivates her, not answered (ack and action missed).
    B (P4): report 10 Feb, not answered (ack and action missed); its resend on 11 Feb with
    another commune (conflict); closed 20 Feb; a report on 2 Mar (a new case again),
    raised to P3 by an override an hour later, closed 3 Mar before any deadline.
    C (P1): a grave-danger phone alarm on 20 Jan, acknowledged in 2 min, pressed again
    at 6 min (merged), acted on at 10 min; closed the next day.
    D (P3): report 2 Jan, answered; reviews 1 Feb, 3 Mar, 2 Apr all answered; dormant 2 May.
    """
    events: list[Any] = []

    def answered(report: Any, queue: str, at: datetime) -> None:
        did = decision_id_for(report)
        ref = report.victim_ref
        events.append(make_ack(victim_ref=ref, decision_id=did, queue=queue, time=at))
        later = at + timedelta(minutes=5)
        events.append(make_action(victim_ref=ref, decision_id=did, queue=queue, time=later))

    a1 = make_report(victim_ref=A, time=_at(1, 5), indicators=P3_ANSWERS)
    events.append(a1)
    answered(a1, "follow-up", _at(1, 5, 10, 3))
    answered(a1, "follow-up", _at(2, 4, 11))  # the first review
    events.append(make_report(victim_ref=A, time=_at(6, 3), indicators=P3_ANSWERS))

    b1 = make_report(victim_ref=B, time=_at(2, 10))
    events.append(b1)
    events.append(make_report(id=b1.id, victim_ref=B, time=_at(2, 11), commune="62080"))
    events.append(make_closed(victim_ref=B, time=_at(2, 20)))
    b2 = make_report(victim_ref=B, time=_at(3, 2))
    events.append(b2)
    events.append(
        make_override(
            victim_ref=B,
            decision_id=decision_id_for(b2),
            new_level="P3",
            time=_at(3, 2, 11),
        )
    )
    events.append(make_closed(victim_ref=B, time=_at(3, 3)))

    c1 = make_alarm(victim_ref=C, time=_at(1, 20))
    events.append(c1)
    events.append(
        make_ack(
            victim_ref=C, decision_id=decision_id_for(c1), queue="immediate", time=_at(1, 20, 10, 2)
        )
    )
    events.append(make_alarm(victim_ref=C, time=_at(1, 20, 10, 6)))
    events.append(
        make_action(
            victim_ref=C,
            decision_id=decision_id_for(c1),
            queue="immediate",
            time=_at(1, 20, 10, 10),
        )
    )
    events.append(make_closed(victim_ref=C, time=_at(1, 21)))

    d1 = make_report(victim_ref=D, time=_at(1, 2), indicators=P3_ANSWERS)
    events.append(d1)
    answered(d1, "follow-up", _at(1, 2, 11))
    for review in (_at(2, 1), _at(3, 3), _at(4, 2)):
        answered(d1, "follow-up", review + timedelta(hours=1))

    events.append(make_watermark(time=_at(6, 30, 12)))
    return [record_of(e) for e in sorted(events, key=lambda e: e.time)]


@pytest.fixture(scope="module")
def small_review(small: list[LogRecord], engine: Engine) -> YearReview:
    """The review of :func:`small`."""
    return review_log(small, engine)


class TestSmallLog:
    """Exact figures of a hand-made half year (see :func:`small`)."""

    def test_work_per_month_by_kind(self, small_review: YearReview) -> None:
        """New cases, repeat reports, alarms (merged apart), overrides and reviews are
        separate series, month by month."""
        work = small_review.to_dict()["work_by_month"]
        kinds = ("new_cases", "repeat_reports", "alarms", "alarms_merged", "overrides", "reviews")

        assert {m: tuple(row[k] for k in kinds) for m, row in work.items()} == {
            "2026-01": (2, 0, 1, 1, 0, 0),  # A, D; C's alarm and its second press
            "2026-02": (1, 0, 0, 0, 0, 2),  # B; reviews of D (1 Feb) and A (4 Feb)
            "2026-03": (1, 0, 0, 0, 1, 2),  # B again after her closure, its override
            "2026-04": (0, 0, 0, 0, 0, 2),
            "2026-05": (0, 0, 0, 0, 0, 0),  # A and D dormant
            "2026-06": (0, 1, 0, 0, 0, 0),  # A reactivated
        }

    def test_escalations_by_kind_per_month(self, small_review: YearReview) -> None:
        """Missed acknowledgements, actions and reviews, and the conflicting resend, each
        in the month it fell due."""
        figures = small_review.to_dict()

        assert figures["tail_months"] == []
        assert figures["escalations_by_month_and_stage"] == {
            "2026-01": {"ack": 0, "action": 0, "review": 0, "conflict": 0},
            "2026-02": {"ack": 1, "action": 1, "review": 0, "conflict": 1},  # B
            "2026-03": {"ack": 0, "action": 0, "review": 2, "conflict": 0},  # A, 6 Mar review
            "2026-04": {"ack": 0, "action": 0, "review": 2, "conflict": 0},  # A, 5 Apr review
            "2026-05": {"ack": 0, "action": 0, "review": 0, "conflict": 0},
            "2026-06": {"ack": 1, "action": 1, "review": 0, "conflict": 0},  # A reactivated
        }
        assert figures["escalations_by_stage"] == {
            "ack": 2,
            "action": 2,
            "review": 4,
            "conflict": 1,
        }

    def test_sla_per_level_against_the_rules_targets(self, small_review: YearReview) -> None:
        """Deadlines met and missed per level and stage, judged by the level's target."""
        by_level = small_review.to_dict()["sla_by_level"]

        def row(lv: str, stage: str) -> tuple[Any, ...]:
            st = by_level[lv][stage]
            return st["met"], st["missed"], st["share"], st["on_target"]

        assert by_level["P1"]["target"] == 0.95
        assert row("P1", "ack") == (1, 0, 1.0, True)  # C, in 2 minutes
        assert row("P1", "action") == (1, 0, 1.0, True)
        assert row("P3", "ack") == (2, 1, 2 / 3, False)  # A and D in time, A in June not
        assert row("P3", "action") == (2, 1, 2 / 3, False)
        assert row("P3", "review") == (8, 4, 8 / 12, False)  # D 3 + A 1 answered, 2 missed
        assert row("P4", "ack") == (0, 1, 0.0, False)  # B in February
        assert row("P2", "ack") == (0, 0, None, None)

    def test_dormant_and_reactivated(self, small_review: YearReview) -> None:
        """Dormancy and reactivation per month; cases by status at the end."""
        figures = small_review.to_dict()

        dormancy = {m: tuple(r.values()) for m, r in figures["dormancy_by_month"].items()}
        assert dormancy == {
            "2026-01": (0, 0, 1),  # (gone dormant, reactivated, closed): C closed
            "2026-02": (0, 0, 1),  # B closed
            "2026-03": (0, 0, 1),  # B closed again
            "2026-04": (0, 0, 0),
            "2026-05": (2, 0, 0),  # D (2 May) and A (5 May)
            "2026-06": (0, 1, 0),  # A
        }
        assert figures["dormant_by_level"] == {"P1": 0, "P2": 0, "P3": 2, "P4": 0}
        assert figures["reactivated_by_kind"] == {"assessment": 1, "alarm": 0, "override": 0}
        assert figures["cases_at_end"] == {
            "P1": {"open": 0, "dormant": 0, "closed": 1},
            "P2": {"open": 0, "dormant": 0, "closed": 0},
            "P3": {"open": 1, "dormant": 1, "closed": 1},
            "P4": {"open": 0, "dormant": 0, "closed": 0},
        }

    def test_the_page_shows_them(self, small_review: YearReview) -> None:
        """The page's tables carry the same figures: work, escalations, targets, dormancy."""
        parser = _Tables()
        parser.feed(render_report(small_review, source_name="small.jsonl"))
        tables = {k: {r[0][0]: r[1:] for r in rows if r} for k, rows in parser.tables.items()}

        assert [_value(c) for c in tables["work-by-month"]["2026-03"]] == [1, 0, 0, 1, 0, 2]
        assert [_value(c) for c in tables["work-by-month"]["year"]] == [4, 1, 1, 1, 1, 6]
        assert [_value(c) for c in tables["escalations-by-month"]["year"]] == [2, 2, 4, 1, 9]
        p3 = tables["sla-level"]["P3"]
        assert (p3[0][0], _value(p3[0])) == ("90.0 %", 0.9)
        assert [_value(c) for c in p3[7:10]] == [8, 4, round(8 / 12, 6)]
        assert [_value(c) for c in tables["dormancy-by-month"]["year"]] == [2, 1, 3]
        assert [_value(c) for c in tables["cases-at-end"]["all"]] == [1, 1, 2]

    def test_from_outputs_closures_are_unknown(
        self, small: list[LogRecord], small_review: YearReview, engine: Engine
    ) -> None:
        """From the outputs, a report after a closure counts as a repeat report and closed
        cases as open; escalations, reviews and dormancy are the same."""
        mine = review_outputs(replay_offline(small, engine), engine.rules).to_dict()
        full = small_review.to_dict()

        assert mine["work_by_month"]["2026-03"]["new_cases"] == 0
        assert mine["work_by_month"]["2026-03"]["repeat_reports"] == 1
        assert mine["cases_at_end"]["P3"] == {"open": 2, "dormant": 1, "closed": None}
        for key in ("escalations_by_month_and_stage", "dormant_by_level", "reactivated_by_kind"):
            assert mine[key] == full[key], key
        assert mine["sla_by_level"]["P4"]["ack"] == {
            "met": None,
            "missed": 1,
            "share": None,
            "on_target": None,
        }

    def test_months_after_the_last_report_are_named(
        self, small: list[LogRecord], engine: Engine
    ) -> None:
        """A month after the last report or alarm (here July: only A's review of 3 July,
        the log running on to 5 July) is named on the page as holding only what fell due."""
        longer = [*small[:-1], record_of(make_watermark(time=_at(7, 5)))]
        review = review_log(longer, engine)

        assert review.to_dict()["tail_months"] == ["2026-07"]
        assert review.to_dict()["work_by_month"]["2026-07"]["reviews"] == 1
        assert "2026-07: after the last report or alarm" in render_report(review, source_name="x")
