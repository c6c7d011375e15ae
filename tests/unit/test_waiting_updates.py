"""Case updates that come before their case wait the rule set's ``update_grace``."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from triage.events.outputs import DeadLetter, Decision
from triage.pipeline import deadline_book
from triage.pipeline.engine import Engine
from triage.pipeline.observations import Observation
from triage.pipeline.processor import WAITING_MAX, Processor
from triage.scoring.rules import RuleSet, Span
from triage.testing import after, make_ack, make_report, raw_of
from triage.topics import Topics


@pytest.fixture(name="patient")
def _patient(engine: Engine) -> Engine:
    """The packaged rules with a 10-minute grace for updates before their case."""
    rules: RuleSet = engine.rules.model_copy(update={"update_grace": Span.model_validate("10m")})
    return Engine(rules, engine.units)


def kinds(batch_observations: list[Observation], kind: str) -> list[str]:
    """The code of each observation of ``kind``: a wait's outcome, a refusal's reason,
    a duplicate's event type."""
    codes = {
        "waiting": lambda o: o.outcome,
        "refused": lambda o: o.reason,
        "duplicate": lambda o: o.event_type,
    }
    return [codes[kind](o) for o in batch_observations if o.kind == kind]


class TestWaitingUpdates:
    def test_the_packaged_rules_wait_an_hour(self, engine: Engine, topics: Topics) -> None:
        """The packaged rules hold an update before its case for an hour of stream time."""
        grace = engine.rules.update_grace
        assert grace is not None
        assert grace.delta == timedelta(hours=1)
        batch = Processor(engine, topics).feed(raw_of(make_ack()))
        assert batch.outputs == []
        assert kinds(batch.observations, "waiting") == ["waiting"]

    def test_without_a_grace_nothing_waits(self, engine: Engine, topics: Topics) -> None:
        """A rule set without ``update_grace`` dead-letters the update at once."""
        impatient = Engine(engine.rules.model_copy(update={"update_grace": None}), engine.units)
        batch = Processor(impatient, topics).feed(raw_of(make_ack()))
        assert [o.reason for o in batch.outputs if isinstance(o, DeadLetter)] == ["unknown_case"]

    def test_an_ack_before_its_report_is_applied_when_the_report_comes(
        self, patient: Engine, topics: Topics
    ) -> None:
        """The acknowledgement overtook its report: held, then applied right after the
        decision, as if it had come in order; no dead letter, no state left holding it."""
        processor = Processor(patient, topics)
        first = processor.feed(raw_of(make_ack()))
        assert first.outputs == []
        assert kinds(first.observations, "waiting") == ["waiting"]
        assert kinds(first.observations, "refused") == []

        second = processor.feed(raw_of(make_report()))

        assert [type(o) for o in second.outputs if isinstance(o, (Decision, DeadLetter))] == [
            Decision
        ]
        assert kinds(second.observations, "waiting") == ["applied"]
        assert "acked" in {o.kind for o in second.observations}
        state = next(iter(processor.states.values()))
        assert state.waiting == ()
        assert all(a.acked_at is not None for a in state.assignments if a.queue == "standard")

    def test_in_order_or_overtaken_give_the_same_state(
        self, patient: Engine, topics: Topics
    ) -> None:
        """Report then ack, or ack then report: the same victim state in the end."""
        in_order, overtaken = Processor(patient, topics), Processor(patient, topics)
        for record in (raw_of(make_report()), raw_of(make_ack())):
            in_order.feed(record)
        for record in (raw_of(make_ack()), raw_of(make_report())):
            overtaken.feed(record)
        assert dict(in_order.states) == dict(overtaken.states)

    def test_a_case_that_never_comes_gives_the_dead_letter_after_the_grace(
        self, patient: Engine, topics: Topics
    ) -> None:
        """No case within the grace period: the dead letter it would have had, original
        bytes included, once the stream clock passes the grace; not before."""
        processor = Processor(patient, topics)
        record = raw_of(make_ack())
        processor.feed(record)
        early = processor.advance(after(minutes=3 + 9))
        assert not [o for o in early.outputs if isinstance(o, DeadLetter)]

        late = processor.advance(after(minutes=3 + 11))

        letters = [o for o in late.outputs if isinstance(o, DeadLetter)]
        assert [letter.reason for letter in letters] == ["unknown_case"]
        assert base64.b64decode(letters[0].value_b64) == record.value
        assert "10m grace period" in letters[0].detail
        assert kinds(late.observations, "waiting") == ["expired"]
        assert kinds(late.observations, "refused") == ["unknown_case"]
        assert all(s.waiting == () for s in processor.states.values())

    def test_a_repeat_while_waiting_is_a_duplicate(self, patient: Engine, topics: Topics) -> None:
        """The same record twice while it waits: held once, one dead letter in the end."""
        processor = Processor(patient, topics)
        record = raw_of(make_ack())
        processor.feed(record)
        again = processor.feed(record)
        assert kinds(again.observations, "duplicate") == ["case.acknowledged"]
        late = processor.advance(after(hours=2))
        assert len([o for o in late.outputs if isinstance(o, DeadLetter)]) == 1

    def test_a_victim_holds_a_bounded_number(self, patient: Engine, topics: Topics) -> None:
        """Past :data:`WAITING_MAX` held updates, the next is refused at once."""
        processor = Processor(patient, topics)
        batches = [
            processor.feed(raw_of(make_ack(id=f"evt-ack-{i}", time=after(minutes=3, seconds=i))))
            for i in range(WAITING_MAX + 1)
        ]
        assert all(not b.outputs for b in batches[:-1])
        assert [o.reason for o in batches[-1].outputs if isinstance(o, DeadLetter)] == [
            "unknown_case"
        ]
        state = next(iter(processor.states.values()))
        assert len(state.waiting) == WAITING_MAX
        assert deadline_book.wakeup(state) == after(minutes=3) + timedelta(minutes=10)


