"""Deadline arithmetic: calendar spans in real time, working days on the local calendar
(weekends and French public holidays skipped)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.pipeline.deadlines import LOCAL, add_span, is_working_day, public_holidays
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
        """N working days later is a working day, at the same local time, N working days on."""
        local_start = start.astimezone(LOCAL)

        due = add_span(start, span(f"{days}wd")).astimezone(LOCAL)

        assert due.weekday() < 5
        assert due.date() not in public_holidays(due.year)
        assert due.time() == local_start.time()
        between = [
            local_start.date() + timedelta(days=d)
            for d in range(1, (due.date() - local_start.date()).days + 1)
        ]
        working = [
            day for day in between if day.weekday() < 5 and day not in public_holidays(day.year)
        ]
        assert len(working) == days
        assert due > start


class TestPublicHolidays:
    """Working days skip French public holidays (metropolitan calendar, ``holidays``)."""

    def test_christmas_and_the_weekend_are_skipped(self) -> None:
        """Thursday 24 Dec 2026 10:00 + 2wd skips Friday 25 (Christmas) and the weekend."""
        due = add_span(paris(2026, 12, 24, 10, 0), span("2wd"))

        assert due.astimezone(LOCAL) == paris(2026, 12, 29, 10, 0)  # Tuesday
        assert due == datetime(2026, 12, 29, 9, 0, tzinfo=UTC)

    def test_ascension_thursday_is_skipped(self) -> None:
        """Wednesday 5 May 2027 10:00 + 1wd skips Ascension (Thursday 6 May): Friday 7."""
        due = add_span(paris(2027, 5, 5, 10, 0), span("1wd"))

        assert due.astimezone(LOCAL) == paris(2027, 5, 7, 10, 0)

    def test_from_a_public_holiday_counts_from_the_next_working_day(self) -> None:
        """From Ascension Thursday 6 May 2027 10:00, + 2wd is Monday 10 May 10:00."""
        due = add_span(paris(2027, 5, 6, 10, 0), span("2wd"))

        assert due.astimezone(LOCAL) == paris(2027, 5, 10, 10, 0)

    def test_a_bridge_of_holidays_across_the_new_year(self) -> None:
        """Thursday 31 Dec 2026 16:45 + 1wd skips 1 January and the weekend: Monday 4."""
        due = add_span(paris(2026, 12, 31, 16, 45), span("1wd"))

        assert due.astimezone(LOCAL) == paris(2027, 1, 4, 16, 45)

    def test_easter_and_whit_mondays_are_skipped(self) -> None:
        """Friday 10:00 + 2wd is Wednesday 10:00 when the Monday is a public holiday."""
        easter = add_span(paris(2026, 4, 3, 10, 0), span("2wd"))
        whit = add_span(paris(2026, 5, 22, 10, 0), span("2wd"))

        assert easter.astimezone(LOCAL) == paris(2026, 4, 8, 10, 0)
        assert whit.astimezone(LOCAL) == paris(2026, 5, 27, 10, 0)

    def test_two_holidays_in_a_row(self) -> None:
        """Tuesday 7 May 2024 + 2wd skips 8 May and Ascension (9 May): Monday 13 May."""
        due = add_span(paris(2024, 5, 7, 12, 0), span("2wd"))

        assert due.astimezone(LOCAL) == paris(2024, 5, 13, 12, 0)

    def test_a_holiday_on_a_weekend_takes_no_extra_day(self) -> None:
        """15 August 2026 is a Saturday: Friday 14 + 1wd is Monday 17 as usual (no substitute)."""
        due = add_span(paris(2026, 8, 14, 9, 0), span("1wd"))

        assert due.astimezone(LOCAL) == paris(2026, 8, 17, 9, 0)

    def test_the_holiday_is_the_local_date(self) -> None:
        """Wednesday 30 Apr 2025 22:30 UTC is already 1 May in Paris: + 1wd is Friday 2 May."""
        due = add_span(datetime(2025, 4, 30, 22, 30, tzinfo=UTC), span("1wd"))

        assert due.astimezone(LOCAL) == paris(2025, 5, 2, 0, 30)

    @pytest.mark.parametrize(
        ("year", "expected"),
        [
            (
                2026,
                {(1, 1), (4, 6), (5, 1), (5, 8), (5, 14), (5, 25), (7, 14), (8, 15), (11, 1),
                 (11, 11), (12, 25)},
            ),
            (
                2027,
                {(1, 1), (3, 29), (5, 1), (5, 6), (5, 8), (5, 17), (7, 14), (8, 15), (11, 1),
                 (11, 11), (12, 25)},
            ),
        ],
    )  # fmt: skip
    def test_the_eleven_metropolitan_public_holidays(
        self, year: int, expected: set[tuple[int, int]]
    ) -> None:
        """The eleven days of the Code du travail (art. L3133-1); no Alsace-Moselle days."""
        assert public_holidays(year) == {date(year, m, d) for m, d in expected}
        assert date(year, 12, 26) not in public_holidays(year)  # Saint-Étienne: 57, 67, 68 only

    def test_working_day(self) -> None:
        """A weekday that is not a public holiday is a working day; nothing else is."""
        assert is_working_day(date(2026, 12, 24))
        assert not is_working_day(date(2026, 12, 25))  # Christmas, a Friday
        assert not is_working_day(date(2026, 12, 26))  # Saturday
