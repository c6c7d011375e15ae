"""Simulated time: integer milliseconds since the start of the period.

Event times must be whole milliseconds (Kafka's resolution), so the simulation
counts in integer milliseconds and converts to UTC datetimes only when it
writes an event. Times of day follow the local (Europe/Paris) clock.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from random import Random
from typing import Literal
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Europe/Paris")
MS = timedelta(milliseconds=1)
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

Rhythm = Literal["emergency", "office", "school"]
"""When in the day and week a channel is used."""

# Relative weight of each local hour, 00h to 23h. Emergencies peak in the
# evening and at night; office-hours channels (complaints at a station, social
# services) peak in the daytime but run into the evening and are never zero.
_HOURS: dict[Rhythm, tuple[float, ...]] = {
    "emergency": (8, 7, 6, 4, 3, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 6, 7, 9, 11, 12, 12, 10),
    "office": (2, 1, 0.6, 0.4, 0.4, 0.5, 1, 2, 4, 6, 7, 7, 6, 6, 7, 7, 7, 7, 6, 6, 5, 4, 3, 3),
    "school": (0, 0, 0, 0, 0, 0, 0, 1, 6, 9, 9, 8, 5, 6, 9, 9, 7, 3, 1, 0, 0, 0, 0, 0),
}
# Monday..Sunday: emergencies peak at weekends; stations take complaints every day.
_WEEKDAYS: dict[Rhythm, tuple[float, ...]] = {
    "emergency": (1.0, 0.95, 0.95, 1.0, 1.15, 1.45, 1.5),
    "office": (1.05, 1.0, 1.0, 1.0, 1.05, 0.95, 0.85),
    "school": (1, 1, 1, 1, 1, 0, 0),
}


class Timeline:
    """The period ``[start, start + days)`` in UTC, and the sampling of local times."""

    def __init__(self, start: date, days: int) -> None:
        self.start = datetime.combine(start, time(0), tzinfo=UTC)
        self.days = days
        self.end_ms = days * DAY
        self._start_date = start
        self._hour_cum = {k: list(accumulate(v)) for k, v in _HOURS.items()}
        self._day_cum = {
            k: list(accumulate(w[(start + timedelta(days=d)).weekday()] for d in range(days)))
            for k, w in _WEEKDAYS.items()
        }

    def at(self, ms: int) -> datetime:
        """The UTC datetime ``ms`` milliseconds after the start."""
        return self.start + timedelta(milliseconds=ms)

    def ms(self, when: datetime) -> int:
        """Milliseconds from the start to ``when`` (rounded down)."""
        return (when - self.start) // MS

    def first_time(self, rng: Random, rhythm: Rhythm) -> int:
        """A moment in the period, weighted by weekday and hour of ``rhythm``."""
        days = self._day_cum[rhythm]
        for _ in range(100):
            day = bisect_right(days, rng.random() * days[-1])
            when = self._local(rng, day, rhythm)
            if 0 <= when < self.end_ms:
                return when
        return rng.randrange(self.end_ms)  # pragma: no cover - only for tiny periods

    def later_time(self, rng: Random, after: int, gap_days: int, rhythm: Rhythm) -> int:
        """A moment about ``gap_days`` after ``after``, at an hour typical of ``rhythm``.

        Never earlier than ``after`` plus one minute; may fall past the period's end
        (the caller drops it then).
        """
        day = (self.at(after).astimezone(LOCAL).date() - self._start_date).days + gap_days
        when = self._local(rng, day, rhythm)
        return max(when, after + MINUTE)

    def _local(self, rng: Random, day: int, rhythm: Rhythm) -> int:
        hours = self._hour_cum[rhythm]
        hour = bisect_right(hours, rng.random() * hours[-1])
        clock = time(hour, rng.randrange(60), rng.randrange(60), rng.randrange(1000) * 1000)
        local = datetime.combine(self._start_date + timedelta(days=day), clock, tzinfo=LOCAL)
        return self.ms(local)
