"""Queries of the read model: plain dicts for the pure view models."""

from __future__ import annotations

from typing import Any

from triage.console.store import ReadModel

OPEN_WORK = """
SELECT w.work_item_id, w.case_key, c.victim_ref, w.decision_id, w.queue, w.unit, w.level, w.kind,
       w.ack_due, w.action_due, w.time,
       EXISTS (SELECT 1 FROM answers a WHERE a.decision_id = w.decision_id
               AND a.queue = w.queue AND a.stage = 'ack') AS acknowledged
FROM work w JOIN cases c ON c.case_key = w.case_key
WHERE w.withdrawn = 0 AND w.queue != ''
  AND (c.closed_at IS NULL OR c.closed_at < w.time)
  AND NOT EXISTS (SELECT 1 FROM answers a WHERE a.decision_id = w.decision_id
                  AND a.queue = w.queue AND a.stage = 'action')
  AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.case_key = w.case_key
                  AND m.queue = w.queue AND m.time >= w.time)
"""

OPEN_ESCALATIONS = """
SELECT e.escalation_id, e.case_key, c.victim_ref, e.decision_id, e.queue, e.unit, e.level, e.stage,
       e.deadline, e.fields
FROM escalations e JOIN cases c ON c.case_key = e.case_key
WHERE e.stage IN ('ack', 'action')
  AND (c.closed_at IS NULL OR c.closed_at < e.deadline)
  AND NOT EXISTS (SELECT 1 FROM answers a WHERE a.decision_id = e.decision_id
                  AND (a.stage = e.stage OR a.stage = 'action'))
"""


def _dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


def open_work(model: ReadModel, case_key: str | None = None) -> list[dict[str, Any]]:
    """Open work items (not acted on, not withdrawn, case not closed since)."""
    if case_key is None:
        return _dicts(model.query(OPEN_WORK))
    return _dicts(model.query(OPEN_WORK + " AND w.case_key = ?", (case_key,)))


def open_escalations(model: ReadModel) -> list[dict[str, Any]]:
    """Missed deadlines whose work is still not answered."""
    return _dicts(model.query(OPEN_ESCALATIONS))


def case(model: ReadModel, case_key: str) -> dict[str, Any] | None:
    """One case row."""
    rows = model.query("SELECT * FROM cases WHERE case_key = ?", (case_key,))
    return dict(rows[0]) if rows else None


def timeline(model: ReadModel, case_key: str, limit: int = 200) -> list[dict[str, Any]]:
    """A case's history, newest first."""
    return _dicts(
        model.query(
            "SELECT * FROM timeline WHERE case_key = ? ORDER BY time DESC, entry_id LIMIT ?",
            (case_key, limit),
        )
    )


def answers_to(model: ReadModel, event_ids: list[str]) -> list[dict[str, Any]]:
    """Timeline entries caused by the given events (the pipeline's answers)."""
    if not event_ids:
        return []
    marks = ",".join("?" * len(event_ids))
    return _dicts(
        model.query(
            f"SELECT * FROM timeline WHERE source_event_id IN ({marks})",  # noqa: S608 - marks
            tuple(event_ids),
        )
    )


def supervisor(model: ReadModel, limit: int = 100) -> dict[str, list[dict[str, Any]]]:
    """Recent escalations, conflicts and rejected overrides."""
    return {
        "escalations": _dicts(
            model.query(
                "SELECT e.*, c.victim_ref FROM escalations e JOIN cases c USING (case_key)"
                " WHERE e.stage != 'conflict' ORDER BY e.deadline DESC LIMIT ?",
                (limit,),
            )
        ),
        "conflicts": _dicts(
            model.query(
                "SELECT e.*, c.victim_ref FROM escalations e JOIN cases c USING (case_key)"
                " WHERE e.stage = 'conflict' ORDER BY e.deadline DESC LIMIT ?",
                (limit,),
            )
        ),
        "refusals": _dicts(
            model.query(
                "SELECT r.*, c.victim_ref FROM refusals r JOIN cases c USING (case_key)"
                " ORDER BY r.time DESC LIMIT ?",
                (limit,),
            )
        ),
    }
