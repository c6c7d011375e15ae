"""Hypothesis strategies for bad input: arbitrary bytes, arbitrary JSON, and valid events
damaged at an arbitrary position (values, unknown keys, wrong types, huge strings),
often carrying sentinel personal values.

Times reach the ends of the datetime range, except event times in the last weeks
before 2200, which still crash the core (``test_edges.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import strategies as st

from triage.events.base import Level
from triage.pipeline.ingest import RawRecord
from triage.reliability.cases import SENTINEL_MARK
from triage.testing import (
    BASE_TIME,
    VICTIM_REF,
    decision_id_for,
    make_ack,
    make_action,
    make_alarm,
    make_closed,
    make_override,
    make_protection,
    make_report,
    make_watermark,
)
from triage.topics import Topics

__test__ = False  # helpers, not tests

TOPICS = Topics()
REPORT = make_report(indicators={"weapon": "yes"}, contact={"name": "x", "notes": "y"})
DECISION = decision_id_for(REPORT)


def _body(event: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(event.model_dump_json())
    return parsed


BASES: dict[str, tuple[str, dict[str, Any]]] = {
    "report": (TOPICS.reports, _body(REPORT)),
    "report_v2": (TOPICS.reports, {**_body(REPORT), "schema_version": 2, "language": "fr"}),
    "alarm": (TOPICS.reports, _body(make_alarm(commune="62041"))),
    "ack": (TOPICS.updates, _body(make_ack(decision_id=DECISION, queue="high-risk"))),
    "action": (TOPICS.updates, _body(make_action(decision_id=DECISION, queue="high-risk"))),
    "override": (
        TOPICS.updates,
        _body(make_override(decision_id=DECISION, direction="down", new_level=Level.P4)),
    ),
    "protection": (TOPICS.updates, _body(make_protection())),
    "closed": (TOPICS.updates, _body(make_closed())),
    "watermark": (TOPICS.reports, _body(make_watermark())),
}
"""Valid bodies of every input type (and version) with their topics, to damage."""

sentinels = st.builds(
    lambda n, label: f"{SENTINEL_MARK}{n:05d}{label}¤",
    st.integers(0, 99_999),
    st.sampled_from(("Jeanne Dupont", "06 12 34 56 78", "12 rue des Lilas", "il a dit", "")),
)
"""Personal-looking values; ``§`` and ``¤`` never occur in base64 or JSON escapes."""

TIMES = (
    "0001-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "1999-12-31T23:59:59Z",
    "2026-01-05T10:00:00", "2026-01-05T10:00:00+14:00", "2026-01-05T10:00:00.123456-12:00",
    "2199-06-01T00:00:00Z", "2200-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00",
)  # fmt: skip
"""Event times at and beyond the edges (but not the last weeks before 2200: see
``test_edges.py``, still a crash)."""

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    sentinels,
    st.sampled_from(("yes", "no", "unknown", "P1", "immediate", "62041", VICTIM_REF)),
    st.sampled_from(TIMES),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | sentinels, inner, max_size=4)
    ),
    max_leaves=10,
)
"""Any JSON value (within orjson's integer range), sentinels included."""


@dataclass(frozen=True)
class Damaged:
    """A record to feed, and the sentinels it carries."""

    record: RawRecord
    personal: tuple[str, ...]


def _paths(body: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every key path of a body (top level and one level down)."""
    paths: list[tuple[str, ...]] = [(k,) for k in body]
    for key, value in body.items():
        if isinstance(value, dict):
            paths += [(key, k) for k in value]
    return paths


def _set(body: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    node = body
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _delete(body: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = body
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


OPERATIONS = ("contact", "contact", "set", "set", "new", "delete", "rename", "wrap", "huge", "all")
CONTACT_FIELDS = ("name", "address", "notes")


@st.composite
def damaged_bodies(draw: st.DrawFn) -> tuple[str, object, tuple[str, ...]]:
    """A valid body with 1–3 damages at arbitrary positions: (topic, JSON value, sentinels)."""
    name = draw(st.sampled_from(sorted(BASES)))
    topic, base = BASES[name]
    body: Any = orjson.loads(orjson.dumps(base))  # a deep copy
    personal: list[str] = []
    for _ in range(draw(st.sampled_from((0, 1, 1, 1, 2, 3)))):
        if not isinstance(body, dict):
            break
        paths = _paths(body)
        op = draw(st.sampled_from(OPERATIONS))
        path = draw(st.sampled_from(paths)) if paths else ("x",)
        secret = draw(sentinels)
        personal.append(secret)
        if op == "contact":  # valid: the value may reach a queue record's contact only
            _set(body, ("contact", draw(st.sampled_from(CONTACT_FIELDS))), secret)
        elif op == "set":
            value = draw(json_values | st.just(secret))
            _set(body, path, value)
        elif op == "new":
            where = draw(st.sampled_from(((), ("indicators",), ("contact",), path[:-1])))
            _set(body, (*where, secret), draw(json_values | st.just(secret)))
        elif op == "delete":
            _delete(body, path)
        elif op == "rename":
            node_path, key = path[:-1], path[-1]
            _delete(body, path)
            _set(body, (*node_path, secret), base.get(key, secret))
        elif op == "wrap":
            _set(body, path, [secret, {secret: secret}])
        elif op == "huge":
            _set(body, path, secret * draw(st.sampled_from((20, 300, 5_000))))
        else:
            body = draw(json_values)
    text = orjson.dumps(body).decode()
    return topic, body, tuple(p for p in personal if p in text)


STAMPS = (
    *(BASE_TIME,) * 4,
    *(BASE_TIME + timedelta(hours=h) for h in (-1, 1, 25, 24 * 365, -24 * 365 * 20)),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2199, 12, 31, tzinfo=UTC),
    datetime(9999, 12, 31, 23, tzinfo=UTC),
)
"""Kafka record timestamps: mostly the event's, some far off (any producer sets them)."""


@st.composite
def damaged_records(draw: st.DrawFn) -> Damaged:
    """A record from a damaged body, maybe also damaged as bytes, on some topic, with
    some key and a record timestamp near or far from the event's time."""
    topic, body, personal = draw(damaged_bodies())
    value = orjson.dumps(body)
    cut = draw(st.sampled_from(("none",) * 8 + ("truncate", "splice")))
    if cut == "truncate" and len(value) > 1:
        value = value[: draw(st.integers(1, len(value) - 1))]
    elif cut == "splice":
        at = draw(st.integers(0, len(value)))
        value = value[:at] + draw(st.sampled_from((b"\xff", b"\xc3(", b"\x00", b'"'))) + value[at:]
    topic = draw(st.sampled_from((topic,) * 6 + (TOPICS.reports, TOPICS.updates)))
    secret = draw(sentinels)
    victim = VICTIM_REF.encode()
    key = draw(st.sampled_from((victim,) * 8 + (None, b"", b"\xff", secret.encode())))
    stamp = draw(st.sampled_from(STAMPS))
    personal = (*personal, secret) if key == secret.encode() else personal
    return Damaged(RawRecord(topic, key, value, stamp), personal)


random_records = st.builds(
    lambda topic, key, value, stamp: RawRecord(topic, key, value, stamp),
    st.sampled_from((TOPICS.reports, TOPICS.updates)),
    st.none() | st.binary(max_size=12) | st.just(VICTIM_REF.encode()),
    st.binary(max_size=300),
    st.datetimes(timezones=st.just(UTC)),
)
"""Records of arbitrary bytes."""
