"""Offline replay: run the engine over an event log, no broker involved."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from triage.events.outputs import OutputEvent
from triage.events.wire import cloudevents_headers, output_key
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord
from triage.pipeline.processor import Processor
from triage.replay.records import LogRecord
from triage.replay.summary import Summary
from triage.topics import Topics


def to_raw(record: LogRecord, topics: Topics) -> RawRecord:
    """A log line as the worker would consume it (no partition or offset offline)."""
    return RawRecord(
        topic=topics.with_prefix(record.topic),
        key=record.key.encode() if record.key is not None else None,
        value=record.value,
        timestamp=record.timestamp,
        headers=tuple((k, v.encode()) for k, v in record.headers.items()),
    )


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
