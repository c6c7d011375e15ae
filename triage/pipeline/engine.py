"""The engine: one entry point, ``Engine.step(state, event, now) → Step``.

Pure: the same state, event and stream time always give the same outputs and
the same new state. Time comes from ``now`` (the stream clock: event time in
replay, wall time only when a live timer fires), never from the machine.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from triage.events.base import Level, QueueName, decision_id_of, event_key, evolve
from triage.events.inputs import (
    CaseAcknowledged,
    CaseActionTaken,
    CaseClosed,
    CaseOverride,
    DeviceAlarm,
    InputEvent,
    ProtectionGranted,
    ReportReceived,
)
from triage.events.outputs import OutputEvent
from triage.pipeline import deadline_book, decide, lifecycle, processed, work_records
from triage.pipeline.effects import ENGINE_SOURCE, Effects, Refusal
from triage.pipeline.observations import (
    Conflict,
    Duplicate,
    Observation,
    RefusalReason,
    Refused,
)
from triage.pipeline.state import VictimState
from triage.routing.units import UnitDirectory, load_units
from triage.scoring.rules import RuleSet, load_rules

STALE_REDELIVERY = "stale_redelivery"
"""Refusal reason of an event dated before what its victim may have forgotten (a flood
pushed its entry out of the bounded memory): it may be a redelivery, so it is not decided."""


class Step(NamedTuple):
    """What one step produced: records to publish, observations, the new state."""

    state: VictimState | None
    outputs: tuple[OutputEvent, ...] = ()
    observations: tuple[Observation, ...] = ()
    refusal: Refusal | None = None

    @property
    def wakeup(self) -> datetime | None:
        """When the stream clock must next reach this victim (deadline or re-assessment)."""
        return deadline_book.wakeup(self.state) if self.state is not None else None


class Engine:
    """Decides what each event means for its victim, under one rule set.

    ``remembered`` bounds how many processed events a victim remembers (see
    :mod:`triage.pipeline.processed`); tests lower it to reach the bound quickly.
    """

    __slots__ = ("remembered", "rules", "units")

    def __init__(
        self,
        rules: RuleSet | None = None,
        units: UnitDirectory | None = None,
        *,
        remembered: int = processed.REMEMBERED,
    ) -> None:
        if remembered < 1:
            raise ValueError("remembered must be at least 1")
        self.rules = rules if rules is not None else load_rules()
        self.units = units if units is not None else load_units()
        self.remembered = remembered

    def __repr__(self) -> str:
        return f"Engine(rules={self.rules.version!r})"

    def step(
        self,
        state: VictimState | None,
        event: InputEvent | None,
        now: datetime,
        *,
        original: InputEvent | None = None,
    ) -> Step:
        """Fire the victim's timers due before ``now``, then apply ``event`` (if any).

        ``original``: the event as upstream sent it, when ``event`` is a copy taken at
        another time (live mode's clock ceiling, see :class:`~triage.pipeline.processor.
        Processor`). Its content, not the copy's, identifies the event: a redelivery
        taken at another ceiling, or unclamped, is a duplicate, not a conflict.
        """
        fx = Effects()
        if event is None:
            if state is not None:
                state = self._fire(state, now, fx)
            return Step(state, tuple(fx.outputs), tuple(fx.observations))
        if state is not None:
            due = deadline_book.wakeup(state)
            if due is not None and due < now:
                state = self._fire(state, now, fx)
        key = event_key(event.source, event.id)
        payload = payload_digest(original if original is not None else event)
        if state is not None:
            if state.processed_format == 1:
                state = evolve(
                    state, processed=processed.upgrade(state.processed), processed_format=2
                )
            if state.seen_ids:
                state = self._migrate(state, now)
            # Every processed event is remembered (bounded by count, see processed.py):
            # a redelivery, however late, is a duplicate, never a second decision; a
            # resend with other content is a conflict, escalated, never silent.
            remembered = processed.lookup(state.processed, processed.digest(key))
            if remembered is not None:
                if remembered in (payload, processed.UNKNOWN_PAYLOAD):
                    fx.observe(Duplicate(event.type))
                else:
                    self._conflict(state, event, payload, fx)
                return Step(state, tuple(fx.outputs), tuple(fx.observations))
            if state.forgotten_before is not None and event.time < state.forgotten_before:
                refusal = Refusal(
                    STALE_REDELIVERY,
                    f"{event.type} dated before the events this victim may have forgotten",
                )
                fx.observe(Refused(RefusalReason(refusal.reason)))
                return Step(state, tuple(fx.outputs), tuple(fx.observations), refusal=refusal)
        result = self._apply(state, event, fx)
        if isinstance(result, Refusal):
            fx.observe(Refused(RefusalReason(result.reason)))
            return Step(state, tuple(fx.outputs), tuple(fx.observations), refusal=result)
        state = self._remember(result, processed.entry(key, event.time, payload))
        # An event older than the stream clock can create deadlines already past:
        # they fire now, not whenever the next record happens to come.
        due = deadline_book.wakeup(state)
        if due is not None and due < now:
            state = self._fire(state, now, fx)
        return Step(state, tuple(fx.outputs), tuple(fx.observations))

    def _apply(
        self, state: VictimState | None, event: InputEvent, fx: Effects
    ) -> VictimState | Refusal:
        if isinstance(event, ReportReceived):
            return decide.on_report(self.rules, self.units, state, event, fx)
        if isinstance(event, DeviceAlarm):
            return decide.on_alarm(self.rules, self.units, state, event, fx)
        if state is None or state.decision_id is None:
            # (A state without a decision holds only updates waiting for their case.)
            return Refusal("unknown_case", f"{event.type} for a victim with no case")
        if isinstance(event, CaseOverride):
            return decide.on_override(self.rules, state, event, fx)
        if isinstance(event, (CaseAcknowledged, CaseActionTaken)):
            return lifecycle.on_progress(state, event, fx)
        if isinstance(event, ProtectionGranted):
            return lifecycle.on_protection(state, event, fx)
        if isinstance(event, CaseClosed):
            return lifecycle.on_closed(state, event, fx)
        raise TypeError(f"no handler for {type(event).__name__}")  # pragma: no cover

    def _fire(self, state: VictimState, now: datetime, fx: Effects) -> VictimState:
        """Fire what the deadline book has due before ``now`` (see :func:`deadline_book.fire`)."""
        return deadline_book.fire(self.rules, state, now, fx, default_unit=self.units.default.id)

    # -- de-duplication ------------------------------------------------------

    def _remember(self, state: VictimState, entries: bytes) -> VictimState:
        kept, forgotten = processed.remember(state.processed, entries, self.remembered)
        if forgotten is None:
            return evolve(state, processed=kept, processed_format=2)
        if state.forgotten_before is not None and state.forgotten_before > forgotten:
            forgotten = state.forgotten_before
        return evolve(state, processed=kept, forgotten_before=forgotten, processed_format=2)

    def _migrate(self, state: VictimState, now: datetime) -> VictimState:
        """A state written before :attr:`VictimState.processed`: its ids move there.

        Their event times were not kept; the stream clock, or a later time the state
        shows, stands in for them. It matters only if a flood later makes the victim
        forget them: forgotten last among what came before, they then date the
        forgetting late, so that their copies are refused rather than decided.
        """
        times = [now, *(i.time for i in state.incidents)]
        times += [a.routed_at for a in state.assignments]
        times += [a.acked_at for a in state.assignments if a.acked_at is not None]
        when = max(times)
        entries = b"".join(processed.entry(key, when) for key in state.seen_ids)
        return self._remember(evolve(state, seen_ids=()), entries)

    def _conflict(self, state: VictimState, event: InputEvent, payload: bytes, fx: Effects) -> None:
        """A resend under a processed event's source and id, with other content: not
        decided (its decision id is taken), escalated to the supervisor and counted."""
        original = decision_id_of(event.source, event.id, self.rules.version)
        if original not in state.recent_decisions and state.decision_id is not None:
            original = state.decision_id  # forgotten, or decided under other rules
        item = next((a for a in state.assignments if original in (a.decision_id, a.item_id)), None)
        level = item.level if item is not None else state.level or state.last_computed
        queue: QueueName = "supervisor"
        if item is not None:
            queue = item.queue
        elif state.open and state.level is not None:
            queue = self.rules.sla[state.level].queue
        fx.outputs.append(
            work_records.conflict(
                victim_ref=state.victim_ref,
                decision_id=original,
                queue=queue,
                level=level or Level.P4,
                unit=state.unit or self.units.default.id,
                source=event.source,
                event_id=event.id,
                at=event.time,
                payload=payload,
                fields=differing_fields(state, event),
            )
        )
        fx.observe(Conflict(event.type, queue=queue, unit=state.unit or ""))


_ENVELOPE: set[str] = {"specversion", "schema_version", "time"}
"""Left out of a payload's digest: the same content sent as report v1 or v2 is one
payload, and the event time may be clamped by the shell (an upstream clock running
ahead of the wall clock), so one record taken twice can carry two times."""


def payload_digest(event: InputEvent) -> bytes:
    """The digest of an event's content (:func:`processed.payload_digest`): its validated
    fields as JSON, absent and null alike; versions and event time left out."""
    canonical = event.model_dump_json(exclude=_ENVELOPE, exclude_none=True).encode()
    return processed.payload_digest(canonical)


def differing_fields(state: VictimState, event: InputEvent) -> tuple[str, ...]:
    """The names of the fields in which a conflicting resend differs from its original,
    as far as the state can tell; ``("payload",)`` when it cannot name one.

    The original report or alarm is found in the incident history (by id), which keeps
    its type and ``yes`` answers; its commune is known while it is the case's latest
    incident. Answers other than ``yes``, injuries, channel, reporter, contact and the
    content of responders' updates are not kept: a difference there is ``payload``.
    (The event time takes no part: the shell may clamp it, see :data:`_ENVELOPE`.)
    """
    original = next((i for i in reversed(state.incidents) if i.event_id == event.id), None)
    if original is None or not isinstance(event, (ReportReceived, DeviceAlarm)):
        return ("payload",)
    names: list[str] = []
    kind = "report" if isinstance(event, ReportReceived) else "alarm"
    if original.kind != kind:
        names.append("type")
    commune = event.commune
    if commune is not None and state.incidents[-1] is original and state.commune != commune:
        names.append("commune")
    if isinstance(event, ReportReceived):
        yes = event.indicators.answered_yes()
        names += [f"indicators.{n}" for n in sorted(yes.symmetric_difference(original.yes))]
    return tuple(names) or ("payload",)


__all__ = ["ENGINE_SOURCE", "STALE_REDELIVERY", "Engine", "Level", "Refusal", "Step"]
