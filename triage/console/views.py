"""View models: what each page shows, from read-model rows and the time. Pure.

Times are shown in Europe/Paris; levels are always written (P1..P4), colour only
repeats them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

KIND_LABELS = {
    "new": "new",
    "update": "update",
    "reassessment": "review",
    "override": "override",
    "escalation": "escalation",
}
LEVEL_ORDER = {"P1": 0, "P2": 1, "P3": 2, "P4": 3}
REFUSAL_TEXT = {
    "missing_second_reviewer": "second reviewer required",
    "second_reviewer_is_author": "the second reviewer must not be the author",
    "not_an_upgrade": "not above the current level",
    "not_a_downgrade": "not below the current level",
    "case_closed": "the case is closed",
}
QUEUE_ORDER = (
    "immediate", "high-risk", "child-protection", "judicial", "follow-up", "standard",
    "supervisor",
)  # fmt: skip


def paris(text_or_time: str | datetime) -> str:
    """A time as people read it here: ``04/12 16:05`` (Europe/Paris)."""
    when = datetime.fromisoformat(text_or_time) if isinstance(text_or_time, str) else text_or_time
    return when.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def remaining(due: datetime, now: datetime) -> str:
    """``in 4 min``, ``2 h 05 min late``: what the live countdown starts from."""
    seconds = int((due - now).total_seconds())
    late = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes:02d} min"
    elif minutes:
        text = f"{minutes} min {secs:02d} s"
    else:
        text = f"{secs} s"
    return f"{text} late" if late else f"in {text}"


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One line of the open-work view."""

    case_key: str
    victim_ref: str
    queue: str
    unit: str
    level: str
    kind: str
    stage: str
    """``ack`` (waiting for an acknowledgement) or ``action``."""
    due: str
    due_ms: int
    remaining: str
    overdue: bool
    decision_id: str


@dataclass(frozen=True, slots=True)
class WorkGroup:
    """Open work of one queue and unit, the nearest deadline first."""

    queue: str
    unit: str
    items: tuple[WorkItem, ...]


def work_item(row: dict[str, Any], now: datetime) -> WorkItem:
    """A work or escalation row as a line (escalations: due at their deadline)."""
    if "stage" in row:  # an escalation
        due = datetime.fromisoformat(row["deadline"])
        kind, stage = "escalation", f"{row['stage']} missed"
        queue = "supervisor"
    else:
        stage = "action" if row["acknowledged"] else "ack"
        due = datetime.fromisoformat(row["action_due" if stage == "action" else "ack_due"])
        kind, queue = KIND_LABELS.get(row["kind"], row["kind"]), row["queue"]
    return WorkItem(
        case_key=row["case_key"], victim_ref=row["victim_ref"], queue=queue,
        unit=row["unit"], level=row["level"],
        kind=kind, stage=stage, due=paris(due), due_ms=int(due.timestamp() * 1000),
        remaining=remaining(due, now), overdue=due < now, decision_id=row["decision_id"],
    )  # fmt: skip


def units_of(work: list[dict[str, Any]], escalations: list[dict[str, Any]]) -> list[str]:
    """The units that have open work, for the open-work view's filter."""
    return sorted({row["unit"] for row in [*work, *escalations]})


def open_work(
    work: list[dict[str, Any]],
    escalations: list[dict[str, Any]],
    now: datetime,
    unit: str | None = None,
) -> list[WorkGroup]:
    """Open work per queue and unit (only ``unit``'s when given), sorted by deadline;
    queues in order of urgency."""
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for row in [*work, *escalations]:
        if unit and row["unit"] != unit:
            continue
        item = work_item(row, now)
        groups.setdefault((item.queue, item.unit), []).append(item)

    def queue_rank(key: tuple[str, str]) -> tuple[int, str]:
        queue, unit = key
        return (QUEUE_ORDER.index(queue) if queue in QUEUE_ORDER else 99, unit)

    return [
        WorkGroup(queue, unit, tuple(sorted(items, key=lambda i: (i.due_ms, LEVEL_ORDER[i.level]))))
        for (queue, unit), items in sorted(groups.items(), key=lambda kv: queue_rank(kv[0]))
    ]


