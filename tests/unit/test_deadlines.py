"""Deadline arithmetic: calendar spans in real time, working days on the local calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.pipeline.deadlines import LOCAL, add_span
from triage.scoring.rules import Span


def paris(*args: int) -> datetime:
    """A local (Europe/Paris) wall-clock time."""
    return datetime(*args, tzinfo=LOCAL)  # type: ignore[misc]


def span(text: str) -> Span:
    """A parsed duration."""
    return Span.model_validate(text)


class TestAddSpan:
    def test_calendar_span_adds_exact_time(self) -> None:
        """A span in minutes is added exactly."""
        start = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

        assert add_span(start, span("5m")) == datetime(2026, 1, 5, 10, 5, tzinfo=UTC)

    def test_calendar_span_counts_real_hours_across_dst(self) -> None:
        """72 h across the spring DST change are 72 real hours (the local clock shows 73)."""
        start = paris(2026, 3, 27, 10, 0).astimezone(UTC)

        due = add_span(start, span("72h"))

        assert due.astimezone(UTC) - start == timedelta(hours=72)
        assert due.astimezone(LOCAL).hour == 11

    def test_calendar_span_from_local_time_is_real_time_in_utc(self) -> None:
        """A 72 h span from a Paris wall-clock time is 72 real hours, returned in UTC."""
        start = paris(2026, 3, 27, 10, 0)

        due = add_span(start, span("72h"))

        assert due.tzinfo is UTC
        assert due == start.astimezone(UTC) + timedelta(hours=72)

    def test_friday_plus_two_working_days_is_tuesday(self) -> None:
        """Friday 10:00 plus 2 working days is Tuesday 10:00 local time."""
        due = add_span(paris(2026, 1, 9, 10, 0), span("2wd"))

        assert due.astimezone(LOCAL) == paris(2026, 1, 13, 10, 0)

    def test_working_days_across_spring_dst(self) -> None:
        """Across the spring DST change Friday 10:00 + 2wd is still Tuesday 10:00 local."""
        due = add_span(paris(2026, 3, 27, 10, 0), span("2wd"))

        assert due.astimezone(LOCAL) == paris(2026, 3, 31, 10, 0)
        assert due == datetime(2026, 3, 31, 8, 0, tzinfo=UTC)  # CEST, UTC+2

    def test_working_days_across_autumn_dst(self) -> None:
        """Across the autumn DST change Friday 10:00 + 2wd is still Tuesday 10:00 local."""
        due = add_span(paris(2026, 10, 23, 10, 0), span("2wd"))

        assert due == datetime(2026, 10, 27, 9, 0, tzinfo=UTC)  # CET, UTC+1

    def test_working_days_use_the_local_date(self) -> None:
        """Friday 23:30 UTC is already Saturday in Paris, so + 1wd is Monday 00:30 local."""
        due = add_span(datetime(2026, 1, 9, 23, 30, tzinfo=UTC), span("1wd"))

        assert due.astimezone(LOCAL) == paris(2026, 1, 12, 0, 30)

    @pytest.mark.parametrize(
        ("start", "days", "expected"),
        [
            ((2026, 1, 5), 1, (2026, 1, 6)),  # Monday → Tuesday
            ((2026, 1, 8), 5, (2026, 1, 15)),  # Thursday → next Thursday
            ((2026, 1, 10), 1, (2026, 1, 12)),  # Saturday → Monday
            ((2026, 1, 11), 2, (2026, 1, 13)),  # Sunday → Tuesday
        ],
    )
    def test_weekends_are_skipped(
        self, start: tuple[int, int, int], days: int, expected: tuple[int, int, int]
    ) -> None:
        """Saturdays and Sundays never count as working days."""
        due = add_span(paris(*start, 9, 15), span(f"{days}wd"))

        assert due.astimezone(LOCAL) == paris(*expected, 9, 15)

    def test_result_is_utc(self) -> None:
        """Deadlines come back timezone-aware, in UTC."""
        due = add_span(paris(2026, 1, 9, 10, 0), span("2wd"))

        assert due.tzinfo is UTC

    @given(
        start=st.datetimes(
            min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
        ),
        days=st.integers(1, 15),
    )
    def test_working_days_property(self, start: datetime, days: int) -> None:
        """N working days later is a weekday, at the same local time, N weekdays further on."""
        local_start = start.astimezone(LOCAL)

        due = add_span(start, span(f"{days}wd")).astimezone(LOCAL)

        assert due.weekday() < 5
        assert due.time() == local_start.time()
        between = [
            local_start.date() + timedelta(days=d)
            for d in range(1, (due.date() - local_start.date()).days + 1)
        ]
        assert sum(day.weekday() < 5 for day in between) == days
        assert due > start
