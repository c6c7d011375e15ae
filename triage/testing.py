"""Helpers for tests and simulations: synthetic events, log records, raw records.

Every value here is synthetic. Defaults are deterministic and tell one small
story: a report about victim ``V-0001A2`` in Arras arrives on Monday
2026-01-05 at 10:00 UTC; the default lifecycle events (acknowledgement, action,
override, protection, closure) follow it and name its decision.

An event's default ``id`` is derived from its content, so building the same
event twice gives the same id (a redelivery), and two different events get
different ids::

    report = make_report(indicators={"weapon": "yes"})
    ack = make_ack(decision_id=decision_id_for(report), queue="high-risk", time=after(minutes=3))
    records = [record_of(report), record_of(ack)]
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from triage.events.base import EventModel, Level, decision_id_of
from triage.events.inputs import (
    CaseAcknowledged,
    CaseActionTaken,
    CaseClosed,
    CaseOverride,
    ClockWatermark,
    DeviceAlarm,
    InputEvent,
    ProtectionGranted,
    ReportReceived,
)
from triage.events.wire import cloudevents_headers
from triage.pipeline.ingest import RawRecord
from triage.replay.records import LogRecord
from triage.topics import REPORT_TYPES, Topics

__all__ = [
    "BASE_TIME",
    "RESPONDER_REF",
    "RURAL_COMMUNE",
    "SECOND_REVIEWER_REF",
    "UNKNOWN_COMMUNE",
    "URBAN_COMMUNE",
    "VICTIM_REF",
    "after",
    "decision_id_for",
    "make_ack",
    "make_action",
    "make_alarm",
    "make_closed",
    "make_override",
    "make_protection",
    "make_raw",
    "make_report",
    "make_watermark",
    "raw_of",
    "record_of",
]

BASE_TIME = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
"""Monday 2026-01-05 10:00 UTC (11:00 in Arras): when the default report happens."""
VICTIM_REF = "V-0001A2"
"""The default pseudonymous victim reference."""
RESPONDER_REF = "R-01"
"""The default responder (author of lifecycle events and overrides)."""
SECOND_REVIEWER_REF = "R-02"
"""A responder other than :data:`RESPONDER_REF`, for downgrades."""
URBAN_COMMUNE = "62041"
"""Arras: a police circonscription (urban)."""
RURAL_COMMUNE = "62080"
"""Bapaume: a gendarmerie company (rural)."""
UNKNOWN_COMMUNE = "62999"
"""A well-formed INSEE code that the packaged unit directory does not know."""
SOURCE = "urn:triage:test"
"""CloudEvents ``source`` of every event these helpers make."""

__test__ = False  # helpers, not tests, even when imported into a test module

_E = TypeVar("_E", bound=EventModel)


def after(**delta: float) -> datetime:
    """:data:`BASE_TIME` plus a :class:`~datetime.timedelta`, e.g. ``after(minutes=3)``."""
    return BASE_TIME + timedelta(**delta)


@cache
def _packaged_rules_version() -> str:
    from triage.scoring.rules import load_rules

    return load_rules().version


def decision_id_for(event: InputEvent, rules_version: str | None = None) -> str:
    """The id of the decision the engine makes for ``event`` (packaged rules by default)."""
    version = rules_version if rules_version is not None else _packaged_rules_version()
    return decision_id_of(event.source, event.id, version)


@cache
def _default_decision_id() -> str:
    return decision_id_for(make_report())


def _build(model: type[_E], prefix: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> _E:
    """Validate ``defaults`` + ``overrides``; without an ``id``, derive one from the content."""
    explicit_id = "id" in overrides
    data = {"id": f"{prefix}-pending", "source": SOURCE, **defaults, **overrides}
    event = model.model_validate(data)
    if explicit_id:
        return event
    digest = hashlib.sha256(event.model_dump_json(exclude={"id"}).encode()).hexdigest()[:20]
    return event.model_copy(update={"id": f"{prefix}-{digest}"})


def make_report(**overrides: Any) -> ReportReceived:
    """A report (defaults: victim called in on 17, Arras, every indicator unknown).

    ``indicators`` and ``contact`` may be given as plain dicts.
    """
    defaults: dict[str, Any] = {
        "time": BASE_TIME,
        "victim_ref": VICTIM_REF,
        "channel": "call_17_112",
        "commune": URBAN_COMMUNE,
        "reporter_role": "victim",
    }
    return _build(ReportReceived, "evt-report", defaults, overrides)


def make_alarm(**overrides: Any) -> DeviceAlarm:
    """A device alarm; ``device_ref`` defaults to a TGD or BAR reference matching ``alarm``."""
    alarm = overrides.get("alarm", "tgd_pressed")
    defaults: dict[str, Any] = {
        "time": BASE_TIME,
        "victim_ref": VICTIM_REF,
        "alarm": alarm,
        "device_ref": "TGD-01" if alarm == "tgd_pressed" else "BAR-01",
    }
    return _build(DeviceAlarm, "evt-alarm", defaults, overrides)


def _update_defaults(minutes: float) -> dict[str, Any]:
    return {
        "time": after(minutes=minutes),
        "victim_ref": VICTIM_REF,
        "responder_ref": RESPONDER_REF,
    }


def make_ack(**overrides: Any) -> CaseAcknowledged:
    """An acknowledgement, 3 minutes after :data:`BASE_TIME`, of the default report's
    decision in the ``standard`` queue (where a report with no risk factor goes)."""
    defaults = {**_update_defaults(3), "queue": "standard", "decision_id": _default_decision_id()}
    return _build(CaseAcknowledged, "evt-ack", defaults, overrides)


def make_action(**overrides: Any) -> CaseActionTaken:
    """A responder's action (victim contacted), 10 minutes after :data:`BASE_TIME`."""
    defaults = {
        **_update_defaults(10),
        "queue": "standard",
        "decision_id": _default_decision_id(),
        "action": "victim_contacted",
    }
    return _build(CaseActionTaken, "evt-action", defaults, overrides)


