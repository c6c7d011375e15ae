"""Sections of the yearly review drawn from :class:`~triage.analysis.caseload.Caseload`:
work per month by kind, and dormant and reactivated cases."""

from __future__ import annotations

from typing import Any

from triage.analysis import html
from triage.analysis.caseload import LEVELS
from triage.analysis.svg import LEVEL_COLOURS, columns

NEW_INFORMATION = {
    "new_cases": ("new cases", "#34495e"),
    "repeat_reports": ("repeat reports", "#16a085"),
    "alarms": ("alarms", "#c0392b"),
    "overrides": ("overrides", "#8e44ad"),
}
"""The kinds of new information (series key → label, colour), in the chart's order."""


def work_section(f: dict[str, Any]) -> str:
    """New cases, repeat reports, alarms, overrides and reviews: one series each."""
    work = f["work_by_month"]
    months = list(work)
    rows = [
        (
            m,
            *(work[m][k] for k in NEW_INFORMATION),
            work[m]["alarms_merged"],
            work[m]["reviews"],
        )
        for m in months
    ]
    totals = {k: sum(work[m][k] for m in months) for k in (*NEW_INFORMATION, "alarms_merged")}
    totals["reviews"] = sum(work[m]["reviews"] for m in months)
    rows.append(("year", *totals.values()))
    labels = {key: label for key, (label, _) in NEW_INFORMATION.items()}
    new_chart = columns(
        months,
        {labels[k]: [work[m][k] for m in months] for k in NEW_INFORMATION},
        title="New information per month (reports, alarms, overrides)",
        colours={label: colour for label, colour in NEW_INFORMATION.values()},
    )
    by_level = f["reviews_by_month_and_level"]
    review_chart = columns(
        months,
        {lv: [by_level[m][lv] for m in months] for lv in LEVELS},
        title="Scheduled reviews per month by level",
        colours=LEVEL_COLOURS,
    )
    return html.section(
        "Work per month",
        html.note(
            "Each kind of work counted apart. New case: a report for a victim with no case "
            "open or dormant (first seen in the period, or her case was closed). Repeat "
            "report: a report on a case open or dormant (a dormant one is reactivated by it). "
            "Alarms: device alarms decided; merged: a repeated press within the rule set's "
            "alarm_merge_window, joined to the open work (no new queue record). Overrides: "
            "accepted. Reviews: scheduled re-assessments that fell due on the level's cadence."
            + (
                ""
                if f["source"] == "log"
                else " From an outputs file closures are unknown: a report after a closure "
                "counts as a repeat report."
            )
        ),
        html.table(
            [
                "month",
                "new cases",
                "repeat reports",
                "alarms",
                "overrides",
                "alarms merged",
                "reviews",
            ],
            rows,
            ident="work-by-month",
        ),
        tail_note(f),
        html.side_by_side(new_chart, review_chart),
        ident="work",
    )


def tail_note(f: dict[str, Any]) -> str:
    """A note naming the months after the last report or alarm, if any."""
    tail = f["tail_months"]
    if not tail:
        return ""
    return html.note(
        f"{', '.join(tail)}: after the last report or alarm of the log, so only what fell due "
        "then (reviews, missed deadlines); months are Europe/Paris calendar months, a log "
        "ending on 31 December UTC reaches into January."
    )


def dormancy_section(f: dict[str, Any]) -> str:
    """Cases gone dormant and reactivated per month; cases by status at the end."""
    by_month = f["dormancy_by_month"]
    months = list(by_month)
    known = f["source"] == "log"
    rows = [(m, row["dormant"], row["reactivated"], row["closed"]) for m, row in by_month.items()]
    rows.append(
        (
            "year",
            sum(r["dormant"] for r in by_month.values()),
            sum(r["reactivated"] for r in by_month.values()),
            sum(r["closed"] for r in by_month.values()) if known else None,
        )
    )
    end = f["cases_at_end"]
    status = [(lv, end[lv]["open"], end[lv]["dormant"], end[lv]["closed"]) for lv in LEVELS]
    status.append(
        (
            "all",
            sum(end[lv]["open"] for lv in LEVELS),
            sum(end[lv]["dormant"] for lv in LEVELS),
            sum(end[lv]["closed"] or 0 for lv in LEVELS) if known else None,
        )
    )
    chart = columns(
        months,
        {
            "gone dormant": [by_month[m]["dormant"] for m in months],
            "reactivated": [by_month[m]["reactivated"] for m in months],
        },
        title="Cases gone dormant and reactivated per month",
        colours={"gone dormant": "#7f8c8d", "reactivated": "#d35400"},
    )
    by_level = ", ".join(f"{lv} {n:,}" for lv, n in f["dormant_by_level"].items())
    kinds = {"assessment": "a report", "alarm": "an alarm", "override": "an override"}
    woken = ", ".join(f"{kinds[k]} {n:,}" for k, n in f["reactivated_by_kind"].items())
    closures = (
        ""
        if known
        else " Closures are responders' input events, not in an outputs file: closed cases "
        "count as open here."
    )
    return html.section(
        "Dormant and reactivated cases",
        html.note(
            "A case goes dormant after its level's dormant_after_reviews scheduled reviews "
            "with no new report, alarm or override: no more reviews, its open work withdrawn. "
            "It stays on record and the next report, alarm or override reactivates it with "
            "its history. Only a responder closes a case." + closures
        ),
        html.side_by_side(
            html.table(
                ["month", "gone dormant", "reactivated", "closed"], rows, ident="dormancy-by-month"
            ),
            chart
            + html.h3("Cases at the end of the period, by level")
            + html.table(["level", "open", "dormant", "closed"], status, ident="cases-at-end")
            + html.note(
                f"Gone dormant by level: {by_level}. Reactivated by {woken}. A case's level "
                "is its last decision's. Closed per month counts closures: a case closed, "
                "reported again and closed again counts twice there, once at the end."
            ),
        ),
        ident="dormancy",
    )
