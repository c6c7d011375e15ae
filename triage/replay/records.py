"""The event-log line format shared by every tool that reads or writes logs.

One Kafka record per line, JSON::

    {"topic": "dv.reports.v1", "key": "V-0001A2", "timestamp": "2026-01-05T10:00:00.000Z",
     "headers": {"ce_type": "report.received"}, "value": {...}}

``value`` holds the record when it is a JSON object; anything else (invalid
JSON, invalid UTF-8, a JSON array…) is kept byte for byte in ``value_b64``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from triage.errors import EventLogError
from triage.events.wire import format_timestamp


def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`format_timestamp` (any ISO-8601 with an offset is accepted)."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("timestamp has no timezone")
    return when.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One Kafka record as it appears in an event log."""

    topic: str
    key: str | None
    timestamp: datetime
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(
        cls,
        topic: str,
        key: str | None,
        timestamp: datetime,
        value: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> LogRecord:
        """A record whose value is a JSON object."""
        return cls(topic, key, timestamp, orjson.dumps(value), dict(headers or {}))

    def to_line(self) -> bytes:
        """The JSON Lines form (no trailing newline). Deterministic."""
        body: dict[str, Any] = {
            "topic": self.topic,
            "key": self.key,
            "timestamp": format_timestamp(self.timestamp),
            "headers": dict(self.headers),
        }
        parsed = _as_object(self.value)
        if parsed is not None:
            body["value"] = orjson.Fragment(self.value)
        else:
            body["value_b64"] = base64.b64encode(self.value).decode("ascii")
        return orjson.dumps(body)

    @classmethod
    def from_line(cls, line: bytes | str) -> LogRecord:
        """Parse one line; raises ``ValueError`` with a plain reason when malformed."""
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ValueError("line is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError("line is not a JSON object")
        try:
            topic, key, stamp = body["topic"], body.get("key"), body["timestamp"]
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]!r}") from None
        if not isinstance(topic, str) or not (key is None or isinstance(key, str)):
            raise ValueError("topic must be a string and key a string or null")
        headers = body.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers must be an object of strings")
        if "value" in body:
            value = orjson.dumps(body["value"])
        elif "value_b64" in body:
            try:
                value = base64.b64decode(body["value_b64"], validate=True)
            except (ValueError, TypeError):
                raise ValueError("value_b64 is not base64") from None
        else:
            raise ValueError("missing field 'value' or 'value_b64'")
        try:
            timestamp = parse_timestamp(stamp)
        except (TypeError, ValueError):
            raise ValueError("timestamp is not ISO-8601 with a timezone") from None
        return cls(topic, key, timestamp, value, headers)


def _as_object(value: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    # Only keep it inline when re-encoding gives back the very same bytes.
    return parsed if orjson.dumps(parsed) == value else None


def read_log(path: str | Path) -> Iterator[LogRecord]:
    """Yield the records of a JSON Lines log; a bad line raises EventLogError naming it."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise EventLogError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield LogRecord.from_line(line)
            except ValueError as exc:
                raise EventLogError(f"{path}:{number}: {exc}") from None


def write_records(handle: IO[bytes], records: Iterable[LogRecord]) -> int:
    """Write records as JSON Lines; returns how many were written."""
    count = 0
    for record in records:
        handle.write(record.to_line())
        handle.write(b"\n")
        count += 1
    return count


def write_log(path: str | Path, records: Iterable[LogRecord]) -> int:
    """Write a JSON Lines log file; returns the number of records."""
    path = Path(path)
    try:
        with path.open("wb") as handle:
            return write_records(handle, records)
    except OSError as exc:
        raise EventLogError(f"{path}: cannot write ({exc.strerror})") from None