def make_override(**overrides: Any) -> CaseOverride:
    """An upward override to P1 by :data:`RESPONDER_REF`, 2 minutes after :data:`BASE_TIME`."""
    defaults = {
        **_update_defaults(2),
        "decision_id": _default_decision_id(),
        "direction": "up",
        "new_level": Level.P1,
        "reason": "professional_judgement",
    }
    return _build(CaseOverride, "evt-override", defaults, overrides)


def make_protection(**overrides: Any) -> ProtectionGranted:
    """A protection measure (grave-danger phone) granted a day after :data:`BASE_TIME`."""
    defaults = {**_update_defaults(24 * 60), "measure": "tgd"}
    return _build(ProtectionGranted, "evt-protection", defaults, overrides)


def make_closed(**overrides: Any) -> CaseClosed:
    """The case closed as resolved, a week after :data:`BASE_TIME`."""
    defaults = {**_update_defaults(7 * 24 * 60), "outcome": "resolved"}
    return _build(CaseClosed, "evt-closed", defaults, overrides)


def make_watermark(**overrides: Any) -> ClockWatermark:
    """A clock watermark (the end of a replayed log), a day after :data:`BASE_TIME`."""
    return _build(ClockWatermark, "wm", {"time": after(days=1)}, overrides)


Recordable = InputEvent | ClockWatermark
"""What :func:`record_of` and :func:`raw_of` accept."""


def _logical_topic(event: Recordable) -> str:
    topics = Topics()
    return topics.reports if event.type in REPORT_TYPES else topics.updates


def _key(event: Recordable) -> str | None:
    return None if isinstance(event, ClockWatermark) else event.victim_ref


def record_of(event: Recordable, topic: str | None = None) -> LogRecord:
    """``event`` as an event-log line: keyed by victim, stamped with the event time.

    ``topic`` is the canonical (unprefixed) name; by default the topic the event
    type belongs on. A watermark has no key.
    """
    return LogRecord(
        topic=topic if topic is not None else _logical_topic(event),
        key=_key(event),
        timestamp=event.time,
        value=event.model_dump_json().encode(),
        headers=cloudevents_headers(event),
    )


def raw_of(
    event: Recordable,
    *,
    topics: Topics | None = None,
    **overrides: Any,
) -> RawRecord:
    """``event`` as the worker consumes it; ``topic``, ``key``, ``timestamp``… may be overridden."""
    topics = topics if topics is not None else Topics()
    fields: dict[str, Any] = {
        "topic": topics.with_prefix(_logical_topic(event)),
        "key": None if (key := _key(event)) is None else key.encode(),
        "value": event.model_dump_json().encode(),
        "timestamp": event.time,
        **overrides,
    }
    return RawRecord(**fields)


def make_raw(value: bytes, **overrides: Any) -> RawRecord:
    """Arbitrary bytes on the reports topic, keyed by :data:`VICTIM_REF`, at :data:`BASE_TIME`."""
    fields: dict[str, Any] = {
        "topic": Topics().reports,
        "key": VICTIM_REF.encode(),
        "value": value,
        "timestamp": BASE_TIME,
        **overrides,
    }
    return RawRecord(**fields)
