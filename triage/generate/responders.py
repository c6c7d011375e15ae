"""Simulated responders: how long they take to acknowledge and act, and what follows.

Delays depend on the level only, never on how many records are waiting: the
capacity model belongs to a later demo, and risk must never bend to load.
Each level has an on-time share; the rest is late by an exponential delay,
and a small share is never acknowledged, so SLA breaches happen at every level.
"""

from __future__ import annotations

from dataclasses import replace
from random import Random
from typing import Literal, TypeVar

from triage.events.base import Level, QueueName
from triage.events.inputs import OverrideReason
from triage.events.outputs import QueueRecord
from triage.generate.identities import (
    MEASURE_SERVICE,
    QUEUE_SERVICE,
    RESPONDERS_PER_UNIT,
    RefMint,
    responder,
    slug,
)
from triage.generate.intents import (
    ActionKind,
    Alarm,
    Closure,
    Intent,
    Measure,
    Outcome,
    Override,
    OverrideMode,
    Progress,
    Protection,
)
from triage.generate.population import Victim
from triage.generate.timeline import DAY, HOUR, MINUTE, SECOND, Timeline

Planned = list[tuple[int, Intent]]
T = TypeVar("T")

PRIMARY_QUEUES = frozenset({"immediate", "high-risk", "follow-up", "standard"})
# (share on time, mean lateness in ms of the others), per level.
ACK = {
    Level.P1: (0.92, 10 * MINUTE),
    Level.P2: (0.88, 2 * HOUR),
    Level.P3: (0.87, 20 * HOUR),
    Level.P4: (0.90, 2 * DAY),
}
ACTION = {
    Level.P1: (0.85, 20 * MINUTE),
    Level.P2: (0.85, 12 * HOUR),
    Level.P3: (0.82, 2 * DAY),
    Level.P4: (0.88, 4 * DAY),
}
NEVER_ACKNOWLEDGED = 0.012
NEVER_ACTED = 0.02
# Closures: share of cases closed, and the range (days) after the action.
CLOSED_SHARE = {Level.P1: 0.93, Level.P2: 0.9, Level.P3: 0.88, Level.P4: 0.92}
CLOSE_AFTER_DAYS = {Level.P1: (14, 42), Level.P2: (21, 70), Level.P3: (14, 42), Level.P4: (7, 21)}
_OUTCOMES: tuple[tuple[Outcome, float], ...] = (
    ("resolved", 0.40),
    ("no_further_action", 0.30),
    ("victim_unreachable", 0.10),
    ("victim_relocated", 0.10),
    ("transferred", 0.10),
)
# Protection measures for high-risk cases.
PROTECTED_SHARE = {Level.P1: 0.35, Level.P2: 0.22}
_MEASURES: dict[Level, tuple[tuple[Measure, float], ...]] = {
    Level.P1: (("tgd", 0.35), ("shelter", 0.2), ("oppi", 0.2), ("bar", 0.1), ("op", 0.15)),
    Level.P2: (("tgd", 0.25), ("op", 0.3), ("oppi", 0.15), ("bar", 0.1), ("shelter", 0.2)),
}
# Device alarms per device-year (TGD: ~2,500 interventions for ~3,500 phones;
# BAR: ~3,600 interventions for ~1,000 bracelets) and how long a device is held.
ALARMS_PER_YEAR = {"tgd": 0.7, "bar": 3.5}
DEVICE_DAYS = 183
# Overrides: upgrades, valid downgrades (second reviewer), invalid downgrades.
UPGRADE_SHARE = 0.03
DOWNGRADE_AFTER_PROTECTION = 0.15
INVALID_DOWNGRADE_SHARE = 0.01
_ACTIONS: dict[QueueName, tuple[tuple[ActionKind, float], ...]] = {
    "immediate": (("on_scene", 0.75), ("suspect_detained", 0.2), ("victim_contacted", 0.05)),
    "high-risk": (
        ("safety_plan", 0.45),
        ("victim_contacted", 0.35),
        ("suspect_detained", 0.1),
        ("referral", 0.1),
    ),
    "follow-up": (("victim_contacted", 0.55), ("referral", 0.25), ("safety_plan", 0.2)),
    "standard": (("victim_contacted", 0.6), ("referral", 0.4)),
    "child-protection": (("referral", 0.6), ("victim_contacted", 0.4)),
    "judicial": (("suspect_detained", 0.4), ("referral", 0.6)),
}
_UPGRADE_REASONS: tuple[tuple[OverrideReason, float], ...] = (
    ("new_information", 0.4),
    ("professional_judgement", 0.4),
    ("victim_disclosure", 0.2),
)
_MIN_DELAY = 5 * SECOND


def _pick(rng: Random, table: tuple[tuple[T, float], ...]) -> T:
    return rng.choices([name for name, _ in table], [weight for _, weight in table])[0]


