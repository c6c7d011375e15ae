"""Deadline arithmetic for the SLA table: calendar spans and working days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo

import holidays

from triage.scoring.rules import Span

LOCAL = ZoneInfo("Europe/Paris")
"""Working days are counted on the département's calendar."""

PUBLIC_HOLIDAYS: Final[holidays.HolidayBase] = holidays.country_holidays("FR")
"""The public holidays (jours fériés) of metropolitan France, from the ``holidays`` package.

The plain ``FR`` calendar, with no subdivision, is the right one for the Pas-de-Calais
(département 62). The package's French subdivisions only add days: ``57`` (Moselle) and
``6AE`` (Alsace: Bas-Rhin, Haut-Rhin) carry the local-law Good Friday and 26 December,
and the overseas départements and collectivités (``971``-``976``, ``BL``, ``MF``,
``NC``, ``PF``, ``PM``, ``TF``, ``WF``) their own days, such as the abolition of
slavery; ``Zone A``/``B``/``C`` are school-holiday zones (the Pas-de-Calais is in
zone B) and add no public holiday. None applies to département 62, which follows the
general law (Code du travail, art. L3133-1): 1 January, Easter Monday, 1 May, 8 May,
Ascension, Whit Monday, 14 July, 15 August, 1 November, 11 November, 25 December.
Whit Monday is kept as a public holiday: the "journée de solidarité" may make it a
working day for some employers, but not one on which a first contact can be counted on.

Only the ``public`` category is used (the package's default): school holidays are not
days off for protection services. Read through :func:`public_holidays`, which caches
one frozen set of dates per year."""


@cache
def public_holidays(year: int) -> frozenset[date]:
    """The public holidays of ``year`` (local dates), computed once per year and cached.

    A set lookup is cheaper than asking :data:`PUBLIC_HOLIDAYS` itself, which converts
    its key on every call; :func:`add_span` asks once for every day a deadline spans.
    """
    # A date slice lists the holidays in [start, stop), computing the years it needs
    # (documented in the package; its type hints only declare single-date keys).
    days: list[date] = PUBLIC_HOLIDAYS[date(year, 1, 1) : date(year + 1, 1, 1)]  # type: ignore[index]
    return frozenset(days)


def is_working_day(day: date) -> bool:
    """Monday to Friday, and not a French public holiday."""
    return day.weekday() < 5 and day not in public_holidays(day.year)


def add_span(start: datetime, span: Span) -> datetime:
    """``start`` plus ``span``, in UTC.

    A calendar span (``s``, ``m``, ``h``, ``d``) is real elapsed time, whatever the
    offset. A span in working days counts the local (Europe/Paris) dates after the
    start that are working days: Saturdays, Sundays and French public holidays
    (:data:`PUBLIC_HOLIDAYS`) are skipped. A start on a day off counts from the next
    working day, like one on a weekend.

    A working-day deadline keeps the local time of day: Friday 10:00 + 2 working
    days is Tuesday 10:00; Thursday 24 December 2026 10:00 + 2 working days skips
    Christmas and the weekend and is Tuesday 29 December 10:00.
    """
    if span.delta is not None:
        return start.astimezone(UTC) + span.delta  # real elapsed time, whatever the offset
    assert span.working_days is not None
    local = start.astimezone(LOCAL)
    day = local.date()
    remaining = span.working_days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    target = datetime.combine(day, local.time().replace(tzinfo=None)).replace(tzinfo=LOCAL)
    return target.astimezone(UTC)
