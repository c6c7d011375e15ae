"""The deadline book: what is due for a victim, when, and what firing it produces."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.factories import FAKE_DECISION
from triage.events.base import Level, QueueName
from triage.events.outputs import CaseDormant, Escalation, QueueRecord
from triage.pipeline import deadline_book
from triage.pipeline.deadline_book import Due
from triage.pipeline.effects import Effects
from triage.pipeline.ingest import RawRecord
from triage.pipeline.state import Assignment, VictimState, Waiting
from triage.scoring.rules import RuleSet
from triage.testing import after

VICTIM = "V-0001A2"
OTHER = "D-111111111111111111111111"


def item(
    queue: QueueName = "immediate",
    *,
    ack: float = 5,
    action: float = 15,
    acked: bool = False,
    ack_escalated: bool = False,
    action_escalated: bool = False,
    decision_id: str = FAKE_DECISION,
) -> Assignment:
    """A P1 work item routed at :func:`after`, deadlines ``ack``/``action`` minutes later."""
    return Assignment(
        decision_id=decision_id,
        queue=queue,
        level=Level.P1,
        kind="new",
        routed_at=after(),
        ack_due=after(minutes=ack),
        action_due=after(minutes=action),
        acked_at=after(minutes=1) if acked else None,
        ack_escalated=ack_escalated,
        action_escalated=action_escalated,
    )


def victim(
    *items: Assignment, reassess: datetime | None = None, open: bool = True, **more: object
) -> VictimState:
    """An open P1 case with ``items`` and its next re-assessment at ``reassess``."""
    return VictimState.model_validate(
        {
            "victim_ref": VICTIM,
            "open": open,
            "level": Level.P1,
            "decision_id": FAKE_DECISION,
            "unit": "PN-ARRAS",
            "assignments": items,
            "next_reassessment_at": reassess,
            **more,
        }
    )


def held(due: datetime) -> Waiting:
    record = RawRecord(topic="dv.case-updates.v1", key=None, value=b"{}", timestamp=after())
    return Waiting.holding(record, due=due, reason="unknown_case", detail="")


class TestNextDue:
    def test_nothing_is_due_without_work_or_an_open_case(self) -> None:
        """A victim with no item and no open case has no deadline."""
        assert deadline_book.next_due(victim(open=False, reassess=after(days=1))) is None

    def test_the_earliest_deadline_comes_first(self) -> None:
        """The acknowledgement due before the action is the next deadline."""
        assert deadline_book.next_due(victim(item())) == Due(after(minutes=5), "ack", "immediate")

    def test_met_or_escalated_deadlines_are_not_due(self) -> None:
        """An acknowledged or escalated acknowledgement leaves the action next."""
        for met in (item(acked=True), item(ack_escalated=True)):
            assert deadline_book.next_due(victim(met)) == Due(
                after(minutes=15), "action", "immediate"
            )
        assert (
            deadline_book.next_due(victim(item(ack_escalated=True, action_escalated=True))) is None
        )

    def test_ties_go_ack_then_action_then_reassessment_then_queue(self) -> None:
        """At one time: acknowledgements first, then actions, then the re-assessment."""
        state = victim(
            item("judicial", ack=10, action=10, decision_id=OTHER),
            item("immediate", ack=20, action=10),
            reassess=after(minutes=10),
        )
        assert deadline_book.next_due(state) == Due(after(minutes=10), "ack", "judicial")
        state = victim(item("judicial", ack=20, action=10), reassess=after(minutes=10))
        assert deadline_book.next_due(state) == Due(after(minutes=10), "action", "judicial")
        state = victim(
            item("judicial", ack=20, action=10, decision_id=OTHER),
            item("immediate", ack=20, action=10),
        )
        assert deadline_book.next_due(state) == Due(after(minutes=10), "action", "immediate")

    def test_a_reassessment_names_the_supervisor_queue(self) -> None:
        """A re-assessment has no item yet: its queue is ``supervisor``."""
        state = victim(reassess=after(days=1))
        assert deadline_book.next_due(state) == Due(after(days=1), "reassess", "supervisor")

    def test_a_closed_case_is_not_reassessed(self) -> None:
        """A closed case's re-assessment date is not a deadline."""
        assert deadline_book.next_due(victim(reassess=after(days=1), open=False)) is None


