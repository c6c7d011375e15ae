"""Golden replays: compare a replay's outputs with expected outputs, readably.

Records are matched by what they are about, not by position or id (ids carry
the rule-set version): a decision by victim and source event, a queue record by
victim, queue, kind and time, an escalation by victim, queue, stage and deadline,
a rejected override by victim and source event, a dead letter by source topic,
key, time and bytes. A difference names the case (victim), the record (what it
is and its line in each file) and each field, ``expected → actual``::

    case V-0001A2
      ~ decision for evt-report-1f…  (expected line 1, actual line 1)
          level: "P2" → "P1"
          contributions[strangulation].points: 5 → 7
      + queue record immediate/new at 2026-01-05T10:00:00.000Z  (actual line 3): unexpected

Expected outputs are what ``triage replay LOG --offline -o EXPECTED`` writes, so
that command also regenerates them after an intended change.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from triage.events.wire import format_timestamp
from triage.replay.records import LogRecord

MAX_VALUE = 80
LABEL_FIELDS = ("factor", "queue", "rule")
"""A list item with one of these fields is named by it (``contributions[weapon]``)."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs: its path, the expected value, the actual value."""

    path: str
    expected: Any
    actual: Any


@dataclass(frozen=True, slots=True)
class RecordDiff:
    """A record that changed, is missing, or was not expected."""

    status: Literal["changed", "missing", "unexpected"]
    case: str
    what: str
    expected_line: int | None
    actual_line: int | None
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class GoldenDiff:
    """The outcome of a comparison; empty when the outputs match."""

    expected: int
    actual: int
    records: tuple[RecordDiff, ...]
    first_reordered: int | None = None
    """Line of the first record out of place, when the same records come in another order."""

    @property
    def ok(self) -> bool:
        """True when the outputs match record for record, in order."""
        return not self.records and self.first_reordered is None

    def render(self, max_fields: int = 20) -> str:
        """A readable report, grouped by case (victim); empty when :attr:`ok`."""
        if self.ok:
            return ""
        counts = {s: sum(1 for r in self.records if r.status == s) for s in _STATUSES}
        lines = [
            f"outputs differ from the expected ones: {counts['changed']} changed, "
            f"{counts['missing']} missing, {counts['unexpected']} unexpected "
            f"(expected {self.expected} records, got {self.actual})"
        ]
        if self.first_reordered is not None:
            lines.append(f"same records in another order, from line {self.first_reordered}")
        by_case: dict[str, list[RecordDiff]] = defaultdict(list)
        for diff in self.records:
            by_case[diff.case].append(diff)
        for case in sorted(by_case):
            lines.append(f"\ncase {case}")
            for diff in by_case[case]:
                lines.append(
                    f"  {_MARK[diff.status]} {diff.what}  ({_where(diff)})"
                    + (f": {diff.status}" if diff.status != "changed" else "")
                )
                fields = _collapse_ids(diff.fields)
                for change in fields[:max_fields]:
                    lines.append(
                        f"      {change.path}: {_show(change.expected)} → {_show(change.actual)}"
                    )
                if len(fields) > max_fields:
                    lines.append(f"      … and {len(fields) - max_fields} more fields")
        return "\n".join(lines) + "\n"


_STATUSES = ("changed", "missing", "unexpected")
ID_FIELDS = frozenset({"id", "headers.ce_id", "decision_id"})
"""Fields derived from the rule-set version (with ``rules_version``): shown as one line."""


def _collapse_ids(fields: tuple[FieldChange, ...]) -> list[FieldChange]:
    """When the rule-set version changed, its derived ids are noise: one line says it."""
    version = next((f for f in fields if f.path == "rules_version"), None)
    if version is None:
        return list(fields)
    kept = [f for f in fields if f.path not in ID_FIELDS and f is not version]
    return [
        FieldChange(
            "rules_version (and the ids derived from it)", version.expected, version.actual
        ),
        *kept,
    ]


_MARK = {"changed": "~", "missing": "-", "unexpected": "+"}


def _where(diff: RecordDiff) -> str:
    parts = []
    if diff.expected_line is not None:
        parts.append(f"expected line {diff.expected_line}")
    if diff.actual_line is not None:
        parts.append(f"actual line {diff.actual_line}")
    return ", ".join(parts)


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = orjson.dumps(value).decode()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


@dataclass(frozen=True, slots=True)
class _Entry:
    line: int
    key: tuple[str, ...]
    case: str
    what: str
    flat: dict[str, Any]


