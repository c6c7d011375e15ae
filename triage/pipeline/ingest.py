"""Ingestion: raw Kafka bytes → ``Accepted(event)`` or ``Rejected(reason, detail)``.

Errors are values here, never exceptions: a rejected record keeps its original
bytes and goes to the dead-letter topic. Details name fields and error codes
only, never input values, because input may carry personal data.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from triage.events.base import EARLIEST, LATEST, stable_id
from triage.events.inputs import ClockWatermark, InputEvent
from triage.events.outputs import DeadLetter
from triage.events.registry import INPUT_MODELS, INPUT_TYPES, KNOWN_FIELDS
from triage.pipeline.effects import ENGINE_SOURCE
from triage.topics import Topics

MAX_BYTES = 64 * 1024
"""Largest record accepted; a report with a full contact block is a few KiB."""
MAX_SKEW = timedelta(hours=24)
"""How far an event's time may run ahead of its Kafka record timestamp."""
DEAD_LETTER_BYTES = 256 * 1024
"""The most of a record's value a dead letter carries (base64 makes it ~342 KiB)."""

REASONS = (
    "implausible_timestamp",
    "oversize",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "unknown_event_type",
    "unsupported_schema_version",
    "wrong_topic",
    "naive_timestamp",
    "schema_violation",
    "missing_key",
    "key_mismatch",
    "future_timestamp",
    "clock_jump",
    "unknown_case",
    "unknown_decision",
    "case_closed",
)
"""Every dead-letter reason code, in the order checks run."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as consumed: bytes plus where it came from."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp: datetime
    partition: int | None = None
    offset: int | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default=())


class Accepted(NamedTuple):
    """A valid event, ready for the engine (a named tuple: one is built per record)."""

    event: InputEvent | ClockWatermark
    record: RawRecord


class Rejected(NamedTuple):
    """An unusable record and why (a reason code and a detail free of input values)."""

    reason: str
    detail: str
    record: RawRecord


def ingest(record: RawRecord, topics: Topics, *, max_bytes: int = MAX_BYTES) -> Accepted | Rejected:
    """Validate one raw record. Never raises for bad input."""

    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(reason, detail, record)

    value = record.value
    if not EARLIEST <= record.timestamp < LATEST:
        return reject("implausible_timestamp", "record timestamp is not between 2000 and 2200")
    if len(value) > max_bytes:
        return reject("oversize", f"{len(value)} bytes, limit {max_bytes}")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # orjson refuses invalid UTF-8 too: tell the two apart only on failure.
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as bad:
            return reject("invalid_utf8", f"invalid UTF-8 at byte {bad.start}")
        return reject("invalid_json", f"not JSON (line {exc.lineno}, column {exc.colno})")
    if not isinstance(body, dict):
        return reject("not_an_object", f"JSON {type(body).__name__}, expected an object")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in INPUT_TYPES:
        return reject("unknown_event_type", "missing or unknown `type`")
    version = body.get("schema_version")
    # `type(...) is int`: True == 1 in Python, but `true` is not a version.
    model = INPUT_MODELS.get((kind, version)) if type(version) is int else None
    if model is None:
        return reject(
            "unsupported_schema_version", f"{kind} has no schema version {_safe(version)}"
        )
    if kind not in topics.accepts(record.topic):
        return reject("wrong_topic", f"{kind} does not belong on this topic")
    try:
        # Strict: "yes" is not a boolean and an epoch number is not a time.
        # (model.model_validate_json without its Python wrapper: the same call.)
        event: InputEvent | ClockWatermark = model.__pydantic_validator__.validate_json(
            value, strict=True
        )
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        reason = (
            "naive_timestamp"
            if any(e["type"] == "timezone_aware" for e in errors)
            else "schema_violation"
        )
        return reject(reason, describe_errors(errors))
    if not EARLIEST <= event.time < LATEST:
        return reject("implausible_timestamp", "event time is not between 2000 and 2200")
    if event.time > record.timestamp + MAX_SKEW:
        return reject("future_timestamp", "event time is more than 24 h after the record timestamp")
    if isinstance(event, ClockWatermark):
        return Accepted(event, record)
    if record.key is None:
        return reject("missing_key", "record has no key (expected the victim reference)")
    if record.key != event.victim_ref.encode():
        return reject("key_mismatch", "record key is not the event's victim_ref")
    return Accepted(event, record)


def describe_errors(errors: Sequence[Mapping[str, Any]], limit: int = 5) -> str:
    """``loc: error_type`` pairs with unknown keys masked, at most ``limit`` of them."""
    parts = []
    for error in errors[:limit]:
        loc = ".".join(_loc_part(p) for p in error["loc"]) or "(root)"
        parts.append(f"{loc}: {error['type']}")
    if len(errors) > limit:
        parts.append(f"(+{len(errors) - limit} more)")
    return "; ".join(parts)


def _loc_part(part: object) -> str:
    if isinstance(part, int):
        return str(part)
    if isinstance(part, str) and part in KNOWN_FIELDS:
        return part
    return "<unknown-field>"


def _safe(value: object) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "of that form"


def dead_letter(record: RawRecord, reason: str, detail: str, topics: Topics) -> DeadLetter:
    """The dead-letter record for ``record``: original bytes, coordinates, reason.

    Its id depends on the record's content, not on its offset, so the same bad
    record gives the same dead letter offline and through Kafka.
    """
    key_b64 = base64.b64encode(record.key).decode("ascii") if record.key is not None else None
    digest = hashlib.sha256(record.value).hexdigest()
    kept = record.value
    if len(kept) > DEAD_LETTER_BYTES:
        # Base64 grows bytes by a third: a record near the broker's size limit would
        # make a dead letter over it, and a dead letter that cannot be sent would stop
        # the worker. The whole record stays at its source coordinates (inputs are
        # kept without time limit); the dead letter keeps the head and the digest.
        kept = kept[:DEAD_LETTER_BYTES]
        detail = (
            f"{detail}; value truncated to {DEAD_LETTER_BYTES} of {len(record.value)} bytes"
            f" (sha256 {digest}); the whole record is at its source coordinates"
        )
    topic = topics.logical(record.topic)
    return DeadLetter(
        id=stable_id("L", topic, key_b64 or "", record.timestamp.isoformat(), digest),
        source=ENGINE_SOURCE,
        # An absurd record timestamp is kept in the id; the record's time is bounded.
        time=min(max(record.timestamp, EARLIEST), LATEST - timedelta(milliseconds=1)),
        reason=reason,
        detail=detail,
        source_topic=topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key_b64=key_b64,
        value_b64=base64.b64encode(kept).decode("ascii"),
    )
