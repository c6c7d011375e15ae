"""Run summaries: nearest-rank percentiles and the counts folded from observations."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from triage.events.base import Level
from triage.pipeline.engine import Engine
from triage.pipeline.observations import (
    Acked,
    Actioned,
    Breached,
    Decided,
    Dormant,
    Duplicate,
    Ignored,
    IgnoredReason,
    Overridden,
    OverrideProblem,
    OverrideRejection,
    Reactivated,
    ReassessmentDue,
    RefusalReason,
    Refused,
    Routed,
    SlaStage,
)
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord
from triage.replay.render import render_summary
from triage.replay.summary import Summary, percentile
from triage.testing import after, decision_id_for, make_ack, make_raw, make_report, record_of
from triage.topics import Topics


class TestPercentile:
    def test_empty_is_none(self) -> None:
        """There is no percentile of nothing."""
        assert percentile([], 50) is None

    @pytest.mark.parametrize(
        ("q", "expected"), [(0, 1.0), (25, 1.0), (50, 2.0), (90, 4.0), (100, 4.0)]
    )
    def test_nearest_rank(self, q: float, expected: float) -> None:
        """Percentiles are the nearest-rank value, never interpolated."""
        assert percentile([4.0, 1.0, 3.0, 2.0], q) == expected

    @given(st.lists(st.floats(0, 1e6), min_size=1, max_size=30), st.floats(0, 100))
    def test_is_one_of_the_values(self, values: list[float], q: float) -> None:
        """A percentile is always one of the samples, between their min and max."""
        result = percentile(values, q)

        assert result in values


class TestSummary:
    def test_empty_summary_has_every_level(self) -> None:
        """An empty summary still lists every level with zero counts."""
        figures = Summary().to_dict()

        assert figures["decisions_by_level"] == dict.fromkeys([lv.value for lv in Level], 0)
        assert figures["queue_records"] == {}
        assert figures["time_to_ack"]["P1"] == {"n": 0, "p50_s": None, "p90_s": None}

    def test_folds_each_kind_of_observation(self) -> None:
        """Each observation kind lands in its own count."""
        summary = Summary()

        summary.add(
            [
                Decided("P1", "alarm", unit_flagged=True),
                Decided("P4", "assessment"),
                Routed("P1", "immediate", "new"),
                Refused(RefusalReason.INVALID_JSON),
                Breached("P1", "immediate", SlaStage.ACK),
                Acked("P1", "immediate", seconds=120.0, late=False),
                Acked("P1", "immediate", seconds=600.0, late=True),
                Actioned("P1", "immediate", seconds=900.0, late=False),
                Overridden("P2", "up"),
                OverrideRejection("P2", "down", OverrideProblem.MISSING_SECOND_REVIEWER),
                Duplicate(),
                ReassessmentDue("", ""),
                Ignored(IgnoredReason.ALREADY_CLOSED),
            ]
        )
        figures = summary.to_dict()

        assert figures["decisions_by_level"] == {"P1": 1, "P2": 0, "P3": 0, "P4": 1}
        assert figures["decisions_by_kind"] == {"alarm": 1, "assessment": 1}
        assert figures["unknown_communes"] == 1
        assert figures["queue_records"] == {"immediate": {"P1": 1, "P2": 0, "P3": 0, "P4": 0}}
        assert figures["dead_letters"] == {"invalid_json": 1}
        assert figures["sla_breaches"]["P1"] == {"ack": 1, "action": 0, "review": 0}
        assert figures["time_to_ack"]["P1"] == {"n": 2, "p50_s": 120.0, "p90_s": 600.0}
        assert figures["time_to_action"]["P1"]["n"] == 1
        assert figures["overrides"] == {"up": 1}
        assert figures["overrides_rejected"] == {"missing_second_reviewer": 1}
        assert (figures["duplicates"], figures["reassessments_due"]) == (1, 1)
        assert figures["updates_ignored"] == {"already_closed": 1}

    def test_review_answers_are_kept_apart(self) -> None:
        """Answers to scheduled reviews (stage ``review``) get their own response times and
        late counts; the level's response times hold only new information."""
        summary = Summary()

        summary.add(
            [
                Acked("P1", "immediate", seconds=240.0),
                Actioned("P1", "immediate", seconds=840.0),
                Acked("P1", "high-risk", review=True, seconds=7200.0),
                Acked("P1", "high-risk", review=True, seconds=90000.0, late=True),
                Actioned("P1", "high-risk", review=True, seconds=86400.0),
                Breached("P1", "high-risk", SlaStage.REVIEW),
                Breached("P1", "immediate", SlaStage.ACTION),
            ]
        )
        figures = summary.to_dict()

        assert figures["time_to_ack"]["P1"] == {"n": 1, "p50_s": 240.0, "p90_s": 240.0}
        assert figures["time_to_action"]["P1"] == {"n": 1, "p50_s": 840.0, "p90_s": 840.0}
        assert figures["time_to_review_ack"]["P1"] == {"n": 2, "p50_s": 7200.0, "p90_s": 90000.0}
        assert figures["time_to_review_action"]["P1"]["n"] == 1
        assert figures["time_to_review_ack"]["P2"] == {"n": 0, "p50_s": None, "p90_s": None}
        assert figures["sla_breaches"]["P1"] == {"ack": 0, "action": 1, "review": 1}
        assert summary.late[("P1", "review_ack")] == 1
        assert summary.late[("P1", "ack")] == 0

    def test_reviews_dormancy_and_reactivation_by_level(self) -> None:
        """Reviews due, cases gone dormant and cases reactivated are counted per level,
        with their totals."""
        summary = Summary()

        summary.add(
            [
                ReassessmentDue("P2", "high-risk"),
                ReassessmentDue("P2", "high-risk"),
                ReassessmentDue("P1", "high-risk"),
                Dormant("P3"),
                Dormant("P4"),
                Dormant("P4"),
                Reactivated("P2", "assessment"),
            ]
        )
        figures = summary.to_dict()

        assert figures["reassessments_due"] == 3
        assert figures["reassessments_due_by_level"] == {"P1": 1, "P2": 2, "P3": 0, "P4": 0}
        assert figures["cases_dormant"] == 3
        assert figures["cases_dormant_by_level"] == {"P1": 0, "P2": 0, "P3": 1, "P4": 2}
        assert figures["cases_reactivated"] == 1
        assert figures["cases_reactivated_by_level"] == {"P1": 0, "P2": 1, "P3": 0, "P4": 0}

    def test_is_json_and_free_of_victims(self, engine: Engine, topics: Topics) -> None:
        """The summary of a replay is plain JSON and names no victim."""
        report = make_report(indicators={"weapon": "yes"})
        records = [
            record_of(report),
            record_of(
                make_ack(
                    decision_id=decision_id_for(report), queue="high-risk", time=after(minutes=9)
                )
            ),
            LogRecord(topics.reports, "V-0001A2", after(minutes=10), make_raw(b"{").value),
        ]
        summary = Summary()

        list(replay_offline(records, engine, summary))
        figures = summary.to_dict()

        assert figures["events"] == 3
        assert figures["decisions_by_level"]["P2"] == 1
        assert figures["time_to_ack"]["P2"] == {"n": 1, "p50_s": 540.0, "p90_s": 540.0}
        assert figures["dead_letters"] == {"invalid_json": 1}
        assert b"V-0001A2" not in orjson.dumps(figures)


