"""Synthetic victims and what their reports say.

Each victim has a latent severity (minimal, low, medium, high) that correlates
her indicators, so that strangulation, threats to kill and weapons cluster in
the same cases as they do in practice instead of being scattered independently,
and most cases stay low or medium. Most victims report once; a tail reports
again within the year, and later reports carry more indicators (escalation).

The tables are tuned so that, under the packaged rule set, P3 and P4 dominate
and P1 stays a small share (immediate danger, device alarms, the worst cases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Literal

from triage.events.inputs import (
    INDICATOR_NAMES,
    Answer,
    Channel,
    ContactBlock,
    Indicators,
    Injuries,
    ReporterRole,
)
from triage.generate.geography import CommuneSampler
from triage.generate.identities import RefMint, contact_block
from triage.generate.timeline import Rhythm, Timeline

Severity = Literal["minimal", "low", "medium", "high"]
_SEVERITIES: tuple[Severity, ...] = ("minimal", "low", "medium", "high")
_SEVERITY_SHARE = (0.33, 0.38, 0.24, 0.05)
_CLASS = {name: index for index, name in enumerate(_SEVERITIES)}
# Emergency channels are used more by victims in danger.
_EMERGENCY_LIFT = {"minimal": 0.6, "low": 0.85, "medium": 1.2, "high": 2.0}


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    """How a reporting channel is used and what its reports tend to contain."""

    weight: float
    rhythm: Rhythm
    unknown: float
    """Share of the answers that are not ``yes`` left ``unknown`` (not asked)."""
    immediate: float
    """Share answering ``yes`` to immediate danger (medium severity; scaled by class)."""
    complaint: float
    """Share of reports with a complaint filed."""
    roles: tuple[tuple[ReporterRole, float], ...]
    emergency: bool = False


# fmt: off
CHANNELS: dict[Channel, ChannelProfile] = {
    "station_complaint": ChannelProfile(
        weight=30, rhythm="office", unknown=0.10, immediate=0.01, complaint=0.95,
        roles=(("victim", 0.93), ("relative", 0.07)),
    ),
    "call_17_112": ChannelProfile(
        weight=22, rhythm="emergency", unknown=0.45, immediate=0.11, complaint=0.25,
        roles=(("victim", 0.55), ("neighbour", 0.18), ("relative", 0.15), ("witness", 0.12)),
        emergency=True,
    ),
    "social_services": ChannelProfile(
        weight=10, rhythm="office", unknown=0.30, immediate=0.01, complaint=0.20,
        roles=(("social_worker", 1.0),),
    ),
    "hotline_3919": ChannelProfile(
        weight=8, rhythm="emergency", unknown=0.30, immediate=0.02, complaint=0.05,
        roles=(("victim", 0.85), ("relative", 0.15)),
    ),
    "online_platform": ChannelProfile(
        weight=8, rhythm="emergency", unknown=0.40, immediate=0.02, complaint=0.20,
        roles=(("victim", 0.75), ("relative", 0.12), ("anonymous", 0.13)),
    ),
    "hospital": ChannelProfile(
        weight=8, rhythm="emergency", unknown=0.40, immediate=0.03, complaint=0.25,
        roles=(("health_professional", 1.0),),
    ),
    "other": ChannelProfile(
        weight=7, rhythm="office", unknown=0.50, immediate=0.02, complaint=0.15,
        roles=(("relative", 0.35), ("witness", 0.25), ("police", 0.25), ("anonymous", 0.15)),
    ),
    "school": ChannelProfile(
        weight=4, rhythm="school", unknown=0.55, immediate=0.01, complaint=0.05,
        roles=(("school_staff", 1.0),),
    ),
    "sms_114": ChannelProfile(
        weight=3, rhythm="emergency", unknown=0.55, immediate=0.15, complaint=0.05,
        roles=(("victim", 1.0),), emergency=True,
    ),
}

# The three stand-alone red flags. A report carries k of them (k drawn by
# severity, weighted choice without replacement), so that a medium case usually
# shows one red flag and a high one two or three. Marginal "yes" rates come out
# at about 11 % strangulation, 17 % threat to kill, 8 % weapon.
_RED_FLAGS: tuple[tuple[str, float], ...] = (
    ("strangulation", 12.0), ("threat_to_kill", 21.0), ("weapon", 8.5),
)
_RED_FLAG_COUNTS: dict[Severity, tuple[float, float, float, float]] = {  # k = 0, 1, 2, 3
    "minimal": (0.970, 0.030, 0.000, 0.000),
    "low":     (0.790, 0.200, 0.010, 0.000),
    "medium":  (0.310, 0.660, 0.028, 0.002),
    "high":    (0.120, 0.500, 0.300, 0.080),
}
# "Yes" rate of every other indicator in a first report, by severity (minimal,
# low, medium, high); e.g. separation about 33 %, children present 45 %.
_RATES: dict[str, tuple[float, float, float, float]] = {
    "separation":         (0.150, 0.420, 0.38, 0.45),
    "pregnancy":          (0.040, 0.050, 0.05, 0.06),
    "escalation":         (0.005, 0.040, 0.06, 0.18),
    "stalking":           (0.010, 0.090, 0.12, 0.25),
    "coercive_control":   (0.080, 0.330, 0.32, 0.42),
    "sexual_violence":    (0.005, 0.040, 0.05, 0.15),
    "children_present":   (0.450, 0.450, 0.45, 0.45),
    "order_breach":       (0.000, 0.008, 0.03, 0.08),
    "substance_abuse":    (0.150, 0.300, 0.28, 0.38),
    "suicidal_threats":   (0.005, 0.040, 0.05, 0.12),
    "fears_being_killed": (0.005, 0.040, 0.07, 0.25),
    "prior_violence":     (0.080, 0.320, 0.28, 0.38),
}
# A repeat report is the same story getting worse: these are asked again and
# answered yes far more often, and the others grow by _REPEAT_LIFT per earlier report.
_REPEAT_RATES: dict[str, tuple[float, float, float, float]] = {
    "escalation":     (0.10, 0.20, 0.35, 0.50),
    "prior_violence": (0.40, 0.50, 0.65, 0.80),
    "order_breach":   (0.01, 0.02, 0.06, 0.15),
}
_INJURIES: dict[Severity, tuple[float, float, float, float]] = {  # none, minor, serious, unknown
    "minimal": (0.65, 0.12, 0.00, 0.23),
    "low":     (0.50, 0.26, 0.02, 0.22),
    "medium":  (0.36, 0.36, 0.06, 0.22),
    "high":    (0.22, 0.40, 0.18, 0.20),
}
# fmt: on
_REPEAT_LIFT = 0.10
"""Relative growth per earlier report of the other rates; chance of one more red flag."""
_RED_FLAG_NAMES = frozenset(name for name, _ in _RED_FLAGS)
_IMMEDIATE_LIFT = {"minimal": 0.1, "low": 0.4, "medium": 1.0, "high": 2.5}
"""Immediate danger, relative to the channel's rate, by severity."""
_INJURY_NAMES: tuple[Injuries, ...] = ("none", "minor", "serious", "unknown")
# Chance of one more report, by severity, and the mean gap to it (days).
_REPEAT_FIRST = {"minimal": 0.03, "low": 0.06, "medium": 0.09, "high": 0.16}
_REPEAT_MORE = 0.30
_GAP_DAYS = {"minimal": 60.0, "low": 55.0, "medium": 40.0, "high": 25.0}
CONTACT_SHARE = 0.85
SUSPECT_KNOWN = 0.9


