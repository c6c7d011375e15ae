"""Output records about work: one builder per record type, one id scheme."""

from __future__ import annotations

from tests.factories import FAKE_DECISION
from triage.events.base import Level, stable_id
from triage.pipeline import work_records
from triage.pipeline.state import Assignment, VictimState
from triage.testing import after

VICTIM = "V-0001A2"
LATER = "D-111111111111111111111111"


def item(*, review: bool = False) -> Assignment:
    return Assignment(
        decision_id=LATER,
        work_item_id=FAKE_DECISION,
        queue="high-risk",
        level=Level.P2,
        kind="update",
        routed_at=after(),
        ack_due=after(hours=1),
        action_due=after(days=1),
        review=review,
    )


def case() -> VictimState:
    return VictimState(
        victim_ref=VICTIM,
        open=True,
        level=Level.P3,
        decision_id=LATER,
        unit="PN-ARRAS",
        assignments=(item(),),
    )


class TestQueueRecord:
    def test_a_decisions_record_is_named_by_decision_and_queue(self) -> None:
        """A decision's queue record: id from its decision and queue, the item's deadlines."""
        record = work_records.queue_record(
            rules_version="urgency-test",
            victim_ref=VICTIM,
            decision_id=LATER,
            at=after(),
            item=item(),
            unit="PN-ARRAS",
            flagged=False,
            reasons=("strangulation",),
            contact=None,
            kind="update",
        )
        assert record.id == stable_id("Q", LATER, "high-risk")
        assert (record.ack_due, record.action_due) == (after(hours=1), after(days=1))
        assert (record.level, record.work_item_id) == (Level.P2, FAKE_DECISION)

    def test_a_reviews_record_is_named_by_its_due_time_too(self) -> None:
        """A re-assessment reuses the case's decision: its due time keeps the ids apart."""
        first, second = (
            work_records.review_record(
                rules_version="urgency-test", state=case(), item=item(), due=due, unit="X"
            )
            for due in (after(days=30), after(days=60))
        )
        assert first.id != second.id
        assert first.id == stable_id(
            "Q", LATER, "high-risk", "reassessment", after(days=30).isoformat()
        )
        assert (first.level, first.reasons, first.contact) == (
            Level.P3,
            ("reassessment_due",),
            None,
        )


class TestEscalation:
    def test_a_missed_deadline_is_named_by_item_stage_and_deadline(self) -> None:
        """A breach: id from the item's decision, queue, stage and deadline."""
        escalation = work_records.breach(
            victim_ref=VICTIM, item=item(), unit="X", stage="ack", deadline=after(hours=1)
        )
        assert escalation.id == stable_id(
            "E", LATER, "high-risk", "ack", after(hours=1).isoformat()
        )
        assert (escalation.stage, escalation.time) == ("ack", after(hours=1))

    def test_a_reviews_missed_deadline_is_a_review_notice(self) -> None:
        """A review's missed deadline has stage ``review`` and its own id."""
        escalation = work_records.breach(
            victim_ref=VICTIM, item=item(review=True), unit="X", stage="ack", deadline=after()
        )
        assert escalation.stage == "review"
        assert escalation.id == stable_id(
            "E", LATER, "high-risk", "review", "ack", after().isoformat()
        )

    def test_a_conflict_is_due_at_once_and_names_the_fields(self) -> None:
        """A conflicting resend: due at its own time, with the fields that differ."""
        escalation = work_records.conflict(
            victim_ref=VICTIM,
            decision_id=LATER,
            queue="high-risk",
            level=Level.P2,
            unit="X",
            source="urn:test",
            event_id="evt-1",
            at=after(),
            payload=b"\x01",
            fields=["commune"],
        )
        assert escalation.id == stable_id(
            "E", LATER, "conflict", "urn:test", "evt-1", "01", "commune"
        )
        assert (escalation.stage, escalation.deadline, escalation.fields) == (
            "conflict",
            after(),
            ("commune",),
        )


class TestDormant:
    def test_a_dormant_case_names_its_withdrawn_work(self) -> None:
        """Going dormant: id from the decision and due time, the open items withdrawn."""
        record = work_records.dormant(
            rules_version="urgency-test", state=case(), due=after(days=9), unit="X"
        )
        assert record.id == stable_id("Z", LATER, "dormant", after(days=9).isoformat())
        assert record.work_closed == (FAKE_DECISION,)
        assert record.reason == "no_incident_after_reviews"