@dataclass(frozen=True, slots=True)
class Factor:
    """One factor of a decision's explanation."""

    factor: str
    answer: str
    points: int
    source: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a case's timeline, with a decision's explanation when it is one."""

    time: str
    kind: str
    title: str
    lines: tuple[str, ...] = ()
    factors: tuple[Factor, ...] = ()


def _entry(row: dict[str, Any]) -> Entry:
    d = json.loads(row["detail"])
    when = paris(row["time"])
    match row["kind"]:
        case "decision":
            lines = [
                f"rules {d['rules_version']} · total {d['total']} points · computed"
                f" {d['computed_level']} · level {d['level']} · {d['incidents_12m']} incidents"
                f" in 12 months · unit {d['unit']}" + (" (flagged)" if d["unit_flagged"] else ""),
                *(f"floor {f['rule']} → {f['level']}" for f in d["floors"]),
                *(
                    f"queue {q['queue']} {q['level']} ({q['unit']}): acknowledge by"
                    f" {paris(q['ack_due'])}, act by {paris(q['action_due'])}"
                    for q in d["queues"]
                ),
                f"next re-assessment {paris(d['next_reassessment_at'])}",
            ]
            if d["override"]:
                o = d["override"]
                lines.append(
                    f"override {o['direction']} from {o['previous_level']} ({o['reason']}) by"
                    f" {o['author']}"
                    + (f", confirmed by {o['second_reviewer']}" if o["second_reviewer"] else "")
                )
            factors = tuple(
                Factor(c["factor"], c["answer"], c["points"], c["source"])
                for c in d["contributions"]
            )
            return Entry(when, "decision", f"Decision ({d['kind']}): {d['level']}", tuple(lines),
                         factors)  # fmt: skip
        case "queue":
            return Entry(
                when, "queue",
                f"Queue {d['queue']}: {KIND_LABELS.get(d['kind'], d['kind'])} {d['level']}",
                (f"acknowledge by {paris(d['ack_due'])}, act by {paris(d['action_due'])}",
                 *(f"reason {r}" for r in d["reasons"])),
            )  # fmt: skip
        case "escalation":
            return Entry(
                when, "escalation", f"Escalation: {d['stage']} ({d['queue']}, {d['level']})",
                (f"deadline {paris(d['deadline'])}", *(f"differs: {f}" for f in d["fields"])),
            )  # fmt: skip
        case "override_rejected":
            return Entry(
                when, "override_rejected",
                f"Override rejected: {REFUSAL_TEXT.get(d['reason_code'], d['reason_code'])}",
                (f"{d['direction']} to {d['requested_level']} asked by {d['author']}",),
            )  # fmt: skip
        case "dormant":
            return Entry(when, "dormant", f"Dormant after {d['reviews']} reviews ({d['level']})")
        case _:
            shown = {k: v for k, v in d.items() if k not in ("type", "responder") and v}
            return Entry(
                when, "update", f"{d['type'].removeprefix('case.')} by {d['responder']}",
                tuple(f"{k}: {v}" for k, v in sorted(shown.items())),
            )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SentAction:
    """An action published from the console and what the pipeline answered."""

    time: str
    action: str
    responder_id: str
    answer: str


def answer_text(entries: list[dict[str, Any]]) -> str:
    """The pipeline's answer to one event, from the timeline entries it caused."""
    kinds = {e["kind"]: json.loads(e["detail"]) for e in entries}
    if "override_rejected" in kinds:
        code = kinds["override_rejected"]["reason_code"]
        return f"override rejected: {REFUSAL_TEXT.get(code, code)}"
    if "decision" in kinds:
        return f"accepted: level now {kinds['decision']['level']}"
    if "update" in kinds:
        return "recorded on the case-updates topic"
    return "sent; waiting for the pipeline"


