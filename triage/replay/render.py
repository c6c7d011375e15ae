"""Render a run summary as terminal tables (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

LEVELS = ("P1", "P2", "P3", "P4")


def format_duration(seconds: float | None) -> str:
    """A duration for people: seconds, minutes, hours or days."""
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _answers(ack: dict[str, Any], act: dict[str, Any]) -> tuple[str, ...]:
    """Count, p50 and p90 of the acknowledgements, then of the actions."""
    return (
        str(ack["n"]),
        format_duration(ack["p50_s"]),
        format_duration(ack["p90_s"]),
        str(act["n"]),
        format_duration(act["p50_s"]),
        format_duration(act["p90_s"]),
    )


def render_summary(figures: dict[str, Any], console: Console | None = None) -> None:
    """Print the tables of a run summary (see :meth:`Summary.to_dict`)."""
    console = console or Console()
    levels = Table(
        title="New information per level: decisions and response times (event time)",
        caption="reports, alarms and overrides, against the level's deadlines (a decision "
        "opens work in one queue or more: one ack each); scheduled reviews: next table",
    )
    for column in (
        "level",
        "decisions",
        "acks",
        "ack p50",
        "ack p90",
        "actions",
        "action p50",
        "action p90",
        "ack missed",
        "action missed",
    ):
        levels.add_column(column, justify="right")
    for lv in LEVELS:
        ack, act = figures["time_to_ack"][lv], figures["time_to_action"][lv]
        breaches = figures["sla_breaches"][lv]
        levels.add_row(
            lv,
            str(figures["decisions_by_level"][lv]),
            *_answers(ack, act),
            str(breaches["ack"]),
            str(breaches["action"]),
        )
    console.print(levels)

    reviews = Table(
        title="Scheduled reviews per level: response times (event time)",
        caption="re-assessments on the level's cadence, timed against review_ack/review_action",
    )
    for column in (
        "level",
        "reviews due",
        "acks",
        "ack p50",
        "ack p90",
        "actions",
        "action p50",
        "action p90",
        "missed (ack or action)",
        "gone dormant",
    ):
        reviews.add_column(column, justify="right")
    for lv in LEVELS:
        reviews.add_row(
            lv,
            str(figures["reassessments_due_by_level"][lv]),
            *_answers(figures["time_to_review_ack"][lv], figures["time_to_review_action"][lv]),
            str(figures["sla_breaches"][lv]["review"]),
            str(figures["cases_dormant_by_level"][lv]),
        )
    console.print(reviews)

    queues = Table(title="Cases routed per queue and level (re-assessments not included)")
    queues.add_column("queue")
    for lv in (*LEVELS, "total"):
        queues.add_column(lv, justify="right")
    for queue, counts in figures["queue_records"].items():
        queues.add_row(queue, *(str(counts[lv]) for lv in LEVELS), str(sum(counts.values())))
    console.print(queues)

    other = Table(title="Other outcomes", show_header=False)
    other.add_column("what")
    other.add_column("count", justify="right")
    other.add_row("events read", str(figures["events"]))
    other.add_row("reviews due (re-assessments)", str(figures["reassessments_due"]))
    other.add_row("cases gone dormant (reviews without incident)", str(figures["cases_dormant"]))
    other.add_row("dormant cases reactivated", str(figures["cases_reactivated"]))
    other.add_row("unknown communes (flagged)", str(figures["unknown_communes"]))
    other.add_row("duplicates ignored", str(figures["duplicates"]))
    other.add_row("conflicting resends (escalated)", str(figures["conflicting_resends"]))
    other.add_row("repeated alarms merged", str(figures["alarms_merged"]))
    for direction, count in figures["overrides"].items():
        other.add_row(f"overrides {direction}", str(count))
    for reason, count in figures["overrides_rejected"].items():
        other.add_row(f"overrides rejected: {reason}", str(count))
    for reason, count in figures["dead_letters"].items():
        other.add_row(f"dead letters: {reason}", str(count))
    for reason, count in figures["updates_ignored"].items():
        other.add_row(f"updates ignored: {reason}", str(count))
    console.print(other)
    if "rules_version" in figures:
        console.print(f"rules {figures['rules_version']} · {figures.get('seconds', '?')} s")
