"""The processor: raw records in, output records out, for many victims at once.

It owns the stream clock and the wake-up schedule; the engine stays per victim.
The offline replay drives one processor over a whole log; the Faust worker
drives one per partition. Given records in the same order, both produce the
same outputs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime

from triage.events.base import evolve
from triage.events.inputs import (
    CaseAcknowledged,
    CaseActionTaken,
    CaseClosed,
    CaseOverride,
    ClockWatermark,
    InputEvent,
    ProtectionGranted,
    ReportReceived,
)
from triage.events.outputs import OutputEvent
from triage.pipeline import deadline_book
from triage.pipeline.effects import Refusal
from triage.pipeline.engine import Engine, Step
from triage.pipeline.ingest import PROCESSING_ERROR, Accepted, RawRecord, dead_letter, ingest
from triage.pipeline.observations import (
    ClockClamped,
    Conflict,
    Decided,
    Duplicate,
    EventHandled,
    EventOutcome,
    Ignored,
    Merged,
    Observation,
    Overridden,
    OverrideRejection,
    ProcessingError,
    ProcessingStage,
    RefusalReason,
    Refused,
    UpdateWaiting,
    WaitOutcome,
)
from triage.pipeline.state import VictimState, Waiting
from triage.topics import Topics

WAITABLE = frozenset({"unknown_case", "unknown_decision"})
"""Refusals an update may wait out: its case or decision may still be on its way."""

UPDATES = (CaseAcknowledged, CaseActionTaken, ProtectionGranted, CaseClosed, CaseOverride)
"""Events that name a case (reports and alarms open one)."""

WAITING_MAX = 8
"""Most updates one victim holds at once; more are refused at once."""

WAITING_MAX_BYTES = 128 * 1024
"""Most bytes of held records per victim (its state goes to the changelog whole)."""


@dataclass(slots=True)
class Batch:
    """Outputs and observations of one call, in order."""

    outputs: list[OutputEvent] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)

    def take(self, step: Step) -> None:
        """Append what a step produced."""
        self.outputs.extend(step.outputs)
        self.observations.extend(step.observations)


class Processor:
    """Feeds records through ingestion and the engine, firing timers in event time.

    Event time is trusted as far as the mode allows. In replay mode the log is the
    truth: an event ingestion accepts (stamped 2000–2200, at most 24 h after its record
    timestamp) moves the clock, whatever the gap since the partition's last record.
    In live mode the caller knows the wall clock and passes a ``ceiling`` (wall clock
    plus the allowed skew) to :meth:`feed`: an event stamped later is taken at the
    ceiling, so that an upstream clock running ahead (a server's, a replay's) never
    takes the stream clock into the future to escalate other victims' cases early.
    """

    def __init__(
        self,
        engine: Engine,
        topics: Topics,
        states: MutableMapping[str, VictimState] | None = None,
        *,
        hold: Callable[[Waiting], bool] | None = None,
    ) -> None:
        self.engine = engine
        self._hold = hold
        """The worker's say on a held update whose grace ended in stream time: True
        keeps it a while longer (see :meth:`advance`); None (offline) never does."""
        self._deferred: set[str] = set()
        self.topics = topics
        self.states: MutableMapping[str, VictimState] = states if states is not None else {}
        self.clock: datetime | None = None
        self.dirty: set[str] = set()
        """Victims whose state changed since the last :meth:`take_dirty`."""
        self._wakeups: list[tuple[datetime, str]] = []
        self._wake: dict[str, datetime] = {}
        """The wake-up each victim is scheduled for (heap entries that differ are stale)."""
        for ref, state in self.states.items():
            self._schedule(ref, deadline_book.wakeup(state))

    def feed(self, record: RawRecord, ceiling: datetime | None = None) -> Batch:
        """Process one consumed record. Never raises for a record.

        ``ceiling`` (live mode: wall clock plus skew; ``None`` in replay mode) is the
        latest time the record may move the stream clock to. An event stamped after
        it is still processed, at the ceiling: its decision, deadlines and history
        entry start there (its input record keeps the time upstream gave), and the
        clamp is observed (``clock_clamped``, with how many seconds it was ahead).

        A record whose processing raises (a bug, ingestion's or the engine's) is
        dead-lettered as ``processing_error`` with the exception's type name only
        (its message may quote the input), and counted; the victim's state is left
        as it was, and outputs of the failed step are dropped. Timers fired by the
        record's time before the failure stand: they were due whatever the record.
        """
        batch = Batch()
        try:
            result = ingest(record, self.topics)
        except Exception as exc:
            return self._failed(record, exc, batch, ProcessingStage.INGEST, "invalid")
        if not isinstance(result, Accepted):
            batch.outputs.append(dead_letter(record, result.reason, result.detail, self.topics))
            batch.observations.append(Refused(RefusalReason(result.reason)))
            batch.observations.append(EventHandled("invalid", EventOutcome.REJECTED))
            return batch
        event = result.event
        original: InputEvent | None = None
        if ceiling is not None and event.time > ceiling:
            # Taken at its own time, it would move the clock there and fire every
            # deadline and re-assessment of the partition due before it, early.
            batch.observations.append(
                ClockClamped(
                    event.type,
                    seconds=(event.time - ceiling).total_seconds(),
                    channel=event.channel if isinstance(event, ReportReceived) else "",
                )
            )
            if not isinstance(event, ClockWatermark):
                original = event  # what identifies it (duplicates, conflicts)
            event = evolve(event, time=ceiling)
        if isinstance(event, ClockWatermark):
            self.advance(event.time, batch)
            batch.observations.append(EventHandled(event.type, EventOutcome.WATERMARK))
            return batch
        now = event.time if self.clock is None or event.time > self.clock else self.clock
        self.clock = now
        if self._wakeups and self._wakeups[0][0] < now:
            self.advance(now, batch)
        ref = event.victim_ref
        before = self.states.get(ref)
        was_dirty = ref in self.dirty
        marks = len(batch.outputs), len(batch.observations)
        try:
            step = (
                self.engine.step(before, event, now)
                if original is None
                else self.engine.step(before, event, now, original=original)
            )
            state, outcome = step.state, _outcome(step)
            refusal = step.refusal
            waiting = (
                self._wait(step.state, ref, event, record, refusal, now)
                if refusal is not None
                else None
            )
            if waiting is not None:
                # Held, not refused: its refusal is not counted as a dead letter.
                batch.outputs.extend(step.outputs)
                batch.observations.extend(
                    o for o in step.observations if not isinstance(o, Refused)
                )
                state, outcome = waiting
                if outcome is EventOutcome.WAITING:
                    batch.observations.append(UpdateWaiting(WaitOutcome.WAITING))
                else:
                    batch.observations.append(Duplicate(event.type))
            else:
                batch.take(step)
                if refusal is not None:
                    batch.outputs.append(
                        dead_letter(record, refusal.reason, refusal.detail, self.topics)
                    )
                elif state is not None and state.waiting:
                    state = self._retry(state, now, batch)
            batch.observations.append(
                EventHandled(
                    event.type,
                    outcome,
                    # Not getattr(): pydantic raises (and we would catch) for every update.
                    channel=event.channel if isinstance(event, ReportReceived) else "",
                )
            )
            if state is not None:
                self._store(ref, state)
        except Exception as exc:
            del batch.outputs[marks[0] :], batch.observations[marks[1] :]
            self._restore(ref, before, was_dirty)
            return self._failed(record, exc, batch, ProcessingStage.ENGINE, event.type)
        return batch

    # -- updates waiting for their case ---------------------------------------

    def _wait(
        self,
        state: VictimState | None,
        ref: str,
        event: InputEvent,
        record: RawRecord,
        refusal: Refusal,
        now: datetime,
    ) -> tuple[VictimState, EventOutcome] | None:
        """Hold an update its victim has no case or decision for yet, if it may wait:
        the state holding it and the event's outcome; ``None`` to refuse it now.

        It waits the rule set's ``update_grace`` in stream time (see :meth:`_retry`
        and :meth:`_expire`), unless its victim already holds :data:`WAITING_MAX`
        updates or :data:`WAITING_MAX_BYTES` of them (then it is refused at once). The
        same record held twice is a duplicate.
        """
        grace = self.engine.rules.update_grace
        if (
            grace is None
            or grace.delta is None
            or refusal.reason not in WAITABLE
            or not isinstance(event, UPDATES)
        ):
            return None
        state = state if state is not None else VictimState(victim_ref=ref)
        held = state.waiting
        if any(w.value == record.value and w.topic == record.topic for w in held):
            return state, EventOutcome.DUPLICATE
        size = len(record.value) + sum(len(w.value) for w in held)
        if len(held) >= WAITING_MAX or size > WAITING_MAX_BYTES:
            return None
        entry = Waiting.holding(
            record, due=now + grace.delta, reason=refusal.reason, detail=refusal.detail
        )
        return evolve(state, waiting=(*held, entry)), EventOutcome.WAITING

    def _retry(self, state: VictimState, now: datetime, batch: Batch) -> VictimState:
        """Apply, oldest first, the updates ``state`` holds that its case now allows.

        Passes repeat while one applies (an override may bring the decision a later
        acknowledgement names). One refused for another reason is dead-lettered now;
        one still without its case keeps waiting, its due time unchanged.
        """
        pending, state = state.waiting, evolve(state, waiting=())
        progress = True
        while pending and progress:
            progress, kept = False, []
            for held in pending:
                raw = held.record()
                result = ingest(raw, self.topics)
                if not isinstance(result, Accepted) or isinstance(result.event, ClockWatermark):
                    # Not reachable (it was accepted once): refuse it as it was refused.
                    batch.outputs.append(dead_letter(raw, held.reason, held.detail, self.topics))
                    batch.observations.append(Refused(RefusalReason(held.reason)))
                    continue
                event, original = result.event, None
                if event.time > now:  # taken at the clock ceiling when it came
                    event, original = evolve(event, time=now), event
                step = self.engine.step(state, event, now, original=original)
                if step.refusal is not None and step.refusal.reason in WAITABLE:
                    # Still waiting, now for what its case lacks (the case came, the
                    # decision it names did not): the dead letter it would get at once.
                    kept.append(
                        held.model_copy(
                            update={"reason": step.refusal.reason, "detail": step.refusal.detail}
                        )
                    )
                    continue
                batch.take(step)
                if step.state is not None:
                    state = step.state
                if step.refusal is not None:
                    batch.outputs.append(
                        dead_letter(raw, step.refusal.reason, step.refusal.detail, self.topics)
                    )
                else:
                    batch.observations.append(UpdateWaiting(WaitOutcome.APPLIED))
                    progress = True
            pending = tuple(kept)
        return evolve(state, waiting=pending) if pending else state

    def _expire(self, state: VictimState, now: datetime, batch: Batch) -> VictimState:
        """Dead-letter the held updates whose grace period ended before ``now``."""
        kept = []
        grace = self.engine.rules.update_grace
        span = grace.text if grace is not None else "grace"
        for held in state.waiting:
            if held.due >= now or (self._hold is not None and self._hold(held)):
                kept.append(held)
                continue
            detail = f"{held.detail}; none came within the {span} grace period"
            batch.outputs.append(dead_letter(held.record(), held.reason, detail, self.topics))
            batch.observations.append(UpdateWaiting(WaitOutcome.EXPIRED))
            batch.observations.append(Refused(RefusalReason(held.reason)))
        return evolve(state, waiting=tuple(kept))

    def _failed(
        self,
        record: RawRecord,
        exc: Exception,
        batch: Batch,
        stage: ProcessingStage,
        event_type: str,
    ) -> Batch:
        """Dead-letter ``record``, whose processing raised ``exc``, and count it."""
        reason = PROCESSING_ERROR
        batch.outputs.append(dead_letter(record, reason, type(exc).__name__, self.topics))
        batch.observations.append(ProcessingError(stage))
        batch.observations.append(Refused(RefusalReason.PROCESSING_ERROR))
        batch.observations.append(EventHandled(event_type, EventOutcome.ERROR))
        return batch

    def _restore(self, ref: str, before: VictimState | None, was_dirty: bool) -> None:
        """Put ``ref``'s state back as it was before a step that raised."""
        if self.states.get(ref) is not before:
            if before is None:
                self.states.pop(ref, None)
            else:
                self.states[ref] = before
        if not was_dirty:
            self.dirty.discard(ref)
        wake = deadline_book.wakeup(before) if before is not None else None
        if self._wake.get(ref) != wake:
            self._schedule(ref, wake)

    def advance(self, now: datetime, batch: Batch | None = None) -> Batch:
        """Move the stream clock to ``now`` and fire every timer due before it.

        A held update whose grace ended may be kept a while longer by the worker's
        ``hold`` (its case may be in flight: at a replay's speed, an hour of stream time
        passes in a second of transport); its victim is then looked at again on the
        next call (:meth:`recheck`), the dead letter unchanged whenever it comes.
        """
        batch = batch if batch is not None else Batch()
        if self.clock is None or now > self.clock:
            self.clock = now
        kept: set[str] = set()
        while self._wakeups and self._wakeups[0][0] < now:
            when, ref = heapq.heappop(self._wakeups)
            state = self.states.get(ref)
            if state is None or self._wake.get(ref) != when:
                continue  # stale entry; a fresher one is in the heap
            if ref in kept:
                continue  # holds an update the worker keeps: pushed back below
            was_dirty = ref in self.dirty
            try:
                step = self.engine.step(state, None, now)
                after = step.state
                if after is not None and after.waiting and after.waiting[0].due < now:
                    extra = Batch()
                    after = self._expire(after, now, extra)
                    step = step._replace(
                        state=after,
                        outputs=(*step.outputs, *extra.outputs),
                        observations=(*step.observations, *extra.observations),
                    )
                if after is not None:
                    self._store(ref, after)
                    if any(held.due < now for held in after.waiting):
                        kept.add(ref)  # a held update the worker keeps: next call
            except Exception:
                # No record to dead-letter: count it, leave the state, and do not
                # retry this victim's timer until its next event (or a restart),
                # or every later record would raise again.
                self._restore(ref, state, was_dirty)
                self._wake.pop(ref, None)
                batch.observations.append(ProcessingError(ProcessingStage.TIMER))
                continue
            batch.take(step)
        for ref in kept:
            wake = self._wake.get(ref)
            if wake is not None:
                heapq.heappush(self._wakeups, (wake, ref))
        self._deferred = kept
        return batch

    def recheck(self) -> Batch:
        """Look again at the victims whose held updates the worker kept past their grace
        (nothing when there are none)."""
        if not self._deferred or self.clock is None:
            return Batch()
        return self.advance(self.clock)

    def take_dirty(self) -> dict[str, VictimState]:
        """States changed since the last call (for the worker to persist), and forget them."""
        changed = {ref: self.states[ref] for ref in self.dirty}
        self.dirty.clear()
        return changed

    def _store(self, ref: str, state: VictimState) -> None:
        self.states[ref] = state
        self.dirty.add(ref)
        wake = deadline_book.wakeup(state)
        if self._wake.get(ref) != wake:
            self._schedule(ref, wake)

    def _schedule(self, ref: str, wake: datetime | None) -> None:
        if wake is None:
            self._wake.pop(ref, None)
        else:
            self._wake[ref] = wake
            heapq.heappush(self._wakeups, (wake, ref))


def _outcome(step: Step) -> EventOutcome:
    """What became of an accepted event: the ``outcome`` label of the events metric."""
    if step.refusal is not None:
        return EventOutcome.REFUSED
    outcome = EventOutcome.APPLIED
    for observation in step.observations:
        match observation:
            case Duplicate():
                return EventOutcome.DUPLICATE
            case Conflict():
                return EventOutcome.CONFLICT
            case Merged():
                outcome = EventOutcome.MERGED
            case Decided() | Overridden():
                outcome = EventOutcome.DECIDED
            case OverrideRejection() if outcome is not EventOutcome.DECIDED:
                outcome = EventOutcome.REJECTED
            case Ignored() if outcome is EventOutcome.APPLIED:
                outcome = EventOutcome.IGNORED
    return outcome