class TestRenderSummary:
    def test_reviews_and_dormancy_have_their_rows(self) -> None:
        """The terminal summary shows reviews in their own table, and the cases gone
        dormant and reactivated among the other outcomes."""
        summary = Summary()
        summary.add(
            [
                Decided("P3", "assessment"),
                Acked("P3", "follow-up", seconds=3600.0),
                ReassessmentDue("P3", "follow-up"),
                Acked("P3", "follow-up", review=True, seconds=2 * 86400.0),
                Dormant("P3"),
                Dormant("P4"),
                Reactivated("P3", "assessment"),
            ]
        )
        console = Console(record=True, width=200)

        render_summary(summary.to_dict(), console)
        text = console.export_text()

        rows = [
            [cell.strip() for cell in line.split("│")[1:-1]]
            for line in text.splitlines()
            if line.startswith("│")
        ]

        assert "Scheduled reviews per level" in text
        new_info, review = (row for row in rows if row[0] == "P3")
        assert new_info[:4] == ["P3", "1", "1", "60 min"]  # 1 decision, its ack in an hour
        assert review[:5] == ["P3", "1", "1", "2.0 d", "2.0 d"]  # 1 review due, acked in 2 d
        assert review[-1] == "1"  # gone dormant at P3 (the other at P4)
        other = {row[0]: row[1] for row in rows if len(row) == 2}
        assert other["cases gone dormant (reviews without incident)"] == "2"
        assert other["dormant cases reactivated"] == "1"
