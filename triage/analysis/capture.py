"""Replay a log offline and keep what it produced, as models, for analysis.

:func:`triage.replay.offline.replay_offline` streams output *records*; the
analyses need the records as models, and some need each input record beside
the observations and outputs it caused (to date them). Both loops drive the
same :class:`~triage.pipeline.processor.Processor` the same way, so they give
the same outputs (a unit test holds them to it).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field, TypeAdapter

from triage.events.outputs import (
    CaseDormant,
    DeadLetter,
    Decision,
    Escalation,
    OutputEvent,
    OverrideRejected,
    QueueRecord,
)
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Batch, Processor
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.replay.summary import Summary
from triage.topics import Topics

Listener = Callable[[LogRecord, Batch], None]
"""Called after each input record with what processing it produced."""

OUTPUT_ADAPTER: TypeAdapter[OutputEvent] = TypeAdapter(
    Annotated[OutputEvent, Field(discriminator="type")]
)
"""Parses any output record's JSON value back into its model."""


@dataclass(slots=True)
class Outputs:
    """Output records sorted by kind, in the order they were produced."""

    decisions: list[Decision] = field(default_factory=list)
    queue_records: list[QueueRecord] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    rejected_overrides: list[OverrideRejected] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dormant: list[CaseDormant] = field(default_factory=list)

    def add(self, output: OutputEvent) -> None:
        """File one output record under its kind."""
        if isinstance(output, Decision):
            self.decisions.append(output)
        elif isinstance(output, QueueRecord):
            self.queue_records.append(output)
        elif isinstance(output, Escalation):
            self.escalations.append(output)
        elif isinstance(output, OverrideRejected):
            self.rejected_overrides.append(output)
        elif isinstance(output, CaseDormant):
            self.dormant.append(output)
        else:
            self.dead_letters.append(output)

    def __len__(self) -> int:
        return (
            len(self.decisions)
            + len(self.queue_records)
            + len(self.escalations)
            + len(self.rejected_overrides)
            + len(self.dead_letters)
            + len(self.dormant)
        )


@dataclass(slots=True)
class Run:
    """One offline replay: the rule-set version, every output, the engine's own counts."""

    rules_version: str
    outputs: Outputs
    summary: Summary


def capture(records: Iterable[LogRecord], engine: Engine, listener: Listener | None = None) -> Run:
    """Replay ``records`` through ``engine`` (as ``replay --offline`` does) and keep it all."""
    topics = Topics()
    processor = Processor(engine, topics)
    summary = Summary()
    outputs = Outputs()
    with _no_cyclic_gc():
        for record in records:
            batch = processor.feed(to_raw(record, topics))
            summary.events += 1
            summary.add(batch.observations)
            for output in batch.outputs:
                outputs.add(output)
            if listener is not None:
                listener(record, batch)
    return Run(engine.rules.version, outputs, summary)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    # Keeping a year of outputs means hundreds of thousands of live objects; the
    # cyclic collector rescans them all again and again (a third of the run time)
    # although frozen models make no cycles. Reference counting still frees memory.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_output(record: LogRecord) -> OutputEvent:
    """The model of an output record (as ``replay -o`` or ``record`` wrote it)."""
    return OUTPUT_ADAPTER.validate_json(record.value)