class TestWorkerHold:
    """The worker may keep a held update past its grace a while in wall time (its case
    may be a fetch away while stream time raced on); the dead letter does not change."""

    def test_a_kept_update_expires_on_a_later_look_with_the_same_dead_letter(
        self, patient: Engine, topics: Topics
    ) -> None:
        keep = [True]
        processor = Processor(patient, topics, hold=lambda _held: keep[0])
        record = raw_of(make_ack())
        processor.feed(record)

        kept = processor.advance(after(minutes=3 + 11))
        assert not [o for o in kept.outputs if isinstance(o, DeadLetter)]
        assert processor.recheck().outputs == []  # still kept, and no endless loop

        keep[0] = False
        late = processor.recheck()
        letters = [o for o in late.outputs if isinstance(o, DeadLetter)]
        offline = Processor(patient, topics)
        offline.feed(record)
        expected = [o for o in offline.advance(after(minutes=3 + 11)).outputs]
        assert letters == expected
        assert processor.recheck().outputs == []  # nothing left to look at

    def test_a_kept_update_is_applied_when_its_case_comes_late(
        self, patient: Engine, topics: Topics
    ) -> None:
        """Stream time passed the grace (another victim's record) before the report came:
        kept by the worker, the acknowledgement is applied as if in order."""
        processor = Processor(patient, topics, hold=lambda _held: True)
        processor.feed(raw_of(make_ack()))
        other = make_report(victim_ref="V-0002B3", id="evt-other", time=after(minutes=30))
        processor.feed(raw_of(other))

        late = processor.feed(raw_of(make_report()))

        assert not [o for o in late.outputs if isinstance(o, DeadLetter)]
        assert kinds(late.observations, "waiting") == ["applied"]


def test_a_held_update_whose_case_came_waits_for_its_decision_under_that_reason(
    patient: Engine, topics: Topics
) -> None:
    """An acknowledgement naming a decision that never comes overtook its report: held
    as ``unknown_case``, then, its case come, as ``unknown_decision``; its dead letter is
    the one it gets in order (``unknown_decision``), not the first reason."""
    ack = make_ack(decision_id="D-000000000000000000000000")
    overtaken = Processor(patient, topics)
    overtaken.feed(raw_of(ack))
    overtaken.feed(raw_of(make_report()))
    late = overtaken.advance(after(hours=1))

    in_order = Processor(patient, topics)
    in_order.feed(raw_of(make_report()))
    in_order.feed(raw_of(ack))
    expected = in_order.advance(after(hours=1))

    letters = [o for o in late.outputs if isinstance(o, DeadLetter)]
    assert [letter.reason for letter in letters] == ["unknown_decision"]
    assert letters == [o for o in expected.outputs if isinstance(o, DeadLetter)]
