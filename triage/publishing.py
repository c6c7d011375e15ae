"""The validated publish path: one event checked by ingestion, then sent to its topic.

``triage publish`` and the console's actions both go through :func:`validate_event`
and :func:`send_event`, so an event the worker would dead-letter is refused here,
before it reaches Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from triage.errors import TriageError
from triage.events.inputs import ClockWatermark, InputEvent
from triage.events.wire import to_millis
from triage.pipeline.ingest import Accepted, RawRecord, ingest, strict_json_problem
from triage.topics import REPORT_TYPES, Topics

PUBLISH_TIMEOUT = 30.0
"""Seconds a publication waits for the broker to acknowledge the event."""


class PublishRefused(TriageError):
    """The event was not published: invalid, or the broker did not take it.

    ``usage`` is true when the input is not an event at all (not a JSON object).
    """

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True, slots=True)
class Publication:
    """An event that passed ingestion: where it goes, its key and its bytes."""

    topic: str
    key: bytes | None
    value: bytes
    event: InputEvent | ClockWatermark
    stamp: datetime
    """The record timestamp it was validated with, and is sent with."""


def validate_event(value: bytes, topics: Topics, stamp: datetime) -> Publication:
    """Check ``value`` as the worker will (:func:`triage.pipeline.ingest.ingest`), with
    ``stamp`` as its record timestamp; raises :class:`PublishRefused` naming the reason."""
    try:
        body = orjson.loads(value)
        kind, key = body.get("type"), body.get("victim_ref")
    except (orjson.JSONDecodeError, AttributeError):
        # NaN, Infinity or a number that overflows: JSON to lenient parsers, not to triage.
        try:
            lax = strict_json_problem(value.decode("utf-8"))
        except UnicodeDecodeError:
            lax = None
        if lax is not None:
            raise PublishRefused(f"not published: {lax[0]} ({lax[1]})") from None
        raise PublishRefused("the event is not a JSON object", usage=True) from None
    if not isinstance(kind, str):
        kind = ""
    topic = topics.reports if kind in REPORT_TYPES else topics.updates
    raw = RawRecord(topic, key.encode() if isinstance(key, str) else None, value, stamp)
    result = ingest(raw, topics)
    if not isinstance(result, Accepted):
        raise PublishRefused(f"not published: {result.reason} ({result.detail})")
    return Publication(topic, raw.key, value, result.event, stamp)


def send_event(producer: Any, publication: Publication, timeout: float = PUBLISH_TIMEOUT) -> None:
    """Send a validated event and wait for the broker's acknowledgement."""
    from kafka.errors import KafkaError

    try:
        producer.send(
            publication.topic,
            key=publication.key,
            value=publication.value,
            timestamp_ms=to_millis(publication.stamp),
        ).get(timeout=timeout)
    except KafkaError as exc:  # named by type only: the text could carry the event
        raise PublishRefused(
            f"not published: the broker did not acknowledge the event ({type(exc).__name__})"
        ) from None