@dataclass(frozen=True, slots=True)
class Proposal:
    """A downgrade awaiting (or having had) a second person."""

    proposal_id: str
    new_level: str
    reason: str
    author: str
    time: str
    confirmed_by: str | None
    may_confirm: bool


@dataclass(frozen=True, slots=True)
class CasePage:
    """Everything the case page shows. No contact details, no free text."""

    case_key: str
    victim_ref: str
    level: str | None
    unit: str | None
    decision_id: str | None
    closed: bool
    work: tuple[WorkItem, ...]
    entries: tuple[Entry, ...]
    sent: tuple[SentAction, ...] = ()
    proposals: tuple[Proposal, ...] = field(default=())


def case_page(
    case: dict[str, Any],
    work: list[dict[str, Any]],
    timeline: list[dict[str, Any]],
    sent: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    proposals: list[dict[str, Any]],
    viewer: str,
    now: datetime,
) -> CasePage:
    """The case page of a case row, its open work, timeline, actions and proposals."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for entry in answers:
        by_source.setdefault(entry["source_event_id"], []).append(entry)
    closed = case["closed_at"] is not None and not work
    return CasePage(
        case_key=case["case_key"], victim_ref=case["victim_ref"], level=case["level"],
        unit=case["unit"], decision_id=case["decision_id"], closed=closed,
        work=tuple(sorted((work_item(w, now) for w in work), key=lambda i: i.due_ms)),
        entries=tuple(_entry(t) for t in timeline),
        sent=tuple(
            SentAction(paris(s["time"]), s["action"], s["responder_id"],
                       answer_text(by_source.get(s["event_id"], [])))
            for s in sent
        ),
        proposals=tuple(
            Proposal(p["proposal_id"], p["new_level"], p["reason"], p["author"], paris(p["time"]),
                     p["confirmed_by"], p["confirmed_by"] is None and p["author"] != viewer)
            for p in proposals
        ),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SupervisorPage:
    """Escalations, conflicts, rejected overrides and downgrades awaiting a second person."""

    escalations: tuple[dict[str, str], ...]
    conflicts: tuple[dict[str, str], ...]
    refusals: tuple[dict[str, str], ...]
    proposals: tuple[dict[str, str], ...]


def supervisor_page(
    rows: dict[str, list[dict[str, Any]]], proposals: list[dict[str, Any]]
) -> SupervisorPage:
    """The supervisor view's rows, times in Europe/Paris, reason codes in words."""
    return SupervisorPage(
        escalations=tuple(
            {"case_key": e["case_key"], "victim_ref": e["victim_ref"], "level": e["level"],
             "queue": e["queue"], "unit": e["unit"], "stage": e["stage"],
             "deadline": paris(e["deadline"])}
            for e in rows["escalations"]
        ),
        conflicts=tuple(
            {"case_key": e["case_key"], "victim_ref": e["victim_ref"], "level": e["level"],
             "queue": e["queue"], "deadline": paris(e["deadline"]),
             "fields": ", ".join(json.loads(e["fields"]))}
            for e in rows["conflicts"]
        ),
        refusals=tuple(
            {"case_key": r["case_key"], "victim_ref": r["victim_ref"], "direction": r["direction"],
             "requested_level": r["requested_level"], "author": r["author"],
             "reason": REFUSAL_TEXT.get(r["reason_code"], r["reason_code"]),
             "time": paris(r["time"])}
            for r in rows["refusals"]
        ),
        proposals=tuple(
            {"case_key": p["case_key"], "new_level": p["new_level"], "author": p["author"],
             "reason": p["reason"], "time": paris(p["time"])}
            for p in proposals
        ),
    )  # fmt: skip
