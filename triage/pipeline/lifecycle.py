"""Responders' lifecycle events: acknowledged, action taken, protection granted, closed."""

from __future__ import annotations

from triage.events.base import evolve
from triage.events.inputs import CaseAcknowledged, CaseActionTaken, CaseClosed, ProtectionGranted
from triage.pipeline.effects import Effects, Refusal
from triage.pipeline.observations import Acked, Actioned, Closed, Ignored, IgnoredReason, Protected
from triage.pipeline.state import Assignment, VictimState


def replace_assignment(
    assignments: tuple[Assignment, ...], item: Assignment
) -> tuple[Assignment, ...]:
    """``assignments`` with ``item`` in place of the one in the same queue (order kept)."""
    queue = item.queue
    return (*[a for a in assignments if a.queue != queue], item)


def on_progress(
    state: VictimState, event: CaseAcknowledged | CaseActionTaken, fx: Effects
) -> VictimState | Refusal:
    """An acknowledgement or an action on an open assignment; measured in event time."""
    if event.decision_id not in state.recent_decisions:
        return Refusal(
            "unknown_decision", f"{event.type} names a decision this victim does not have"
        )
    if not state.open:
        return Refusal("case_closed", f"{event.type} for a closed case")
    item = state.assignment(event.queue)
    if item is None:
        fx.observe(Ignored(IgnoredReason.NO_OPEN_ASSIGNMENT, queue=event.queue))
        return state
    if item.decision_id != event.decision_id:
        # The responder answered an older record; the current one (newer information,
        # possibly a higher level) still needs its own acknowledgement.
        fx.observe(Ignored(IgnoredReason.STALE_DECISION, queue=event.queue))
        return state
    level, unit = item.level.value, state.unit or ""
    # A review's acknowledgement and action are marked (``review``): they are timed
    # against the review deadlines, not the level's danger-now ones.
    if item.acked_at is None:
        seconds = max((event.time - item.routed_at).total_seconds(), 0.0)
        fx.observe(
            Acked(
                level,
                item.queue,
                unit=unit,
                seconds=seconds,
                late=event.time > item.ack_due,
                review=item.review,
            )
        )
        if isinstance(event, CaseAcknowledged):
            item = evolve(item, acked_at=event.time)
            assignments = replace_assignment(state.assignments, item)
            return evolve(state, assignments=assignments)
        # An action acknowledges too; the assignment is done with either way.
    elif isinstance(event, CaseAcknowledged):
        fx.observe(Ignored(IgnoredReason.ALREADY_ACKNOWLEDGED, queue=event.queue))
        return state
    seconds = max((event.time - item.routed_at).total_seconds(), 0.0)
    fx.observe(
        Actioned(
            level,
            item.queue,
            unit=unit,
            seconds=seconds,
            late=event.time > item.action_due,
            review=item.review,
            action=event.action,
        )
    )
    remaining = tuple([a for a in state.assignments if a.queue != item.queue])
    return evolve(state, assignments=remaining)


def on_protection(state: VictimState, event: ProtectionGranted, fx: Effects) -> VictimState:
    """Remember a protection measure (a TGD or BAR holder may later raise alarms)."""
    fx.observe(Protected(event.measure, unit=state.unit or ""))
    if event.measure in state.protections:
        return state
    return evolve(state, protections=(*state.protections, event.measure))


def on_closed(state: VictimState, event: CaseClosed, fx: Effects) -> VictimState:
    """Close the case (a dormant one too): deadlines and re-assessments stop; history
    stays for the window."""
    if not state.open:
        fx.observe(Ignored(IgnoredReason.ALREADY_CLOSED))
        return state
    fx.observe(
        Closed(state.level.value if state.level else "", event.outcome, unit=state.unit or "")
    )
    return evolve(
        state,
        open=False,
        level=None,
        level_since=None,
        raised_level=None,
        assignments=(),
        next_reassessment_at=None,
        quiet_reviews=0,
        dormant_id=None,
    )
