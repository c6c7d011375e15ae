"""Keeping personal data out of logs: an allow-list, not a deny-list.

Our own log calls may only carry the keys in :data:`ALLOWED_KEYS`; anything
else is dropped. Records from libraries (Faust, mode, aiokafka, kafka-python)
keep their message *template* only: their arguments and exception messages
can echo record contents, so they are replaced by type names.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

ALLOWED_KEYS = frozenset(
    {
        # structlog's own
        "event", "level", "logger", "timestamp", "exc_type", "exc_where",
        # where a record came from / went
        "topic", "partition", "offset", "event_id", "event_type", "decision_id", "record_id",
        # what happened
        "reason", "outcome", "level_", "queue", "unit", "stage", "kind", "count", "seconds",
        "rules_version", "victim", "bootstrap", "group", "partitions", "port", "pid", "path",
        "processed", "held", "lag", "mode", "version",
    }
)  # fmt: skip
"""Keys a log line may carry. ``victim`` is always a hash, never the reference."""


def victim_hash(victim_ref: str) -> str:
    """A short, stable pseudonym of a victim reference for correlating log lines."""
    return hashlib.sha256(b"triage-log:" + victim_ref.encode()).hexdigest()[:12]


class RedactPersonalData:
    """structlog processor: keep allow-listed keys; strip foreign records to their template."""

    __slots__ = ("allowed",)

    def __init__(self, allowed: frozenset[str] = ALLOWED_KEYS) -> None:
        self.allowed = allowed

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Drop every key that is not allowed; make foreign messages safe."""
        record = event_dict.get("_record")
        if isinstance(record, logging.LogRecord) and not event_dict.get("_from_structlog", False):
            # A library's (or a plain stdlib) record: keep the first line of its
            # template only. Arguments, exception objects used as messages and
            # pre-formatted text (asyncio's "future: <... exception=...>") may
            # echo record contents.
            msg = record.msg
            template = msg if isinstance(msg, str) else f"<{type(msg).__name__}>"
            event_dict["event"] = template.split("\n", 1)[0]
            if record.exc_info and record.exc_info[0] is not None:
                _describe(event_dict, record.exc_info[1])
            event_dict.pop("exc_info", None)
            event_dict.pop("positional_args", None)
        exc = event_dict.pop("exc_info", None)
        if exc is True:
            exc = sys.exc_info()
        if isinstance(exc, BaseException):
            _describe(event_dict, exc)
        elif isinstance(exc, tuple) and exc[0] is not None:
            _describe(event_dict, exc[1])
        for key in list(event_dict):
            if key not in self.allowed and not key.startswith("_"):
                del event_dict[key]
        return event_dict


def _describe(event_dict: MutableMapping[str, Any], exc: BaseException | None) -> None:
    """Exception type and where it was raised (file:line function, innermost last).

    Never the message: exception messages can quote record contents.
    """
    if exc is None:
        return
    event_dict["exc_type"] = type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    if frames:
        event_dict["exc_where"] = " < ".join(
            f"{frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno} {frame.name}"
            for frame in reversed(frames)
        )
