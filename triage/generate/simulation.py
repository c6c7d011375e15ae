"""The discrete-event simulation that produces a year of good events.

Pending intents wait in a priority queue by time. The earliest is turned into
an event, written, and fed (as the raw record a worker would consume) through
an in-process :class:`~triage.pipeline.processor.Processor`; every queue record
the engine routes makes the simulated responders plan their acknowledgement and
action against the real ``decision_id`` and ``queue``. The engine's timers
(re-assessments, deadlines) are fired in event time between events, so that
responders also see re-assessment records when they are due. Only the input
events are written; the processor's outputs stay inside.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from random import Random

from triage.events.inputs import InputEvent, ProtectionGranted
from triage.events.outputs import OutputEvent, QueueRecord
from triage.generate.config import GeneratorConfig
from triage.generate.factory import EventFactory, log_record
from triage.generate.geography import CommuneSampler
from triage.generate.intents import Intent, Report
from triage.generate.population import Population
from triage.generate.responders import Planned, Responders
from triage.generate.timeline import Timeline
from triage.pipeline import deadline_book
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.topics import Topics

_TICK = timedelta(microseconds=1)
"""Timers fire strictly before the clock; one microsecond past a deadline fires it
without reaching the next event (event times are whole milliseconds)."""


class Simulation:
    """One run: the population, the responders, and the engine that links them."""

    def __init__(self, config: GeneratorConfig, engine: Engine) -> None:
        self.timeline = Timeline(config.start, config.days)
        self.topics = Topics()
        self.processor = Processor(engine, self.topics)
        population = Population(
            Random(config.stream("population")), self.timeline, CommuneSampler(engine.units)
        )
        victims, reports = population.victims_and_reports(config.victims)
        self.victims = {victim.ref: victim for victim in victims}
        self.responders = Responders(
            Random(config.stream("responders")), self.timeline, self.victims
        )
        self.factory = EventFactory(config.seed, self.victims)
        self._pending: list[tuple[int, int, Intent]] = []
        self._seq = 0
        self._wakes: list[tuple[datetime, str]] = []
        self._planned_wake: dict[str, datetime] = {}
        self._schedule((when, Report(draft)) for when, draft in reports)

    def run(self) -> Iterator[LogRecord]:
        """Yield every good record, in time order (ties in planning order)."""
        end = self.timeline.end_ms
        while self._pending:
            when = self._pending[0][0]
            if when >= end:
                return
            if self._fire_timer_before(when):
                continue
            _, _, intent = heapq.heappop(self._pending)
            ref = intent.draft.victim.ref if isinstance(intent, Report) else intent.victim_ref
            event = self.factory.build(
                intent, self.timeline.at(when), self.processor.states.get(ref)
            )
            if event is None:
                continue
            record = log_record(event)
            batch = self.processor.feed(to_raw(record, self.topics))
            self._react(batch.outputs, when, event)
            yield record

    def _schedule(self, planned: Iterable[tuple[int, Intent]]) -> None:
        for when, intent in planned:
            self._seq += 1
            heapq.heappush(self._pending, (when, self._seq, intent))

    def _fire_timer_before(self, when: int) -> bool:
        """Fire the earliest engine timer due before ``when``; False when there is none."""
        while self._wakes:
            due, ref = self._wakes[0]
            state = self.processor.states.get(ref)
            if state is None or deadline_book.wakeup(state) != due:
                heapq.heappop(self._wakes)  # stale: the victim's timers moved
                continue
            due_ms = self.timeline.ms(due)
            if due_ms >= when:
                return False
            batch = self.processor.advance(due + _TICK)
            self._react(batch.outputs, due_ms, None, ref)
            if self._wakes and self._wakes[0] == (due, ref):
                heapq.heappop(self._wakes)  # fired (or nothing left to fire at that time)
            return True
        return False

    def _react(
        self,
        outputs: Iterable[OutputEvent],
        now: int,
        event: InputEvent | None,
        timer_ref: str | None = None,
    ) -> None:
        touched: set[str] = {timer_ref} if timer_ref is not None else set()
        planned: Planned = []
        if event is not None:
            touched.add(event.victim_ref)
            if isinstance(event, ProtectionGranted):
                self.victims[event.victim_ref].measures.add(event.measure)
                planned += self.responders.alarms(event.victim_ref, event.measure, now)
        for output in outputs:
            ref = getattr(output, "victim_ref", None)
            if ref is not None:
                touched.add(ref)
            if isinstance(output, QueueRecord):
                planned += self.responders.on_queue_record(output, now)
        self._schedule(planned)
        for ref in sorted(touched):
            self._watch(ref)

    def _watch(self, ref: str) -> None:
        state = self.processor.states.get(ref)
        wake = deadline_book.wakeup(state) if state is not None else None
        if wake is not None and self._planned_wake.get(ref) != wake:
            self._planned_wake[ref] = wake
            heapq.heappush(self._wakes, (wake, ref))


def good_records(config: GeneratorConfig, engine: Engine) -> Iterator[LogRecord]:
    """The well-formed records of a run, in time order."""
    return Simulation(config, engine).run()
