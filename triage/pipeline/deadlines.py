"""Deadline arithmetic for the SLA table: calendar spans and working days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from triage.scoring.rules import Span

LOCAL = ZoneInfo("Europe/Paris")
"""Working days are counted on the département's calendar."""


def add_span(start: datetime, span: Span) -> datetime:
    """``start`` plus ``span``; working days skip Saturday and Sunday (local calendar).

    A working-day deadline keeps the local time of day: Friday 10:00 + 2 working
    days is Tuesday 10:00. Public holidays are not modelled.
    """
    if span.delta is not None:
        return start.astimezone(UTC) + span.delta  # real elapsed time, whatever the offset
    assert span.working_days is not None
    local = start.astimezone(LOCAL)
    day = local.date()
    remaining = span.working_days
    while remaining:
        day += timedelta(days=1)
        if day.weekday() < 5:
            remaining -= 1
    target = datetime.combine(day, local.time().replace(tzinfo=None)).replace(tzinfo=LOCAL)
    return target.astimezone(UTC)
