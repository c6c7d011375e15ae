"""Ingestion: raw Kafka bytes → ``Accepted(event)`` or ``Rejected(reason, detail)``.

Errors are values here, never exceptions: a rejected record keeps its original
bytes and goes to the dead-letter topic. Details name fields and error codes
only, never input values, because input may carry personal data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from triage.events.base import EARLIEST, LATEST, stable_id
from triage.events.inputs import ClockWatermark, InputEvent
from triage.events.outputs import DeadLetter, HeaderSummary
from triage.events.registry import INPUT_MODELS, INPUT_TYPES, KNOWN_FIELDS
from triage.pipeline.effects import ENGINE_SOURCE
from triage.topics import Topics

MAX_BYTES = 64 * 1024
"""Largest record accepted; a report with a full contact block is a few KiB."""
MAX_SKEW = timedelta(hours=24)
"""How far an event's time may run ahead of its Kafka record timestamp."""
DEAD_LETTER_BYTES = 256 * 1024
"""The most of a record's value a dead letter carries (base64 makes it ~342 KiB)."""
DEAD_LETTER_KEY_BYTES = 1024
"""The most of a record's key a dead letter carries (a victim reference is 34 bytes)."""
DEAD_LETTER_HEADERS = 32
"""The most header names a dead letter lists (``header_count`` says how many there were)."""
HEADER_NAME_CHARS = 64
"""Header names are cut to this many characters in a dead letter."""
DEAD_LETTER_DETAIL_CHARS = 2048
"""A reason's detail is cut to this many characters (truncation notes come after it)."""
DEAD_LETTER_MAX_JSON = 400 * 1024
"""Upper bound of a dead letter's JSON, whatever the record: the value's base64
(349,528 bytes), the key's (1,368), 32 header names (≤ 3 KiB with their JSON),
the detail (≤ 2,048 characters of ASCII field names and codes, plus notes) and the
envelope, coordinates, sizes and digests (< 2 KiB). Well under Kafka's default
1 MiB message limit, with room for the record's headers and batch overhead."""
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9._:-]+")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The integers a record may hold: signed 64-bit, what Kafka's own tools and Java
consumers read (JSON has no limit; orjson would turn a larger one into a float)."""
_DIGIT_RUNS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
"""A ``bytes.translate`` table: digits become ``0``, every other byte a space."""
_INT64_DIGITS = b"0" * 19
"""An integer out of the signed 64-bit range has at least 19 digits."""

REASONS = (
    "implausible_timestamp",
    "oversize",
    "invalid_utf8",
    "invalid_json",
    "non_finite_number",
    "number_out_of_range",
    "duplicate_key",
    "not_an_object",
    "unknown_event_type",
    "unsupported_schema_version",
    "wrong_topic",
    "naive_timestamp",
    "schema_violation",
    "missing_key",
    "key_mismatch",
    "future_timestamp",
    "unknown_case",
    "unknown_decision",
    "case_closed",
)
"""Every dead-letter reason code, in the order checks run."""
RETIRED_REASONS = ("clock_jump",)
"""Reason codes the pipeline no longer gives, which older dead letters may carry.

``clock_jump``: an event more than 90 days after its partition's stream clock, refused
until a quiet partition's legitimate reports were found refused with it. Event time is
now trusted as the mode allows (see :class:`triage.pipeline.processor.Processor`).
"""
PROCESSING_ERROR = "processing_error"
"""The reason code of a record whose processing raised (a bug, not a bad record).

