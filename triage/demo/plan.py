"""The demo's input stream, planned ahead in event time: reports and alarms with the
simulated responders' acknowledgements and actions interleaved by timestamp.

The responders answer queue records, and the worker's queue records depend on the
answers it got (an acknowledged case is not escalated, a re-assessment follows a
decision...). Both are simulated here in one pass over event time, with the same
:class:`Processor` the worker runs: the reports go in in log order; between two of
them the responders' events stamped earlier go in, one at a time, in time order;
each queue record the processor writes is offered to the responders at the stream
time it was written. Nothing reads the wall clock, so the plan is a function of the
log (hence of the generator's seed) alone.

The demo then plays the plan through the broker to a real worker. Read in this
order, per partition, the worker takes every record at the place the plan did (its
merge releases records by timestamp, reports before updates on a tie, and the plan
is sorted that way), so it writes what the plan's processor wrote: the plan's
:class:`Expected` counts are the check of that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from triage.demo.responders import DEFAULT_TEAMS, ResponderPool
from triage.events.outputs import DeadLetter, Decision, Escalation, OutputEvent, QueueRecord
from triage.events.wire import from_millis, to_millis
from triage.generate.factory import log_record
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Batch, Processor
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.topics import Topics

STEP = timedelta(minutes=1)
"""How far the responders' clock moves at a time between two records of the stream:
a queue record written by an answer waits at most this long for a responder who
has already been given other work (answers come ``ACK_HANDLING`` or more after the
work starts, so an answer never falls inside the step that started it)."""


@dataclass(slots=True)
class Expected:
    """What the worker should write for the plan: distinct records per kind, as the
    demo's monitor counts them (dead letters are counted as written)."""

    decisions: Counter[str] = field(default_factory=Counter)
    """Per level."""
    queue_records: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Per queue and level."""
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Per level and stage."""
    dead_letters: int = 0
    _ids: set[str] = field(default_factory=set, repr=False)

    def add(self, output: OutputEvent) -> None:
        """Count one output of the plan's processor."""
        if isinstance(output, DeadLetter):
            self.dead_letters += 1
            return
        if output.id in self._ids:
            return
        if isinstance(output, Decision):
            self.decisions[output.level.value] += 1
        elif isinstance(output, Escalation):
            self.escalations[(output.level.value, output.stage)] += 1
        elif isinstance(output, QueueRecord):
            self.queue_records[(output.queue, output.level.value)] += 1
        else:
            return
        self._ids.add(output.id)


@dataclass(frozen=True, slots=True)
class Plan:
    """The stream the demo plays, and what the responders did in it."""

    feed: tuple[LogRecord, ...]
    """Reports, alarms and the responders' updates, in the order they are published."""
    responders: ResponderPool
    """The teams at the end of the period (``handled``, ``backlog``)."""
    expected: Expected
    end: datetime
    """The end of the period: a clock watermark at this time closes the stream."""

    @property
    def updates(self) -> int:
        """How many of the feed's records are the responders'."""
        return sum(1 for r in self.feed if r.topic == Topics().updates)


def plan_demo(
    records: Iterable[LogRecord],
    engine: Engine,
    end: datetime,
    teams: Mapping[str, int] = DEFAULT_TEAMS,
) -> Plan:
    """Interleave the responders' answers with ``records`` (reports and alarms in
    non-decreasing timestamp order), up to ``end`` (answers stamped at or after it are
    never sent); see the module docstring."""
    topics = Topics()
    processor = Processor(engine, topics)
    pool = ResponderPool(teams)
    expected = Expected()
    feed: list[LogRecord] = []

    def take(batch: Batch) -> None:
        for output in batch.outputs:
            expected.add(output)
            if isinstance(output, QueueRecord):
                pool.offer(output, seen=processor.clock)

    def put(record: LogRecord) -> None:
        if feed and _order(record) < _order(feed[-1]):
            raise ValueError(f"the plan went back in time at {record.timestamp.isoformat()}")
        feed.append(record)
        take(processor.feed(to_raw(record, topics)))

    def respond_until(until: datetime) -> None:
        # Every answer stamped before ``until`` (to the millisecond, as the worker merges).
        limit = from_millis(to_millis(until))
        while pool.clock is not None:
            while (event := pool.next_due(before=limit)) is not None:
                put(log_record(event))
            if pool.clock >= until:
                return
            pool.advance(min(until, pool.clock + STEP))

    for record in records:
        if record.topic != topics.reports:
            raise ValueError(f"the demo plans reports and alarms only, not {record.topic}")
        respond_until(record.timestamp)
        put(record)
    respond_until(end)
    take(processor.advance(end))  # what the closing watermark makes the worker write
    return Plan(tuple(feed), pool, expected, end)


def _order(record: LogRecord) -> tuple[int, int]:
    """Where the worker's merge puts a record of a partition: by timestamp to the
    millisecond, reports before updates."""
    return to_millis(record.timestamp), 0 if record.topic == Topics().reports else 1