def compare_outputs(expected: Sequence[LogRecord], actual: Sequence[LogRecord]) -> GoldenDiff:
    """Compare two output logs (expected first); see the module docstring."""
    want, got = _entries(expected), _entries(actual)
    got_by_key = {e.key: e for e in got}
    want_keys = {e.key for e in want}
    diffs: list[RecordDiff] = []
    for entry in want:
        other = got_by_key.get(entry.key)
        if other is None:
            diffs.append(RecordDiff("missing", entry.case, entry.what, entry.line, None))
            continue
        fields = tuple(_field_changes(entry.flat, other.flat))
        if fields:
            diffs.append(
                RecordDiff("changed", entry.case, entry.what, entry.line, other.line, fields)
            )
    for entry in got:
        if entry.key not in want_keys:
            diffs.append(RecordDiff("unexpected", entry.case, entry.what, None, entry.line))
    reordered = None
    if not diffs:
        for w, g in zip(want, got, strict=True):
            if w.key != g.key:
                reordered = g.line
                break
    return GoldenDiff(len(expected), len(actual), tuple(diffs), reordered)


def _field_changes(want: dict[str, Any], got: dict[str, Any]) -> Iterator[FieldChange]:
    for path in sorted(set(want) | set(got), key=_path_order):
        old, new = want.get(path, _ABSENT), got.get(path, _ABSENT)
        if old != new or type(old) is not type(new):
            yield FieldChange(path, old, new)


def _path_order(path: str) -> tuple[int, str]:
    # Record-level fields first, the value's own fields after, each alphabetically.
    return (0 if path.split(".")[0] in ("topic", "key", "timestamp", "headers") else 1, path)


def _entries(records: Sequence[LogRecord]) -> list[_Entry]:
    seen: dict[tuple[str, ...], int] = defaultdict(int)
    out = []
    for line, record in enumerate(records, start=1):
        body = _body(record.value)
        base, case, what = _identity(record, body)
        seen[base] += 1
        key = (*base, str(seen[base]))  # a repeated identity is matched by occurrence
        flat: dict[str, Any] = {
            "topic": record.topic,
            "key": record.key,
            "timestamp": format_timestamp(record.timestamp),
        }
        for name, value in record.headers.items():
            flat[f"headers.{name}"] = value
        if body is None:
            flat["value_b64"] = hashlib.sha256(record.value).hexdigest()
        else:
            _flatten(body, "", flat)
        out.append(_Entry(line, key, case, what, flat))
    return out


def _body(value: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _identity(record: LogRecord, body: dict[str, Any] | None) -> tuple[tuple[str, ...], str, str]:
    """(matching key, case, description) of an output record."""
    if body is None:
        digest = hashlib.sha256(record.value).hexdigest()[:12]
        return ("raw", record.topic, digest), record.key or "-", f"record on {record.topic}"
    kind = str(body.get("type", ""))
    victim = str(body.get("victim_ref") or record.key or "-")

    def get(name: str) -> str:
        assert body is not None
        return str(body.get(name, ""))

    if kind == "triage.decision":
        return (
            (kind, victim, get("source_event_id")),
            victim,
            (f"decision for {get('source_event_id')}"),
        )
    if kind == "triage.queue_record":
        return (
            (kind, victim, get("queue"), get("kind"), get("time")),
            victim,
            (f"queue record {get('queue')}/{get('kind')} at {get('time')}"),
        )
    if kind == "triage.escalation":
        return (
            (kind, victim, get("queue"), get("stage"), get("deadline")),
            victim,
            (f"escalation {get('queue')}/{get('stage')} due {get('deadline')}"),
        )
    if kind == "triage.override_rejected":
        return (
            (kind, victim, get("source_event_id")),
            victim,
            (f"rejected override {get('source_event_id')}"),
        )
    if kind == "triage.dead_letter":
        digest = hashlib.sha256(get("value_b64").encode()).hexdigest()[:12]
        base = (kind, get("source_topic"), get("key_b64"), get("time"), digest)
        return (
            base,
            record.key or "(no key)",
            (f"dead letter of a {get('source_topic')} record at {get('time')} [{digest}]"),
        )
    return (kind, victim, get("id")), victim, f"{kind or 'record'} {get('id')}"


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        if not value and path:
            out[path] = {}
        for name, item in value.items():
            _flatten(item, f"{path}.{name}" if path else name, out)
    elif isinstance(value, list):
        if not value:
            out[path] = []
        for index, item in enumerate(value):
            label = _label(item, index)
            _flatten(item, f"{path}[{label}]", out)
    else:
        out[path] = value


def _label(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for name in LABEL_FIELDS:
            if isinstance(item.get(name), str):
                return str(item[name])
    return str(index)
