"""The wire format of triage's Kafka records, in one place.

What a producer or a consumer of the topics agrees on, whether it is the live
worker (``triage.streaming``), the replay and capture tools (``triage.replay``) or
an upstream system:

- **Value**: one JSON object in UTF-8, an event of :mod:`triage.events`
  (content type :data:`CONTENT_TYPE`).
- **Key**: the victim reference in UTF-8 (:func:`output_key` for outputs; a dead
  letter reuses the bad record's key only when it is a well-formed reference).
- **Headers**: the CloudEvents 1.0 Kafka protocol binding in binary content mode
  (:func:`cloudevents_headers`): ``ce_specversion``, ``ce_id``, ``ce_type``,
  ``ce_source``, ``ce_time`` and ``content-type``.
- **Times**: a record's Kafka timestamp is milliseconds since the epoch
  (:func:`to_millis`, :func:`from_millis`); ``ce_time`` is ISO-8601 UTC with
  milliseconds and a ``Z`` (:func:`format_timestamp`).

Data flows one way: ``triage.streaming`` and ``triage.replay`` import from here,
never from each other.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

from triage.events.inputs import ClockWatermark, InputEvent
from triage.events.outputs import OutputEvent

CONTENT_TYPE = "application/json"
"""The ``content-type`` header of every record triage writes: values are JSON objects."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
VICTIM_REF = re.compile(r"V-[0-9A-Z]{4,32}")
"""A victim reference, the key of every record about a victim."""
_VICTIM_REF_B64 = 48
"""Base64 length of the longest victim reference (34 bytes)."""


def to_millis(when: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding)."""
    return (when - EPOCH) // timedelta(milliseconds=1)


_MAX_MILLIS = to_millis(datetime(9999, 12, 31, tzinfo=UTC))


def from_millis(millis: int) -> datetime:
    """The UTC datetime of a Kafka timestamp in milliseconds (clamped to what a
    datetime can hold: any producer may set a CreateTime, even an absurd one)."""
    return EPOCH + timedelta(milliseconds=min(max(millis, 0), _MAX_MILLIS))


def format_timestamp(when: datetime) -> str:
    """ISO-8601 UTC with millisecond precision (Kafka's resolution) and a ``Z``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def cloudevents_headers(event: OutputEvent | InputEvent | ClockWatermark) -> dict[str, str]:
    """CloudEvents Kafka binding headers (binary content mode) for a record of ``event``."""
    return {
        "ce_specversion": event.specversion,
        "ce_id": event.id,
        "ce_type": event.type,
        "ce_source": event.source,
        "ce_time": format_timestamp(event.time),
        "content-type": CONTENT_TYPE,
    }


def output_key(output: OutputEvent) -> str | None:
    """The Kafka key of an output: the victim reference (dead letters keep the input's key)."""
    victim = getattr(output, "victim_ref", None)
    if victim is not None:
        return str(victim)
    key_b64 = getattr(output, "key_b64", None)
    # A victim reference is at most 34 bytes (48 in base64): a longer key is not
    # one, and is not decoded (a dead letter keeps only the head of a long key).
    if key_b64 is None or len(key_b64) > _VICTIM_REF_B64:
        return None
    try:
        key = base64.b64decode(key_b64).decode("utf-8")
    except UnicodeDecodeError:
        return None
    # A bad record's key can be anything, a name included: only a well-formed
    # victim reference is reused as the dead letter's key (key_b64 keeps the rest).
    return key if VICTIM_REF.fullmatch(key) else None