Kept apart from :data:`REASONS`, the verdicts on records: a correct pipeline
never gives it, and the corpus tests require every code in REASONS to occur.
"""


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

    parsed = False

    def reject(reason: str, detail: str) -> Rejected:
        if parsed and _INT64_DIGITS in value.translate(_DIGIT_RUNS):
            # orjson reads an integer beyond 64 bits as a float, which no input model
            # accepts (tests/unit/test_ingest.py checks that none has a free number
            # field): a record holding one is refused, and for that reason first.
            lax = strict_json_problem(value.decode("utf-8"))
            if lax is not None:
                reason, detail = lax
        return Rejected(reason, detail, record)

    value = record.value
    if not EARLIEST <= record.timestamp < LATEST:
        return reject("implausible_timestamp", "record timestamp is not between 2000 and 2200")
    if len(value) > max_bytes:
        return reject("oversize", f"{len(value)} bytes, limit {max_bytes}")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # orjson refuses invalid UTF-8, NaN, Infinity and numbers that overflow a
        # double too: tell them apart only on failure.
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as bad:
            return reject("invalid_utf8", f"invalid UTF-8 at byte {bad.start}")
        lax = strict_json_problem(text)
        if lax is not None:
            return reject(*lax)
        return reject("invalid_json", f"not JSON (line {exc.lineno}, column {exc.colno})")
    if _maybe_duplicate(value, body):
        # Rare on valid input (see _maybe_duplicate): the exact check parses again.
        lax = strict_json_problem(value.decode("utf-8"))
        if lax is not None:
            return reject(*lax)
    parsed = True
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


def _maybe_duplicate(value: bytes, body: object) -> bool:
    """Whether ``value``, which orjson parsed into ``body``, may hold a duplicate key
    (orjson keeps the last one). False means it holds none.

    A few passes over the bytes in C (1–2 µs for a report). ``body`` re-encoded is
    ``value`` itself when the producer wrote compact JSON as orjson does. Otherwise:
    every key of ``value`` is followed by one colon, and its strings hold the rest of
    its colons. ``body`` re-encoded holds one colon per key it kept and the same
    string colons but those a dropped duplicate held: without duplicates the counts
    are equal, with one the raw text has more. Unless a string spells a colon as an
    escape (``\\u003a``), which counts on one side only: then the exact check runs.
    """
    try:
        kept = orjson.dumps(body)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: let the check decide
        return True
    if kept == value:
        return False
    return value.count(b":") != kept.count(b":") or (b"\\" in value and b"\\u003" in value)


class _Pairs(tuple[tuple[str, Any], ...]):
    """A JSON object as parsed by the strict check: its members in order, duplicates kept."""

    __slots__ = ()


class _Lax(NamedTuple):
    """A number the strict check refuses, in place of its value."""

    reason: str


_NON_FINITE = _Lax("non_finite_number")
_OUT_OF_RANGE = _Lax("number_out_of_range")


def _strict_int(text: str) -> object:
    if len(text.lstrip("-")) > 19:  # before int(): Python refuses over 4,300 digits
        return _OUT_OF_RANGE
    number = int(text)
    return number if INT64_MIN <= number <= INT64_MAX else _OUT_OF_RANGE


def _strict_float(text: str) -> object:
    number = float(text)  # a JSON number literal is never NaN, and is inf if it overflows
    return _OUT_OF_RANGE if math.isinf(number) else number


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_Pairs,
    parse_int=_strict_int,
    parse_float=_strict_float,
    parse_constant=lambda _name: _NON_FINITE,
)
_STRICT_ORDER = {reason: i for i, reason in enumerate(REASONS)}


def strict_json_problem(text: str) -> tuple[str, str] | None:
    """The reason and detail for what strict JSON refuses in ``text``: ``NaN`` or
    ``Infinity`` (``non_finite_number``), an integer beyond signed 64 bits or a number
    that overflows a double (``number_out_of_range``), a key twice in one object
    (``duplicate_key``). None if ``text`` holds none of them, or is not JSON even to
    Python's lenient parser (or is nested too deep for it).

    The detail locates each problem like :func:`describe_errors`, unknown keys masked;
    the reason is the first of them in :data:`REASONS` order. Slow (a Python-level
    parse and walk): only for records the fast checks could not clear.
    """
    try:
        tree = _STRICT_DECODER.decode(text)
    except (ValueError, RecursionError):
        return None
    problems: list[dict[str, Any]] = []
    stack: list[tuple[tuple[str | int, ...], object]] = [((), tree)]
    while stack:  # iterative: the tree may be as deep as the parser allows
        loc, node = stack.pop()
        if isinstance(node, _Lax):
            problems.append({"loc": loc, "type": node.reason})
        elif isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, _child in node:
                if key in seen:
                    problems.append({"loc": (*loc, key), "type": "duplicate_key"})
                seen.add(key)
            stack.extend(((*loc, key), child) for key, child in reversed(node))
        elif isinstance(node, list):
            stack.extend(((*loc, i), child) for i, child in reversed(list(enumerate(node))))
    if not problems:
        return None
    reason = min((p["type"] for p in problems), key=_STRICT_ORDER.__getitem__)
    return reason, describe_errors(problems)


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

    Whatever the record's key, value and headers, the dead letter stays bounded
    (its JSON under :data:`DEAD_LETTER_MAX_JSON`): it keeps the head of the key
    and of the value, each part's size and SHA-256, and a summary of at most
    :data:`DEAD_LETTER_HEADERS` header names with their value sizes (never the
    values). The whole record stays at its source coordinates (inputs are kept
    without time limit). A dead letter that cannot be sent would stop the worker.
    """
    key = record.key
    # The id hashes the whole key's base64, as it always has: ids do not change.
    key_b64 = base64.b64encode(key).decode("ascii") if key is not None else None
    digest = hashlib.sha256(record.value).hexdigest()
    notes = []
    kept = record.value
    if len(kept) > DEAD_LETTER_BYTES:
        # Base64 grows bytes by a third: a record near the broker's size limit would
        # make a dead letter over it.
        kept = kept[:DEAD_LETTER_BYTES]
        notes.append(
            f"value truncated to {DEAD_LETTER_BYTES} of {len(record.value)} bytes"
            f" (sha256 {digest}); the whole record is at its source coordinates"
        )
    kept_key_b64 = key_b64
    if key is not None and len(key) > DEAD_LETTER_KEY_BYTES:
        kept_key_b64 = base64.b64encode(key[:DEAD_LETTER_KEY_BYTES]).decode("ascii")
        notes.append(f"key truncated to {DEAD_LETTER_KEY_BYTES} of {len(key)} bytes")
    detail = _clip(detail, DEAD_LETTER_DETAIL_CHARS)
    if notes:
        detail = "; ".join([detail, *notes]) if detail else "; ".join(notes)
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
        key_b64=kept_key_b64,
        value_b64=base64.b64encode(kept).decode("ascii"),
        key_size=len(key) if key is not None else None,
        key_sha256=hashlib.sha256(key).hexdigest() if key is not None else None,
        value_size=len(record.value),
        value_sha256=digest,
        header_count=len(record.headers),
        headers=tuple(
            HeaderSummary(name=header_name(name), size=len(value))
            for name, value in record.headers[:DEAD_LETTER_HEADERS]
        ),
    )


def minimal_dead_letter(letter: DeadLetter, cause: str) -> DeadLetter:
    """``letter`` without any payload: same id, reason, coordinates, sizes and digests.

    Sent in place of a dead letter the broker refused (``cause``: the error's type
    name), so that the record is still accounted for; the whole record is at its
    source coordinates, and the digests identify it there.
    """
    detail = (
        f"{letter.detail}; payload not kept (the full dead letter was refused: {_clip(cause, 64)});"
        " the whole record is at its source coordinates"
    )
    return letter.model_copy(
        update={"detail": detail, "key_b64": None, "value_b64": "", "headers": None}
    )


def header_name(name: str) -> str:
    """A header name as a dead letter shows it: a protocol token of at most
    :data:`HEADER_NAME_CHARS` characters, anything else masked.

    Header names are protocol names (``ce_id``, ``traceparent``…); one with spaces or
    other characters may be text a producer put there, so it is not repeated.
    """
    name = name[:HEADER_NAME_CHARS]
    return name if _HEADER_TOKEN.fullmatch(name) else "<masked>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
