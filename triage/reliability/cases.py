"""What a corpus case is: a record under test, its victim's setup, the outcome it must get."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from triage.events.inputs import InputEvent
from triage.pipeline.ingest import RawRecord
from triage.replay.records import LogRecord
from triage.topics import REPORT_TYPES, Topics

Outcome = Literal["dead_letter", "decided", "override_rejected", "ignored", "duplicate"]
OUTCOMES: tuple[Outcome, ...] = (
    "dead_letter",
    "decided",
    "override_rejected",
    "ignored",
    "duplicate",
)
REPORTS, UPDATES = Topics().reports, Topics().updates
"""The canonical (unprefixed) input topics."""
SENTINEL_MARK = "Zq§"
"""How every sentinel personal value starts (``§`` never occurs in base64 or JSON
escapes), so a search for it finds any leak of any of them."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One record as it is published: canonical topic, key and value bytes, timestamp."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp: datetime

    def raw(self, topics: Topics) -> RawRecord:
        """The record as the worker consumes it from ``topics`` (no partition or offset)."""
        return RawRecord(topics.with_prefix(self.topic), self.key, self.value, self.timestamp)

    def log_record(self) -> LogRecord:
        """The record as an event-log line (raises if the key is not UTF-8)."""
        key = self.key.decode("utf-8") if self.key is not None else None
        return LogRecord(self.topic, key, self.timestamp, self.value)

    @property
    def key_b64(self) -> str | None:
        """The key as a dead letter keeps it."""
        return base64.b64encode(self.key).decode("ascii") if self.key is not None else None

    @property
    def value_b64(self) -> str:
        """The value as a dead letter keeps it."""
        return base64.b64encode(self.value).decode("ascii")


@dataclass(frozen=True, slots=True)
class Expect:
    """What must become of a probe. ``reason`` is a dead-letter reason, an override
    reason code or an ``ignored`` reason; it is empty for decided and duplicate."""

    outcome: Outcome
    reason: str = ""
    flagged: bool = False
    """For ``decided``: the decision must flag the unit (unknown commune)."""

    @property
    def label(self) -> str:
        """``outcome`` or ``outcome:reason``, for tallies."""
        return f"{self.outcome}:{self.reason}" if self.reason else self.outcome


@dataclass(frozen=True, slots=True)
class Case:
    """A record under test, the valid records its victim needs first, and its outcome."""

    kind: str
    probe: Probe
    expect: Expect
    setup: tuple[Probe, ...] = ()
    event_id: str | None = None
    """The id of the probe's event, when it is one (decisions and rejections name it)."""
    personal: tuple[str, ...] = ()
    """Sentinel personal values the probe carries: never in a log line or a detail."""
    at: datetime | None = None
    """When the case happens in the interleaved stream (its records may be stamped
    elsewhere, e.g. in 1970); by default its probe's timestamp."""


def probe_of(event: InputEvent, *, topic: str | None = None) -> Probe:
    """A valid event as published: keyed by its victim, on the topic of its type."""
    default = REPORTS if event.type in REPORT_TYPES else UPDATES
    return Probe(
        topic or default, event.victim_ref.encode(), event.model_dump_json().encode(), event.time
    )
