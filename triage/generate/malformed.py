"""Malformed records of many kinds, for exercising the dead-letter path.

Each is keyed and stamped like the good record it follows, so the log stays in
time order. None carries a contact block, and each has its own ``bad-…`` id so
that it can never collide with a good event's id.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from random import Random
from typing import Any

import orjson

from triage.events.base import Level
from triage.events.inputs import CaseAcknowledged, CaseOverride, ReportReceived
from triage.events.wire import format_timestamp
from triage.generate.config import GeneratorConfig
from triage.generate.factory import REPORTS_TOPIC, UPDATES_TOPIC
from triage.replay.records import LogRecord

MALFORMED_KINDS = (
    "truncated_json",
    "invalid_utf8",
    "json_array",
    "wrong_types",
    "unknown_event_type",
    "unsupported_schema_version",
    "missing_field",
    "naive_timestamp",
    "future_timestamp",
    "missing_key",
    "key_mismatch",
    "oversize",
    "wrong_topic",
    "unknown_victim_ack",
    "unknown_decision_override",
)
"""Every kind of malformed record the generator writes."""
_KIND_WEIGHTS = tuple(0.2 if kind == "oversize" else 1.0 for kind in MALFORMED_KINDS)
"""Oversize records are rarer: each one weighs 66 KiB in the log and its dead letter."""

_WRONG_TYPES: tuple[dict[str, Any], ...] = (
    {"channel": 17},
    {"complaint_filed": {"value": True}},
    {"indicators": "all"},
    {"injuries": 3},
    {"commune": 62041},
)
_UNKNOWN_TYPES = ("report.deleted", "case.reopened", "report.received.v2", "")
_REQUIRED = ("victim_ref", "channel", "commune", "reporter_role", "time", "id")
_OVERSIZE = 66 * 1024
_HEX = "0123456789abcdef"


class MalformedRecords:
    """Draws the malformed records that follow each good one (``bad_rate`` of the total)."""

    def __init__(self, config: GeneratorConfig) -> None:
        self._rng = Random(config.stream("malformed"))
        ratio = config.bad_rate / (1.0 - config.bad_rate)
        self._whole = int(ratio)
        self._fraction = ratio - self._whole
        self._seed = config.seed
        self._count = 0

    def after(self, good: LogRecord) -> list[LogRecord]:
        """Zero or more malformed records to write right after ``good``."""
        count = self._whole + (self._rng.random() < self._fraction)
        return [
            self.make(self._rng.choices(MALFORMED_KINDS, _KIND_WEIGHTS)[0], good)
            for _ in range(count)
        ]

    def make(self, kind: str, good: LogRecord) -> LogRecord:
        """One malformed record of ``kind``, keyed and stamped like ``good``."""
        rng, at = self._rng, good.timestamp
        self._count += 1
        ident = f"bad-{self._seed}-{self._count}"
        key = good.key if good.key is not None else self._stranger()
        body = self._report(ident, key, at)
        topic: str = REPORTS_TOPIC
        if kind == "truncated_json":
            raw = orjson.dumps(body)
            return self._record(ident, topic, key, at, raw[: rng.randrange(1, len(raw) - 1)], body)
        if kind == "invalid_utf8":
            raw = orjson.dumps(body)
            cut = rng.randrange(1, len(raw) - 1)
            return self._record(ident, topic, key, at, raw[:cut] + b"\xff\xfe" + raw[cut:], body)
        if kind == "json_array":
            return self._record(ident, topic, key, at, orjson.dumps([body]), body)
        if kind == "wrong_types":
            body.update(rng.choice(_WRONG_TYPES))
        elif kind == "unknown_event_type":
            body["type"] = rng.choice(_UNKNOWN_TYPES)
        elif kind == "unsupported_schema_version":
            body["schema_version"] = rng.choice((99, 1000, 0))
        elif kind == "missing_field":
            del body[rng.choice(_REQUIRED)]
        elif kind == "naive_timestamp":
            body["time"] = at.replace(tzinfo=None).isoformat(timespec="milliseconds")
        elif kind == "future_timestamp":
            ahead = timedelta(hours=rng.randrange(25, 24 * 30))
            body["time"] = format_timestamp(at + ahead)
        elif kind == "missing_key":
            return self._record(ident, topic, None, at, orjson.dumps(body), body)
        elif kind == "key_mismatch":
            body["victim_ref"] = self._stranger()
        elif kind == "oversize":
            body["padding"] = "synthetic padding " * (_OVERSIZE // 18 + 1)
        elif kind == "wrong_topic":
            if rng.random() < 0.5:
                topic = UPDATES_TOPIC
            else:
                body = self._ack(ident, key, at)
        elif kind == "unknown_victim_ack":
            key, topic = self._stranger(), UPDATES_TOPIC
            body = self._ack(ident, key, at)
        elif kind == "unknown_decision_override":
            topic = UPDATES_TOPIC
            body = self._override(ident, key, at)
        else:
            raise ValueError(f"unknown malformed kind {kind!r}")
        return self._record(ident, topic, key, at, orjson.dumps(body), body)

    def _stranger(self) -> str:
        """A victim reference no generated victim has (``Z`` is not a hex digit)."""
        return f"V-ZZ{self._rng.randrange(10**6):06d}"

    def _decision(self) -> str:
        return "D-" + "".join(self._rng.choice(_HEX) for _ in range(24))

    def _report(self, ident: str, victim_ref: str, at: datetime) -> dict[str, Any]:
        return ReportReceived(
            id=ident,
            source="urn:dv:channel:other",
            time=at,
            victim_ref=victim_ref,
            channel="other",
            commune="62041",
            reporter_role="anonymous",
        ).model_dump(mode="json")

    def _ack(self, ident: str, victim_ref: str, at: datetime) -> dict[str, Any]:
        return CaseAcknowledged(
            id=ident,
            source="urn:dv:responder:dep62-default",
            time=at,
            victim_ref=victim_ref,
            responder_ref="R-DEP62DEFAULT01",
            queue="standard",
            decision_id=self._decision(),
        ).model_dump(mode="json")

    def _override(self, ident: str, victim_ref: str, at: datetime) -> dict[str, Any]:
        return CaseOverride(
            id=ident,
            source="urn:dv:responder:dep62-default",
            time=at,
            victim_ref=victim_ref,
            responder_ref="R-DEP62DEFAULT01",
            decision_id=self._decision(),
            direction="up",
            new_level=Level.P1,
            reason="new_information",
        ).model_dump(mode="json")

    @staticmethod
    def _record(
        ident: str, topic: str, key: str | None, at: datetime, value: bytes, body: dict[str, Any]
    ) -> LogRecord:
        kind = body.get("type")
        headers = {
            "ce_type": kind if isinstance(kind, str) and kind else "unknown",
            "ce_id": ident,
            "ce_source": str(body.get("source", "unknown")),
            "ce_specversion": "1.0",
        }
        return LogRecord(topic, key, at, value, headers)
