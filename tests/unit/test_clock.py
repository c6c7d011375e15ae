"""Clocks: the wall clock for live timers only, and a manual clock for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from triage.clock import Clock, ManualClock, SystemClock
from triage.testing import BASE_TIME


class TestManualClock:
    def test_starts_where_told_in_utc(self) -> None:
        """A manual clock starts at the given instant, normalised to UTC."""
        clock = ManualClock(datetime(2026, 1, 5, 11, 0, tzinfo=timezone(timedelta(hours=1))))

        assert clock.now() == BASE_TIME
        assert clock.now().tzinfo is UTC

    def test_refuses_a_naive_start(self) -> None:
        """A naive start time is refused: decisions only ever see aware times."""
        with pytest.raises(ValueError, match="timezone-aware"):
            ManualClock(datetime(2026, 1, 5, 10, 0))

    def test_advance(self) -> None:
        """Advancing moves the clock forward and returns the new time."""
        clock = ManualClock(BASE_TIME)

        assert clock.advance(timedelta(minutes=5)) == BASE_TIME + timedelta(minutes=5)
        assert clock.now() == BASE_TIME + timedelta(minutes=5)

    def test_advance_by_zero(self) -> None:
        """Advancing by nothing is allowed and changes nothing."""
        clock = ManualClock(BASE_TIME)

        assert clock.advance(timedelta(0)) == BASE_TIME

    def test_never_goes_backwards(self) -> None:
        """Neither advance nor set moves the clock back."""
        clock = ManualClock(BASE_TIME)

        with pytest.raises(ValueError, match="backwards"):
            clock.advance(timedelta(seconds=-1))
        with pytest.raises(ValueError, match="backwards"):
            clock.set(BASE_TIME - timedelta(seconds=1))
        assert clock.now() == BASE_TIME

    def test_set(self) -> None:
        """Setting jumps to a later instant given in any zone."""
        clock = ManualClock(BASE_TIME)

        clock.set(datetime(2026, 1, 5, 13, 0, tzinfo=timezone(timedelta(hours=2))))

        assert clock.now() == BASE_TIME + timedelta(hours=1)

    def test_set_refuses_naive(self) -> None:
        """Setting a naive time is refused, as the constructor refuses one."""
        clock = ManualClock(BASE_TIME)

        with pytest.raises(ValueError, match="timezone-aware"):
            clock.set(datetime(2026, 1, 6, 10, 0))

    def test_repr(self) -> None:
        """The repr shows the current time."""
        assert repr(ManualClock(BASE_TIME)) == "ManualClock(2026-01-05T10:00:00+00:00)"

    def test_is_a_clock(self) -> None:
        """A manual clock can stand wherever a Clock is expected."""
        clock: Clock = ManualClock(BASE_TIME)

        assert clock.now() == BASE_TIME


class TestSystemClock:
    def test_now_is_aware_utc(self) -> None:
        """The wall clock reads an aware UTC time."""
        now = SystemClock().now()

        assert now.tzinfo is UTC
        assert now.year >= 2024
