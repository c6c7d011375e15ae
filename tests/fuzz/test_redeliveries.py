"""Hypothesis properties: redeliveries, however late, never give an output id a second content.

Plausible logs of reports, alarms and responders' updates, with copies of earlier
records injected at arbitrary later positions (the at-least-once redeliveries of a
consumer that lost its offsets, or an upstream resend), go through one processor:
every engine output id (decision, queue record, escalation, rejected override) keeps
one content; a copy of an event that was processed is answered as a duplicate, or,
once a flood made its victim forget the event, refused with a reason, never decided.
Derandomized (the suite's hypothesis profile).
"""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import event_logs
from triage.events.outputs import DeadLetter, OutputEvent
from triage.pipeline.engine import STALE_REDELIVERY, Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.topics import Topics


@st.composite
def redelivered_logs(draw: st.DrawFn) -> tuple[list[LogRecord], list[int]]:
    """A log with copies of earlier records inserted later; the positions of the copies."""
    log = draw(event_logs(max_events=25, garbage=False))
    copies = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=8))
    records = list(log)
    positions: list[int] = []
    for pick, place in copies:
        original = pick % len(records)
        at = original + 1 + place % (len(records) - original)
        records.insert(at, records[original])
        positions = [p + 1 if p >= at else p for p in positions]
        positions.append(at)
    return records, positions


def run(engine: Engine, records: list[LogRecord]) -> tuple[list[OutputEvent], list[str]]:
    """Feed ``records`` through one processor: every output, and each record's outcome."""
    topics = Topics()
    processor = Processor(engine, topics)
    outputs: list[OutputEvent] = []
    outcomes: list[str] = []
    for record in records:
        batch = processor.feed(to_raw(record, topics))
        outputs.extend(batch.outputs)
        (answer,) = [o for o in batch.observations if o.kind == "event"]
        reason = answer.outcome
        if reason == "refused":
            # (an update held earlier may be dead-lettered in the same batch)
            mine = base64.b64encode(record.value).decode()
            (letter,) = [
                o for o in batch.outputs if isinstance(o, DeadLetter) and o.value_b64 == mine
            ]
            reason = f"refused:{letter.reason}"
        outcomes.append(reason)
    return outputs, outcomes


def assert_redeliveries_are_harmless(
    engine: Engine, log: tuple[list[LogRecord], list[int]]
) -> None:
    """Each engine output id has one content; a copy of a processed event is never applied."""
    records, copies = log
    outputs, outcomes = run(engine, records)
    contents: dict[str, str] = {}
    expired = {
        base64.b64decode(o.value_b64) for o in outputs if isinstance(o, DeadLetter)
    }  # fmt: skip
    for output in outputs:
        if isinstance(output, DeadLetter):
            continue  # ingestion's records (ids over the record's bytes), not decisions
        content = output.model_dump_json()
        assert contents.setdefault(output.id, content) == content, output.id
    first: dict[bytes, str] = {}
    for position, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
        earlier = first.setdefault(record.value, outcome)
        # An update held for its case and dead-lettered when the grace ran out was never
        # applied: a copy of it is a new attempt, like a copy of a refused record.
        never_applied = earlier.startswith("refused") or (
            earlier == "waiting" and record.value in expired
        )
        if position in copies and not never_applied:
            assert outcome in ("duplicate", f"refused:{STALE_REDELIVERY}"), (position, outcome)


class TestRedeliveries:
    @settings(max_examples=200)
    @given(log=redelivered_logs())
    def test_one_content_per_id(
        self, engine: Engine, log: tuple[list[LogRecord], list[int]]
    ) -> None:
        """With the default memory, every copy of a processed event is a duplicate and
        every output id keeps one content."""
        assert_redeliveries_are_harmless(engine, log)

    @settings(max_examples=200)
    @given(log=redelivered_logs(), remembered=st.integers(1, 6))
    def test_one_content_per_id_when_the_memory_overflows(
        self, engine: Engine, log: tuple[list[LogRecord], list[int]], remembered: int
    ) -> None:
        """With a memory of a few events (a flood in miniature), copies of forgotten events
        are refused, never decided again: every output id still keeps one content."""
        small = Engine(engine.rules, engine.units, remembered=remembered)
        assert_redeliveries_are_harmless(small, log)
