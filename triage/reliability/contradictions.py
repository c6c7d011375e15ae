"""Corpus kinds of well-formed updates that contradict the victim's case: an
acknowledgement before any report, an override for an unknown case, an action on a
closed case, a downgrade without a second reviewer… Each gets a clear, counted
outcome: a dead letter with a reason, an ``OverrideRejected`` record, or an
``ignored`` observation with a reason. Never silence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from triage.events.base import Level
from triage.events.inputs import ReportReceived
from triage.reliability.cases import Case, Expect, probe_of
from triage.testing import (
    RESPONDER_REF,
    SECOND_REVIEWER_REF,
    make_ack,
    make_action,
    make_closed,
    make_override,
    make_protection,
)

if TYPE_CHECKING:
    from triage.reliability.corpus import CorpusBuilder

Builder = Callable[["CorpusBuilder"], Case]
FAKE_DECISION = "D-" + "f" * 24
OTHER_QUEUES = ("immediate", "high-risk", "follow-up", "child-protection", "judicial")
"""Queues a plain (P4) report is never routed to."""


def _update(b: CorpusBuilder, make: Callable[..., Any], **fields: Any) -> Any:
    return make(**b.common("update"), **fields)


def _case(probe_event: Any, expect: Expect, *setup: Any) -> Case:
    return Case(
        "", probe_of(probe_event), expect, tuple(probe_of(e) for e in setup), probe_event.id
    )


def _plain(b: CorpusBuilder) -> ReportReceived:
    """A report with every indicator unknown: P4, queue ``standard``."""
    return b.report()


def _danger(b: CorpusBuilder) -> ReportReceived:
    """A report of danger now: P1, queue ``immediate``."""
    return b.report(indicators={"immediate_danger": "yes"})


# -- no case for this victim ----------------------------------------------------------


def ack_before_report(b: CorpusBuilder) -> Case:
    """An acknowledgement for a victim with no case (it overtook its report, or is wrong)."""
    ack = _update(b, make_ack, decision_id=FAKE_DECISION)
    return _case(ack, Expect("dead_letter", "unknown_case"))


def action_before_report(b: CorpusBuilder) -> Case:
    """An action for a victim with no case."""
    action = _update(b, make_action, decision_id=FAKE_DECISION, action="on_scene")
    return _case(action, Expect("dead_letter", "unknown_case"))


def override_unknown_case(b: CorpusBuilder) -> Case:
    """An override for a victim with no case."""
    override = _update(b, make_override, decision_id=FAKE_DECISION)
    return _case(override, Expect("dead_letter", "unknown_case"))


def protection_unknown_case(b: CorpusBuilder) -> Case:
    """A protection measure for a victim with no case."""
    return _case(_update(b, make_protection), Expect("dead_letter", "unknown_case"))


def closed_unknown_case(b: CorpusBuilder) -> Case:
    """A closure for a victim with no case."""
    return _case(_update(b, make_closed), Expect("dead_letter", "unknown_case"))


# -- a case, but not this decision ----------------------------------------------------


def override_unknown_decision(b: CorpusBuilder) -> Case:
    """An override naming a decision this victim never had."""
    report = _plain(b)
    override = _update(b, make_override, decision_id=FAKE_DECISION)
    return _case(override, Expect("dead_letter", "unknown_decision"), report)


def ack_unknown_decision(b: CorpusBuilder) -> Case:
    """An acknowledgement naming a decision this victim never had."""
    report = _plain(b)
    ack = _update(b, make_ack, decision_id=FAKE_DECISION)
    return _case(ack, Expect("dead_letter", "unknown_decision"), report)


# -- a closed case --------------------------------------------------------------------


def action_closed_case(b: CorpusBuilder) -> Case:
    """An action on a case already closed."""
    report = _plain(b)
    closed = _update(b, make_closed)
    action = _update(b, make_action, decision_id=b.decision_of(report))
    return _case(action, Expect("dead_letter", "case_closed"), report, closed)


def ack_closed_case(b: CorpusBuilder) -> Case:
    """An acknowledgement of a case already closed."""
    report = _plain(b)
    closed = _update(b, make_closed)
    ack = _update(b, make_ack, decision_id=b.decision_of(report))
    return _case(ack, Expect("dead_letter", "case_closed"), report, closed)


def override_closed_case(b: CorpusBuilder) -> Case:
    """An override of a closed case: rejected (there is no level to change)."""
    report = _danger(b)
    closed = _update(b, make_closed)
    override = _update(b, make_override, decision_id=b.decision_of(report), new_level=Level.P1)
    return _case(override, Expect("override_rejected", "case_closed"), report, closed)


# -- overrides that break the rules -----------------------------------------------------


def downgrade_without_reviewer(b: CorpusBuilder) -> Case:
    """Lowering a P1 case with no second reviewer."""
    report = _danger(b)
    override = _update(
        b, make_override, decision_id=b.decision_of(report), direction="down",
        new_level=b.choice((Level.P2, Level.P3, Level.P4)), reason="protection_in_place",
    )  # fmt: skip
    return _case(override, Expect("override_rejected", "missing_second_reviewer"), report)


def downgrade_reviewer_is_author(b: CorpusBuilder) -> Case:
    """Lowering a P1 case with its author as the second reviewer."""
    report = _danger(b)
    override = _update(
        b, make_override, decision_id=b.decision_of(report), direction="down",
        new_level=Level.P3, reason="new_information", second_reviewer=RESPONDER_REF,
    )  # fmt: skip
    return _case(override, Expect("override_rejected", "second_reviewer_is_author"), report)


def upgrade_not_higher(b: CorpusBuilder) -> Case:
    """An "upgrade" of a P1 case to P1 or lower."""
    report = _danger(b)
    override = _update(
        b, make_override, decision_id=b.decision_of(report), direction="up",
        new_level=b.choice((Level.P1, Level.P2, Level.P4)),
    )  # fmt: skip
    return _case(override, Expect("override_rejected", "not_an_upgrade"), report)


def downgrade_not_lower(b: CorpusBuilder) -> Case:
    """A "downgrade" of a P4 case to P4 or higher, second reviewer and all."""
    report = _plain(b)
    override = _update(
        b, make_override, decision_id=b.decision_of(report), direction="down",
        new_level=b.choice((Level.P1, Level.P3, Level.P4)), reason="data_entry_error",
        second_reviewer=SECOND_REVIEWER_REF,
    )  # fmt: skip
    return _case(override, Expect("override_rejected", "not_a_downgrade"), report)


# -- updates that change nothing ------------------------------------------------------


def ack_wrong_queue(b: CorpusBuilder) -> Case:
    """An acknowledgement of the right decision in a queue the case is not in."""
    report = _plain(b)
    ack = _update(b, make_ack, decision_id=b.decision_of(report), queue=b.choice(OTHER_QUEUES))
    return _case(ack, Expect("ignored", "no_open_assignment"), report)


def ack_twice(b: CorpusBuilder) -> Case:
    """A second acknowledgement (another responder, another id) of the same record."""
    report = _plain(b)
    first = _update(b, make_ack, decision_id=b.decision_of(report))
    second = _update(b, make_ack, decision_id=b.decision_of(report), responder_ref="R-77")
    return _case(second, Expect("ignored", "already_acknowledged"), report, first)


def ack_stale_decision(b: CorpusBuilder) -> Case:
    """An acknowledgement of the previous decision after a new report re-routed the case."""
    first = _plain(b)
    second = _plain(b)
    ack = _update(b, make_ack, decision_id=b.decision_of(first))
    return _case(ack, Expect("ignored", "stale_decision"), first, second)


def action_twice(b: CorpusBuilder) -> Case:
    """A second action on a record the first action already completed."""
    report = _plain(b)
    first = _update(b, make_action, decision_id=b.decision_of(report))
    second = _update(b, make_action, decision_id=b.decision_of(report), action="referral")
    return _case(second, Expect("ignored", "no_open_assignment"), report, first)


def closed_twice(b: CorpusBuilder) -> Case:
    """A second closure of the same case."""
    report = _plain(b)
    first = _update(b, make_closed)
    second = _update(b, make_closed, outcome="transferred")
    return _case(second, Expect("ignored", "already_closed"), report, first)


CONTRADICTIONS: dict[str, Builder] = {
    fn.__name__: fn
    for fn in (
        ack_before_report, action_before_report, override_unknown_case,
        protection_unknown_case, closed_unknown_case, override_unknown_decision,
        ack_unknown_decision, action_closed_case, ack_closed_case, override_closed_case,
        downgrade_without_reviewer, downgrade_reviewer_is_author, upgrade_not_higher,
        downgrade_not_lower, ack_wrong_queue, ack_twice, ack_stale_decision, action_twice,
        closed_twice,
    )
}  # fmt: skip
"""Builders by kind name."""

__all__ = ["CONTRADICTIONS"]
