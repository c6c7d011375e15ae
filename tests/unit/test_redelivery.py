"""Late redeliveries: however late a copy of an event comes, a decision id keeps one content."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import pytest

from triage.events.base import Level, event_key
from triage.events.inputs import InputEvent
from triage.events.outputs import Decision, Escalation, OutputEvent, QueueRecord
from triage.pipeline import processed
from triage.pipeline.engine import STALE_REDELIVERY, Engine, Step
from triage.pipeline.state import VictimState
from triage.testing import (
    after,
    decision_id_for,
    make_ack,
    make_action,
    make_override,
    make_protection,
    make_report,
)

WEAPON = {"weapon": "yes"}  # a P2 report (red-flag floor)


def fillers(count: int, *, start: float = 10, reports_every: int = 25) -> list[InputEvent]:
    """``count`` later events for the default victim, a minute apart: mostly protection
    grants, a report every ``reports_every`` (so that the victim's history grows)."""
    events: list[InputEvent] = []
    for n in range(count):
        when = after(minutes=start + n)
        if n % reports_every == 0:
            events.append(make_report(time=when))
        else:
            events.append(make_protection(time=when, measure="tgd" if n % 2 else "bar"))
    return events


def feed(
    engine: Engine, events: Iterable[InputEvent], state: VictimState | None = None
) -> tuple[list[Step], list[OutputEvent]]:
    """Apply ``events`` in order at a stream clock that never goes back; every step and output."""
    steps: list[Step] = []
    outputs: list[OutputEvent] = []
    now = None
    for event in events:
        now = event.time if now is None or event.time > now else now
        step = engine.step(state, event, now)
        state = step.state
        steps.append(step)
        outputs.extend(step.outputs)
    return steps, outputs


def assert_one_content(outputs: Sequence[OutputEvent]) -> None:
    """No output id appears with two different contents."""
    seen: dict[str, str] = {}
    for output in outputs:
        content = output.model_dump_json()
        assert seen.setdefault(output.id, content) == content, output.id


def kinds(step: Step) -> list[str]:
    """The kinds of a step's observations, in order."""
    return [o.kind for o in step.observations]


class TestLateRedelivery:
    @pytest.mark.parametrize("between", [257, 2000])
    def test_report_redelivered_late_is_a_counted_duplicate(
        self, engine: Engine, between: int
    ) -> None:
        """A report redelivered after more than 256 (and 2,000) other events of its victim is
        a duplicate: no second decision, no id with two contents."""
        report = make_report(indicators=WEAPON)

        steps, outputs = feed(engine, [report, *fillers(between), report])

        assert "duplicate" in kinds(steps[-1])
        assert not [o for o in steps[-1].outputs if isinstance(o, (Decision, QueueRecord))]
        assert [o.id for o in outputs if isinstance(o, Decision)].count(
            decision_id_for(report)
        ) == 1
        assert_one_content(outputs)

    def test_report_redelivered_after_10000_events_is_not_decided_again(
        self, engine: Engine
    ) -> None:
        """After 10,000 other events the report is forgotten (bounded memory); its copy is
        refused as a possible redelivery, never decided a second time."""
        report = make_report(indicators=WEAPON)

        steps, outputs = feed(engine, [report, *fillers(10_000), report])

        last = steps[-1]
        assert last.refusal is not None
        assert last.refusal.reason == STALE_REDELIVERY
        assert not [o for o in last.outputs if isinstance(o, (Decision, QueueRecord))]
        assert_one_content(outputs)

    def test_state_stays_bounded_after_10000_events(self, engine: Engine) -> None:
        """A victim flooded with 10,000 events remembers at most REMEMBERED of them, and its
        state's JSON stays under the bench's 64 KiB bound."""
        steps, _ = feed(engine, [make_report(), *fillers(10_000)])

        state = steps[-1].state
        assert state is not None
        assert processed.count(state.processed) <= processed.REMEMBERED
        assert len(state.model_dump_json()) < 64 * 1024

    def test_override_redelivered_late_is_a_duplicate(self, engine: Engine) -> None:
        """An accepted override redelivered after 300 events changes nothing: its decision id
        is not reused for a decision with another previous level or other deadlines."""
        report = make_report(indicators=WEAPON)
        override = make_override(decision_id=decision_id_for(report), new_level=Level.P1)

        steps, outputs = feed(engine, [report, override, *fillers(300), override])

        assert "duplicate" in kinds(steps[-1])
        assert not steps[-1].outputs
        assert_one_content(outputs)

    def test_ack_redelivered_late_does_not_acknowledge_a_reassessment(self, engine: Engine) -> None:
        """An old acknowledgement redelivered after 300 events does not acknowledge the
        re-assessment of the same decision: its deadline still escalates."""
        report = make_report(indicators=WEAPON)
        did = decision_id_for(report)
        ack = make_ack(decision_id=did, queue="high-risk", time=after(minutes=3))
        action = make_action(decision_id=did, queue="high-risk", time=after(minutes=30))
        # 300 grants, the last ones just after the re-assessment is due (7 days, P2).
        grants = [make_protection(time=after(days=7, minutes=n - 290)) for n in range(300)]

        steps, outputs = feed(engine, [report, ack, action, *grants, ack])

        assert "duplicate" in kinds(steps[-1])
        state = steps[-1].state
        assert state is not None
        reassessment = state.assignment("high-risk")
        assert reassessment is not None
        assert reassessment.kind == "reassessment"
        assert reassessment.acked_at is None
        later = engine.step(state, None, reassessment.ack_due + timedelta(seconds=1))
        assert [(e.stage, e.decision_id) for e in later.outputs if isinstance(e, Escalation)] == [
            ("review", did)
        ]
        assert_one_content([*outputs, *later.outputs])

    def test_new_events_after_forgetting_are_decided(self, engine: Engine) -> None:
        """Forgetting only refuses events dated before what was forgotten: a new, later
        report of a flooded victim is decided as usual."""
        small = Engine(engine.rules, engine.units, remembered=8)
        steps, _ = feed(small, [make_report(), *fillers(40, reports_every=1000)])
        state = steps[-1].state
        assert state is not None
        assert state.forgotten_before is not None
        late_copy_time = state.forgotten_before - timedelta(minutes=1)
        fresh = make_report(time=after(days=1), indicators=WEAPON)
        older = make_report(time=late_copy_time, indicators=WEAPON)

        decided = small.step(state, fresh, fresh.time)
        refused = small.step(state, older, fresh.time)

        assert "decided" in kinds(decided)
        assert refused.refusal is not None
        assert refused.refusal.reason == STALE_REDELIVERY
        assert not refused.outputs


class TestLegacyState:
    def test_state_written_with_seen_ids_still_loads_and_deduplicates(self, engine: Engine) -> None:
        """A state from the changelog in the old form (``seen_ids``, no ``processed``) loads;
        a redelivery of one of its ids is a duplicate; the ids move to ``processed``."""
        report = make_report(indicators=WEAPON)
        state = engine.step(None, report, report.time).state
        assert state is not None
        key = event_key(report.source, report.id)
        legacy = state.model_dump_json(exclude={"processed", "forgotten_before", "seen_ids"})
        legacy = legacy[:-1] + f',"seen_ids":["{key}"]}}'

        old = VictimState.model_validate_json(legacy)
        step = engine.step(old, report, report.time)

        assert (old.processed, old.seen_ids) == (b"", (key,))
        assert kinds(step) == ["duplicate"]
        assert step.state is not None
        assert step.state.seen_ids == ()
        assert processed.remembers(step.state.processed, processed.digest(key))

    def test_state_round_trips_through_json(self, engine: Engine) -> None:
        """The packed memory survives the changelog's JSON (base64) unchanged."""
        steps, _ = feed(engine, [make_report(), *fillers(30)])
        state = steps[-1].state
        assert state is not None

        assert VictimState.model_validate_json(state.model_dump_json()) == state


class TestProcessedMemory:
    def test_bytes_across_two_entries_are_not_a_match(self) -> None:
        """Only a whole, aligned digest counts: bytes that straddle two entries do not."""
        first = processed.entry("a 1", after())
        second = processed.entry("a 2", after())
        straddling = (first + second)[4:12]

        assert not processed.remembers(first + second, straddling)
        assert processed.remembers(first + second, processed.digest("a 2"))

    def test_oldest_event_times_are_forgotten_first(self) -> None:
        """Over the limit, the entries with the oldest event times go (not the first added),
        and the time returned is just after the newest of them."""
        minutes = [9, 3, 14, 0, 16, 7, 1, 12, 5, 10, 2, 15, 8, 4, 11, 13, 6]
        entries = [processed.entry(f"k {m}", after(minutes=m)) for m in minutes]
        memory, forgotten = processed.remember(b"".join(entries[:16]), entries[16], 16)

        assert forgotten == after(minutes=2) + timedelta(minutes=1)
        assert processed.count(memory) == 16 - 16 // 8
        for m in minutes:
            assert processed.remembers(memory, processed.digest(f"k {m}")) == (m > 2)

    def test_under_the_limit_nothing_is_forgotten(self) -> None:
        """Below the limit every entry is kept and no time is returned."""
        memory, forgotten = processed.remember(b"", processed.entry("k", after()), 4)

        assert (processed.count(memory), forgotten) == (1, None)
