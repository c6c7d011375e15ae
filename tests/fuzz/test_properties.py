"""Hypothesis properties: whatever arrives, the processor answers every record clearly.

For arbitrary bytes, arbitrary JSON, valid events damaged at arbitrary positions and
plausible logs full of contradictory updates: feeding never raises; every record
gets exactly one ``event`` observation whose outcome matches the outputs (a dead
letter with the original bytes and a known reason, a decision, a rejected override,
an ``ignored`` or ``duplicate`` observation, or a change of state); and no sentinel
personal value shows outside a queue record's contact block or a dead letter's
base64 copies. Derandomized (the suite's hypothesis profile): the same examples on
every run.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import event_logs
from tests.fuzz.strategies import Damaged, damaged_records, json_values, random_records
from triage.events.outputs import DeadLetter, Decision, Escalation, OverrideRejected
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import REASONS, RawRecord
from triage.pipeline.observations import UpdateWaiting
from triage.pipeline.processor import Batch, Processor
from triage.reliability.cases import SENTINEL_MARK
from triage.reliability.oracle import leaks
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.testing import make_raw
from triage.topics import Topics

OUTCOMES = {
    "refused",
    "duplicate",
    "conflict",
    "decided",
    "merged",
    "rejected",
    "ignored",
    "applied",
    "waiting",
}


def assert_clear_outcome(record: RawRecord, batch: Batch) -> str:
    """Exactly one answer for ``record``, consistent with what the batch holds; returns it."""
    answers = [o for o in batch.observations if o.kind == "event"]
    assert len(answers) == 1, batch.observations
    outcome = answers[0].outcome
    # An update held earlier for a case that never came may be dead-lettered in this
    # batch, when the record moves the stream clock past its grace period.
    mine = base64.b64encode(record.value).decode() if record.value is not None else None
    letters = [o for o in batch.outputs if isinstance(o, DeadLetter) and o.value_b64 == mine]
    if outcome in ("rejected", "refused") and answers[0].event_type == "invalid":
        outcome = "refused"
    assert outcome in OUTCOMES | {"watermark"}, outcome
    if outcome == "refused":
        (letter,) = letters
        assert letter.reason in REASONS
        assert base64.b64decode(letter.value_b64) == record.value
        key = base64.b64decode(letter.key_b64) if letter.key_b64 is not None else None
        assert key == record.key
        assert SENTINEL_MARK not in letter.detail
    else:
        assert not letters
    if outcome in ("decided", "merged"):
        assert any(isinstance(o, Decision) for o in batch.outputs)
    if outcome == "conflict":
        assert any(isinstance(o, Escalation) and o.stage == "conflict" for o in batch.outputs)
    if outcome == "rejected":
        assert any(isinstance(o, OverrideRejected) for o in batch.outputs)
    if outcome in ("ignored", "duplicate"):
        assert outcome in {o.kind for o in batch.observations}
    assert leaks(batch.outputs) == []
    assert SENTINEL_MARK not in repr(batch.observations)
    return outcome


def feed_all(engine: Engine, records: Sequence[RawRecord]) -> list[str]:
    """Feed ``records`` through one processor; the outcome of each."""
    processor = Processor(engine, Topics())
    outcomes, settled = [], 0
    for record in records:
        batch = processor.feed(record)
        outcomes.append(assert_clear_outcome(record, batch))
        settled += _settled(batch)
    if processor.clock is not None:
        # Every held update is applied or, once its grace has passed, dead-lettered.
        settled += _settled(processor.advance(processor.clock + timedelta(days=2)))
    assert settled == outcomes.count("waiting")
    return outcomes


def _settled(batch: Batch) -> int:
    """Held updates this batch applied or dead-lettered after their grace."""
    return sum(
        isinstance(o, UpdateWaiting) and o.outcome in ("applied", "expired")
        for o in batch.observations
    )


class TestArbitraryInput:
    @settings(max_examples=300)
    @given(records=st.lists(random_records, min_size=1, max_size=10))
    def test_arbitrary_bytes(self, engine: Engine, records: list[RawRecord]) -> None:
        """Records of arbitrary bytes, keys and timestamps are each dead-lettered whole."""
        assert set(feed_all(engine, records)) <= {"refused"}

    @settings(max_examples=300)
    @given(values=st.lists(json_values, min_size=1, max_size=10))
    def test_arbitrary_json(self, engine: Engine, values: list[object]) -> None:
        """Arbitrary JSON values (objects or not, sentinels inside) are each dead-lettered."""
        import orjson

        records = [make_raw(orjson.dumps(v)) for v in values]
        assert set(feed_all(engine, records)) <= {"refused"}

    @settings(max_examples=500)
    @given(damaged=st.lists(damaged_records(), min_size=1, max_size=10))
    def test_damaged_events(self, engine: Engine, damaged: list[Damaged]) -> None:
        """Valid events of every type damaged at arbitrary positions (values, unknown keys,
        wrong types, huge strings, bytes) get a clear outcome each, and no sentinel
        personal value appears where it must not."""
        feed_all(engine, [d.record for d in damaged])


class TestContradictoryLogs:
    @settings(max_examples=300)
    @given(log=event_logs(max_events=25, garbage=True, with_contact=True))
    def test_every_record_has_a_clear_outcome(self, engine: Engine, log: list[LogRecord]) -> None:
        """In a plausible log of reports, alarms and responders' updates (some naming
        made-up decisions, some after closure, overrides in every direction), every
        record gets one clear, counted outcome: never silence."""
        topics = Topics()
        feed_all(engine, [to_raw(r, topics) for r in log])