class Responders:
    """Plans the lifecycle events that follow a queue record."""

    def __init__(self, rng: Random, timeline: Timeline, victims: dict[str, Victim]) -> None:
        self._rng = rng
        self._timeline = timeline
        self._victims = victims
        self._mint = RefMint(rng)

    def on_queue_record(self, record: QueueRecord, now: int) -> Planned:
        """Acknowledgement, action and (for a primary queue) what may follow them."""
        rng, level = self._rng, record.level
        start = max(self._timeline.ms(record.time), now)
        ack_due = self._timeline.ms(record.ack_due)
        action_due = self._timeline.ms(record.action_due)
        service = QUEUE_SERVICE.get(record.queue, slug(record.unit))
        author = self._person(service)
        planned: Planned = []
        acked = acted = None
        ack = Progress(record.victim_ref, record.decision_id, record.queue, service, author)
        if rng.random() >= NEVER_ACKNOWLEDGED:
            acked = _by_deadline(rng, start, ack_due, *ACK[level])
            planned.append((acked, ack))
            if rng.random() >= NEVER_ACTED:
                acted = _by_deadline(rng, acked, action_due, *ACTION[level])
                planned.append((acted, replace(ack, action=_pick(rng, _ACTIONS[record.queue]))))
        if record.queue in PRIMARY_QUEUES and record.kind != "reassessment":
            done = acted if acted is not None else max(action_due, start)
            planned += self._follow_up(record, service, author, acked or start, done)
        return planned

    def _follow_up(
        self, record: QueueRecord, service: str, author: str, acked: int, done: int
    ) -> Planned:
        rng, level = self._rng, record.level
        victim = self._victims[record.victim_ref]
        victim.epoch += 1
        planned: Planned = []
        ref = record.victim_ref
        if record.kind == "new" and level in PROTECTED_SHARE:
            share = PROTECTED_SHARE[level] * (0.3 if victim.measures else 1.0)
            if rng.random() < share:
                measure = _pick(rng, _MEASURES[level])
                granted = done + rng.randrange(2 * HOUR, 6 * DAY)
                who = self._person(MEASURE_SERVICE[measure])
                planned.append((granted, Protection(ref, measure, who)))
                if rng.random() < DOWNGRADE_AFTER_PROTECTION:
                    when = granted + rng.randrange(DAY, 5 * DAY)
                    planned.append(
                        (when, self._override(ref, "down", service, author, "protection_in_place"))
                    )
        if record.kind == "new" and level in (Level.P3, Level.P4) and rng.random() < UPGRADE_SHARE:
            reason = _pick(rng, _UPGRADE_REASONS)
            when = acked + rng.randrange(10 * MINUTE, 2 * DAY)
            planned.append((when, self._override(ref, "up", service, author, reason)))
        if level in (Level.P2, Level.P3) and rng.random() < INVALID_DOWNGRADE_SHARE:
            mode: Literal["down_no_reviewer", "down_self_review"] = rng.choice(
                ("down_no_reviewer", "down_self_review")
            )
            when = acked + rng.randrange(HOUR, 3 * DAY)
            planned.append((when, self._override(ref, mode, service, author, "data_entry_error")))
        if rng.random() < CLOSED_SHARE[level]:
            low, high = CLOSE_AFTER_DAYS[level]
            when = done + rng.randrange(low * DAY, high * DAY)
            outcome = _pick(rng, _OUTCOMES)
            planned.append((when, Closure(ref, victim.epoch, service, author, outcome)))
        return planned

    def alarms(self, victim_ref: str, measure: Measure, granted: int) -> Planned:
        """Alarms a newly granted TGD or BAR raises while it is held (none for other measures)."""
        if measure not in ALARMS_PER_YEAR:
            return []
        rng = self._rng
        device = self._mint.device(measure)
        kind: Literal["tgd_pressed", "bar_zone_breach"] = (
            "tgd_pressed" if measure == "tgd" else "bar_zone_breach"
        )
        mean_gap = 365 * DAY / ALARMS_PER_YEAR[measure]
        planned: Planned = []
        when = granted
        while True:
            when += max(HOUR, int(rng.expovariate(1.0 / mean_gap)))
            if when >= granted + DEVICE_DAYS * DAY:
                return planned
            planned.append((when, Alarm(victim_ref, device, kind)))

    def _override(
        self, ref: str, mode: OverrideMode, service: str, author: str, reason: OverrideReason
    ) -> Override:
        reviewer = author
        while reviewer == author:
            reviewer = self._person(service)
        return Override(ref, mode, service, author, reviewer, reason)

    def _person(self, service: str) -> str:
        return responder(service, self._rng.randint(1, RESPONDERS_PER_UNIT))


def _by_deadline(rng: Random, start: int, due: int, on_time: float, lateness: int) -> int:
    """A moment after ``start``: before ``due`` with probability ``on_time``, else late."""
    room = due - start
    if room > _MIN_DELAY and rng.random() < on_time:
        # Skewed early: most responders are well inside the deadline.
        return start + max(_MIN_DELAY, int(room * rng.random() ** 1.6))
    return max(start, due) + max(_MIN_DELAY, int(rng.expovariate(1.0 / lateness)))
