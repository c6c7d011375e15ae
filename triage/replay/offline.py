"""Offline replay: run the engine over an event log, no broker involved."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator

from triage.events.outputs import OutputEvent
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord
from triage.pipeline.processor import Processor
from triage.replay.records import LogRecord, format_timestamp
from triage.replay.summary import Summary
from triage.topics import Topics

CONTENT_TYPE = "application/json"
VICTIM_REF = re.compile(r"V-[0-9A-Z]{4,32}")
_VICTIM_REF_B64 = 48
"""Base64 length of the longest victim reference (34 bytes)."""


def to_raw(record: LogRecord, topics: Topics) -> RawRecord:
    """A log line as the worker would consume it (no partition or offset offline)."""
    return RawRecord(
        topic=topics.with_prefix(record.topic),
        key=record.key.encode() if record.key is not None else None,
        value=record.value,
        timestamp=record.timestamp,
        headers=tuple((k, v.encode()) for k, v in record.headers.items()),
    )


def cloudevents_headers(output: OutputEvent) -> dict[str, str]:
    """CloudEvents Kafka binding headers for an output record."""
    return {
        "ce_specversion": output.specversion,
        "ce_id": output.id,
        "ce_type": output.type,
        "ce_source": output.source,
        "ce_time": format_timestamp(output.time),
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


def to_log_record(output: OutputEvent, topics: Topics) -> LogRecord:
    """An output record in the event-log line format (canonical topic names)."""
    return LogRecord(
        topic=topics.logical(topics.for_output(output)),
        key=output_key(output),
        timestamp=output.time,
        value=output.model_dump_json().encode(),
        headers=cloudevents_headers(output),
    )


def replay_offline(
    records: Iterable[LogRecord], engine: Engine, summary: Summary | None = None
) -> Iterator[LogRecord]:
    """Yield every output record of the log, in processing order; fills ``summary``."""
    topics = Topics()
    processor = Processor(engine, topics)
    for record in records:
        batch = processor.feed(to_raw(record, topics))
        if summary is not None:
            summary.events += 1
            summary.add(batch.observations)
        for output in batch.outputs:
            yield to_log_record(output, topics)
