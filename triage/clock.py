"""Clocks. Decisions never read the wall clock; they get time from here.

The engine itself takes *event* time as an argument. A clock only decides when
a live timer fires (:class:`SystemClock`) or lets tests step time by hand
(:class:`ManualClock`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that says what time it is (always timezone-aware UTC)."""

    def now(self) -> datetime:
        """Return the current time."""
        ...


class SystemClock:
    """The wall clock. Only for *when* timers fire, never for what they decide."""

    __slots__ = ()

    def now(self) -> datetime:
        """Return the wall-clock time in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    __slots__ = ("_now",)

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the time last set."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (not earlier than now)."""
        if when.tzinfo is None:
            raise ValueError("ManualClock needs timezone-aware times")
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