@dataclass(slots=True)
class Victim:
    """A synthetic victim: fixed profile, plus what the simulation tracks about her."""

    ref: str
    person: int
    severity: Severity
    commune: str
    suspect: str | None
    epoch: int = 0
    """Bumped by every new or override queue record; older closures lapse."""
    measures: set[str] = field(default_factory=set)
    """Protection measures granted so far."""


@dataclass(frozen=True, slots=True)
class ReportDraft:
    """A report's content; the simulation adds id, source and time when it is sent."""

    victim: Victim
    channel: Channel
    reporter_role: ReporterRole
    indicators: Indicators
    injuries: Injuries
    complaint_filed: bool
    contact: ContactBlock | None


class Population:
    """Draws victims and their reports from one random stream."""

    def __init__(self, rng: Random, timeline: Timeline, communes: CommuneSampler) -> None:
        self._rng = rng
        self._timeline = timeline
        self._communes = communes
        self._mint = RefMint(rng)

    def victims_and_reports(self, count: int) -> tuple[list[Victim], list[tuple[int, ReportDraft]]]:
        """``count`` victims and every report they make inside the period, with its time."""
        rng = self._rng
        victims: list[Victim] = []
        reports: list[tuple[int, ReportDraft]] = []
        for person in range(count):
            severity = rng.choices(_SEVERITIES, _SEVERITY_SHARE)[0]
            suspect = self._mint.suspect() if rng.random() < SUSPECT_KNOWN else None
            victim = Victim(
                self._mint.victim(), person, severity, self._communes.draw(rng), suspect
            )
            victims.append(victim)
            channel = self._channel(severity)
            when = self._timeline.first_time(rng, CHANNELS[channel].rhythm)
            nth = 0
            while when < self._timeline.end_ms:
                reports.append((when, self._draft(victim, channel, nth)))
                nth += 1
                if rng.random() >= (_REPEAT_FIRST[severity] if nth == 1 else _REPEAT_MORE):
                    break
                channel = self._channel(severity)
                gap = max(1, round(rng.expovariate(1.0 / _GAP_DAYS[severity])))
                when = self._timeline.later_time(rng, when, gap, CHANNELS[channel].rhythm)
        return victims, reports

    def _channel(self, severity: Severity) -> Channel:
        names = tuple(CHANNELS)
        weights = [
            p.weight * (_EMERGENCY_LIFT[severity] if p.emergency else 1.0)
            for p in CHANNELS.values()
        ]
        return self._rng.choices(names, weights)[0]

    def _draft(self, victim: Victim, channel: Channel, nth: int) -> ReportDraft:
        rng = self._rng
        profile = CHANNELS[channel]
        grade = _CLASS[victim.severity]
        flags = self._red_flags(victim.severity, nth)
        answers: dict[str, Answer] = {}
        for name in INDICATOR_NAMES:
            if name in _RED_FLAG_NAMES:
                rate = 1.0 if name in flags else 0.0
            elif name == "immediate_danger":
                rate = profile.immediate * _IMMEDIATE_LIFT[victim.severity]
            elif nth and name in _REPEAT_RATES:
                rate = _REPEAT_RATES[name][grade]
            else:
                rate = min(_RATES[name][grade] * (1 + _REPEAT_LIFT * nth), 0.95)
            answers[name] = _answer(rng, rate, profile.unknown)
        roles, role_weights = zip(*profile.roles, strict=True)
        return ReportDraft(
            victim=victim,
            channel=channel,
            reporter_role=rng.choices(roles, role_weights)[0],
            indicators=Indicators(**answers),
            injuries=rng.choices(_INJURY_NAMES, _INJURIES[victim.severity])[0],
            complaint_filed=rng.random() < profile.complaint,
            contact=contact_block(rng, victim.person) if rng.random() < CONTACT_SHARE else None,
        )

    def _red_flags(self, severity: Severity, nth: int) -> set[str]:
        rng = self._rng
        count = rng.choices(range(4), _RED_FLAG_COUNTS[severity])[0]
        if rng.random() < _REPEAT_LIFT * nth:
            count += 1
        pool = list(_RED_FLAGS)
        chosen: set[str] = set()
        while pool and len(chosen) < count:
            name, _ = pick = rng.choices(pool, [w for _, w in pool])[0]
            chosen.add(name)
            pool.remove(pick)
        return chosen


def _answer(rng: Random, yes_rate: float, unknown_share: float) -> Answer:
    draw = rng.random()
    if draw < yes_rate:
        return "yes"
    return "unknown" if rng.random() < unknown_share else "no"