class TestWakeup:
    def test_the_earliest_deadline_wakes_the_victim(self) -> None:
        """The wake-up is the next deadline's time."""
        assert deadline_book.wakeup(victim(item(), reassess=after(days=1))) == after(minutes=5)

    def test_a_held_update_wakes_the_victim_too(self) -> None:
        """An update held for its case wakes the victim at the end of its grace period."""
        state = victim(item(), waiting=(held(after(minutes=2)),))
        assert deadline_book.wakeup(state) == after(minutes=2)
        assert deadline_book.next_due(state) == Due(after(minutes=5), "ack", "immediate")

    def test_nothing_to_wake_for(self) -> None:
        """No deadline, no re-assessment, nothing held: no wake-up."""
        assert deadline_book.wakeup(victim(open=False)) is None


class TestAssign:
    def test_a_new_item_gets_the_levels_deadlines(self, rules: RuleSet) -> None:
        """A new P1 item: acknowledgement and action due after the level's spans."""
        new = deadline_book.assign(
            rules,
            decision_id=FAKE_DECISION,
            queue="immediate",
            level=Level.P1,
            area="urban",
            at=after(),
            kind="new",
            existing=None,
        )
        assert (new.ack_due, new.action_due) == (after(minutes=5), after(minutes=15))
        assert new.item_id == FAKE_DECISION

    def test_an_update_never_pushes_a_deadline_later(self, rules: RuleSet) -> None:
        """New information keeps the item's id and its pending, earlier deadlines."""
        existing = item(ack=3, action=10)
        updated = deadline_book.assign(
            rules,
            decision_id=OTHER,
            queue="immediate",
            level=Level.P1,
            area="urban",
            at=after(minutes=1),
            kind="update",
            existing=existing,
        )
        assert (updated.ack_due, updated.action_due) == (after(minutes=3), after(minutes=10))
        assert (updated.decision_id, updated.item_id) == (OTHER, FAKE_DECISION)

    def test_the_next_reassessment_follows_the_levels_cadence(self, rules: RuleSet) -> None:
        """The next re-assessment is the level's ``reassess`` span after the decision."""
        span = rules.sla[Level.P3].reassess
        assert span.delta is not None
        assert deadline_book.next_reassessment(rules, Level.P3, after()) == after() + span.delta


class TestFire:
    def test_fires_what_fell_due_before_now_in_order(self, rules: RuleSet) -> None:
        """Both deadlines of an item passed: two escalations, ack first, both marked."""
        fx = Effects()
        state = deadline_book.fire(rules, victim(item()), after(minutes=16), fx, default_unit="X")

        assert [(e.stage, e.deadline) for e in fx.outputs if isinstance(e, Escalation)] == [
            ("ack", after(minutes=5)),
            ("action", after(minutes=15)),
        ]
        (fired,) = state.assignments
        assert fired.ack_escalated
        assert fired.action_escalated
        assert [o.kind for o in fx.observations] == ["breached", "breached"]

    def test_nothing_fires_at_the_deadline_itself(self, rules: RuleSet) -> None:
        """A deadline equal to ``now`` has not passed yet."""
        fx = Effects()
        state = victim(item())
        assert deadline_book.fire(rules, state, after(minutes=5), fx, default_unit="X") is state
        assert fx.outputs == []

    def test_a_reassessment_opens_a_review_and_schedules_the_next(self, rules: RuleSet) -> None:
        """A re-assessment due: a review queue record, the next one a cadence later."""
        due = after(days=1)
        span = rules.sla[Level.P1].reassess
        assert span.delta is not None
        fx = Effects()
        state = deadline_book.fire(
            rules, victim(reassess=due), due + timedelta(seconds=1), fx, default_unit="X"
        )

        (record,) = fx.outputs
        assert isinstance(record, QueueRecord)
        assert (record.kind, record.time, record.reasons) == (
            "reassessment",
            due,
            ("reassessment_due",),
        )
        assert state.next_reassessment_at == due + span.delta
        assert state.quiet_reviews == 1

    def test_quiet_reviews_make_the_case_dormant(self, rules: RuleSet) -> None:
        """After the level's quiet reviews, the re-assessment makes the case dormant."""
        limit = rules.sla[Level.P1].dormant_after_reviews
        assert limit is not None
        due = after(days=1)
        fx = Effects()
        state = deadline_book.fire(
            rules,
            victim(reassess=due, quiet_reviews=limit),
            due + timedelta(seconds=1),
            fx,
            default_unit="X",
        )

        (record,) = fx.outputs
        assert isinstance(record, CaseDormant)
        assert state.dormant_id == record.id
        assert (state.assignments, state.next_reassessment_at) == ((), None)
