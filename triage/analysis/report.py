"""The yearly review: the figures a prefecture asks for, from one event log.

Figures come from three places, each used only for what it alone knows:

- the *input* records: reports by channel and month, device alarms;
- the *output* records (decisions, queue records, escalations, rejected
  overrides, dead letters): levels, queues, units, repeat victims, overrides,
  missed deadlines;
- the engine's *observations*: time to acknowledge and to act, and deadlines
  met (outputs say when a deadline was missed, not when it was met).

Deadlines are measured against the on-time target of their level, from the rule
set (``on_time_target``). Work per month by kind, dormancy and reactivation are
kept by :class:`~triage.analysis.caseload.Caseload`.

From an input log everything is available (it is replayed offline first). From
an outputs file (``triage replay --offline -o`` or ``triage record`` of the
output topics) the input and observation figures are missing, and the page
says so. :func:`triage.analysis.report_page.render_report` draws the page.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import orjson

from triage.analysis.capture import capture, parse_output
from triage.analysis.caseload import Caseload, month_of
from triage.errors import EventLogError
from triage.events.base import Level
from triage.events.outputs import (
    CaseDormant,
    DeadLetter,
    Decision,
    Escalation,
    OutputEvent,
    OverrideRejected,
    QueueRecord,
)
from triage.pipeline.engine import Engine
from triage.pipeline.observations import Acked, Actioned, Closed, Fold, Observation, fold
from triage.pipeline.processor import Batch
from triage.replay.records import LogRecord, read_log
from triage.replay.summary import percentile
from triage.scoring.rules import RuleSet
from triage.topics import Topics

LEVELS = tuple(lv.value for lv in Level)
REPORTS_TOPIC = Topics().reports
Source = Literal["log", "outputs"]
Stage = Literal["ack", "action"]
STAGES = ("ack", "action", "review")
"""Escalation stages of deadlines: ``review`` is a missed deadline of a scheduled
re-assessment (either of its two), a supervisor notice rather than danger now."""
ESCALATION_KINDS = ("ack", "action", "review", "conflict")
"""Every stage of an :class:`~triage.events.outputs.Escalation`: the deadline stages,
and ``conflict`` (a resend with other content than the event processed under its id)."""


def targets_of(rules: RuleSet) -> dict[str, float | None]:
    """The on-time target of each level in ``rules`` (``None`` where none is set)."""
    return {lv.value: rules.sla[lv].on_time_target for lv in Level}


class YearReview(Fold):
    """Accumulates the review's figures; feed it inputs, observations and outputs.

    ``targets`` are the on-time targets per level (see :func:`targets_of`), from the
    rule set ``targets_version``; without them the shares are shown against none.
    """

    def __init__(
        self,
        source: Source,
        targets: Mapping[str, float | None] | None = None,
        targets_version: str | None = None,
    ) -> None:
        self.source: Source = source
        self.targets = {lv: (targets or {}).get(lv) for lv in LEVELS}
        self.targets_version = targets_version
        self.caseload = Caseload(closures_known=source == "log")
        self.rules_versions: Counter[str] = Counter()
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.input_records = 0
        self.reports_by_channel: Counter[str] = Counter()
        self.reports_by_month: Counter[str] = Counter()
        self.alarms: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()
        self.decisions_by_month: Counter[tuple[str, str]] = Counter()
        self.decisions_by_kind: Counter[str] = Counter()
        self.unknown_communes = 0
        self.queue_records: Counter[tuple[str, str]] = Counter()
        """Cases routed (new and override records) per queue and level."""
        self.reassessments: Counter[str] = Counter()
        self.queue_kinds: Counter[str] = Counter()
        self.escalations: Counter[tuple[str, str]] = Counter()
        self.escalations_by_queue: Counter[tuple[str, str]] = Counter()
        self.escalations_by_unit: Counter[tuple[str, str]] = Counter()
        self.escalations_by_month: Counter[str] = Counter()
        self.escalations_by_month_stage: Counter[tuple[str, str]] = Counter()
        self.overrides: Counter[tuple[str, str]] = Counter()
        self.rejected: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.dead_letters_by_topic: Counter[str] = Counter()
        self.history: dict[str, list[tuple[datetime, str, bool]]] = defaultdict(list)
        self.observed = False
        self.times: dict[tuple[Stage, str], list[float]] = defaultdict(list)
        self.times_by_month: dict[tuple[Stage, str, str], list[float]] = defaultdict(list)
        self.met_by_queue: Counter[tuple[str, str]] = Counter()
        self.met_by_unit: Counter[tuple[str, str]] = Counter()
        self.met_by_level: Counter[tuple[str, str]] = Counter()
        self._month = ""
        """The month of the record whose observations are being folded."""

    # -- feeding -------------------------------------------------------------

    def add_input(self, record: LogRecord, accepted: bool) -> None:
        """An input record; ``accepted`` when the engine decided on it (a report or an
        alarm that was valid and not a redelivery): only those count as received."""
        self.input_records += 1
        self._extend(record.timestamp)
        if not accepted:
            return
        body = orjson.loads(record.value)
        if body["type"] == "report.received":
            self.reports_by_channel[str(body["channel"])] += 1
        elif body["type"] == "device.alarm":
            self.alarms[str(body["alarm"])] += 1

    def add_observations(self, when: datetime, observations: Iterable[Observation]) -> None:
        """What the engine observed while processing a record stamped ``when``."""
        self.observed = True
        self._month = month_of(when)
        fold(observations, self)

    def on_acked(self, o: Acked) -> None:
        self._answer(o, "ack")

    def on_actioned(self, o: Actioned) -> None:
        self._answer(o, "action")

    def _answer(self, obs: Acked | Actioned, stage: Stage) -> None:
        if obs.review:
            # A review is timed against its own deadlines: kept out of the response
            # times of the level, counted in the review column of compliance.
            self._met(obs, "review")
            return
        seconds = obs.seconds or 0.0
        self.times[(stage, obs.level)].append(seconds)
        self.times_by_month[(stage, obs.level, self._month)].append(seconds)
        self._met(obs, stage)

    def _met(self, obs: Acked | Actioned, stage: str) -> None:
        if not obs.late:
            self.met_by_queue[(obs.queue, stage)] += 1
            self.met_by_unit[(obs.unit, stage)] += 1
            self.met_by_level[(obs.level, stage)] += 1

    def add_closure(self, victim_ref: str, when: datetime) -> None:
        """A responder closed a case (seen in the input log only)."""
        self.caseload.closure(victim_ref, when)

    def add_output(self, output: OutputEvent) -> None:
        """An output record of the engine."""
        if isinstance(output, Decision):
            self._decision(output)
        elif isinstance(output, QueueRecord):
            self.queue_kinds[output.kind] += 1
            if output.kind == "reassessment":
                self.reassessments[output.queue] += 1
                self.caseload.review(output.time, output.level.value)
            else:
                self.queue_records[(output.queue, output.level.value)] += 1
        elif isinstance(output, Escalation):
            level, stage = output.level.value, output.stage
            self.escalations[(level, stage)] += 1
            self.escalations_by_queue[(output.queue, stage)] += 1
            self.escalations_by_unit[(output.unit, stage)] += 1
            self.escalations_by_month[month_of(output.time)] += 1
            self.escalations_by_month_stage[(month_of(output.time), stage)] += 1
        elif isinstance(output, OverrideRejected):
            self.rejected[output.reason_code] += 1
        elif isinstance(output, DeadLetter):
            self.dead_letters[output.reason] += 1
            self.dead_letters_by_topic[output.source_topic] += 1
        elif isinstance(output, CaseDormant):
            self.caseload.went_dormant(output)
        if self.source == "outputs":
            self._extend(output.time)

    def _decision(self, decision: Decision) -> None:
        self.rules_versions[decision.rules_version] += 1
        self.caseload.decision(decision)
        if decision.override is not None:
            self.overrides[(decision.override.direction, decision.override.reason)] += 1
            return
        if decision.merged_into is not None:
            return  # a repeated press of one alarm episode: not a new assessment
        level = decision.level.value
        self.decisions[level] += 1
        self.decisions_by_kind[decision.kind] += 1
        self.decisions_by_month[(month_of(decision.time), level)] += 1
        if decision.kind == "assessment":
            self.reports_by_month[month_of(decision.time)] += 1
        self.unknown_communes += decision.unit_flagged
        repeat = any(f.rule.startswith("repeat_") for f in decision.floors)
        self.history[decision.victim_ref].append((decision.time, level, repeat))

    def _extend(self, when: datetime) -> None:
        if self.first is None or when < self.first:
            self.first = when
        if self.last is None or when > self.last:
            self.last = when

    # -- figures -------------------------------------------------------------

    @property
    def months(self) -> list[str]:
        """Every month of the period, in order."""
        seen = set(self.reports_by_month) | {m for m, _ in self.decisions_by_month}
        seen |= {m for m, _ in self.escalations_by_month_stage} | self.caseload.months
        return sorted(seen)

    @property
    def tail_months(self) -> list[str]:
        """Months after the last month with a report or an alarm: they only hold what fell
        due later (reviews, missed deadlines), e.g. the first hour of January in Paris
        time after a log that ends on 31 December UTC."""
        decided = {m for m, _ in self.decisions_by_month}
        return [m for m in self.months if decided and m > max(decided)]

    def response_times(self, stage: Stage) -> dict[str, dict[str, float | int | None]]:
        """Per level: count and nearest-rank p50, p90, p95 (seconds)."""
        out: dict[str, dict[str, float | int | None]] = {}
        for lv in LEVELS:
            values = self.times.get((stage, lv), [])
            out[lv] = {
                "n": len(values),
                "p50_s": percentile(values, 50),
                "p90_s": percentile(values, 90),
                "p95_s": percentile(values, 95),
            }
        return out

    def monthly(self, stage: Stage, q: float) -> dict[str, list[float | None]]:
        """Per level, the ``q``-th percentile of each month (None for an empty month)."""
        return {
            lv: [percentile(self.times_by_month.get((stage, lv, m), []), q) for m in self.months]
            for lv in LEVELS
        }

    def compliance(self, by: Literal["queue", "unit"]) -> dict[str, dict[str, Any]]:
        """Deadlines met and missed per queue (or unit) and stage; share met."""
        met = self.met_by_queue if by == "queue" else self.met_by_unit
        missed = self.escalations_by_queue if by == "queue" else self.escalations_by_unit
        names = sorted({name for name, _ in met} | {name for name, _ in missed})
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            row: dict[str, Any] = {}
            for stage in STAGES:
                ok, late = met.get((name, stage), 0), missed.get((name, stage), 0)
                share = ok / (ok + late) if self.observed and ok + late else None
                row[stage] = {"met": ok if self.observed else None, "missed": late, "share": share}
            out[name] = row
        return out

    def sla_by_level(self) -> dict[str, dict[str, Any]]:
        """Per level: its on-time target, and per deadline stage the deadlines met and
        missed, the share met and whether it reaches the target."""
        out: dict[str, dict[str, Any]] = {}
        for lv in LEVELS:
            target = self.targets[lv]
            row: dict[str, Any] = {"target": target}
            for stage in STAGES:
                ok, late = self.met_by_level.get((lv, stage), 0), self.escalations[(lv, stage)]
                share = ok / (ok + late) if self.observed and ok + late else None
                row[stage] = {
                    "met": ok if self.observed else None,
                    "missed": late,
                    "share": share,
                    "on_target": None if share is None or target is None else share >= target,
                }
            out[lv] = row
        return out

    def repeat_victims(self) -> dict[str, Any]:
        """Victims by number of incidents; re-reports that raised, kept or lowered a level."""
        sizes: Counter[str] = Counter()
        moves: Counter[str] = Counter()
        escalated: set[str] = set()
        repeat_floor = 0
        for victim, decisions in self.history.items():
            n = len(decisions)
            sizes["4+" if n >= 4 else str(n)] += 1
            ordered = sorted(decisions)
            repeat_floor += sum(1 for _, _, repeat in ordered if repeat)
            for (_, before, _), (_, after, _) in pairwise(ordered):
                rank_b, rank_a = Level(before).rank, Level(after).rank
                move = "raised" if rank_a > rank_b else "lowered" if rank_a < rank_b else "kept"
                moves[move] += 1
                if move == "raised":
                    escalated.add(victim)
        return {
            "victims": len(self.history),
            "by_incidents": {k: sizes.get(k, 0) for k in ("1", "2", "3", "4+")},
            "repeat_victims": sum(v for k, v in sizes.items() if k != "1"),
            "re_reports": {k: moves.get(k, 0) for k in ("raised", "kept", "lowered")},
            "victims_escalated": len(escalated),
            "repeat_floor_decisions": repeat_floor,
        }

    def to_dict(self) -> dict[str, Any]:
        """Every figure of the page, plain values, stable order."""
        observed = self.observed
        return {
            "source": self.source,
            "rules_versions": sorted(self.rules_versions),
            "period": [
                self.first.isoformat() if self.first else None,
                self.last.isoformat() if self.last else None,
            ],
            "input_records": self.input_records if self.source == "log" else None,
            "reports_by_channel": dict(self.reports_by_channel.most_common()),
            "tail_months": self.tail_months,
            "reports_by_month": {m: self.reports_by_month.get(m, 0) for m in self.months},
            "alarms": dict(sorted(self.alarms.items())),
            "decisions_by_level": {lv: self.decisions.get(lv, 0) for lv in LEVELS},
            "decisions_by_kind": dict(sorted(self.decisions_by_kind.items())),
            "decisions_by_month": {
                m: {lv: self.decisions_by_month.get((m, lv), 0) for lv in LEVELS}
                for m in self.months
            },
            "unknown_communes": self.unknown_communes,
            "queue_records": _nested(self.queue_records, LEVELS),
            "queue_records_by_kind": dict(sorted(self.queue_kinds.items())),
            "reassessments_by_queue": dict(sorted(self.reassessments.items())),
            "time_to_ack": self.response_times("ack") if observed else None,
            "time_to_action": self.response_times("action") if observed else None,
            "sla_breaches": {
                lv: {st: self.escalations.get((lv, st), 0) for st in STAGES} for lv in LEVELS
            },
            "escalations_by_month": {m: self.escalations_by_month.get(m, 0) for m in self.months},
            "escalations_by_month_and_stage": {
                m: {st: self.escalations_by_month_stage.get((m, st), 0) for st in ESCALATION_KINDS}
                for m in self.months
            },
            "escalations_by_stage": {
                st: sum(n for (_, s), n in self.escalations.items() if s == st)
                for st in ESCALATION_KINDS
            },
            "sla_targets_rules": self.targets_version,
            "sla_by_level": self.sla_by_level(),
            "compliance_by_queue": self.compliance("queue"),
            "compliance_by_unit": self.compliance("unit"),
            "repeat_victims": self.repeat_victims(),
            "overrides": {
                d: sum(n for (dd, _), n in self.overrides.items() if dd == d)
                for d in ("down", "up")
                if any(dd == d for dd, _ in self.overrides)
            },
            "overrides_by_reason": {f"{d}:{r}": n for (d, r), n in sorted(self.overrides.items())},
            "overrides_rejected": dict(sorted(self.rejected.items())),
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "dead_letters_by_topic": dict(sorted(self.dead_letters_by_topic.items())),
            **self.caseload.to_dict(self.months),
        }


def _nested(counts: Counter[tuple[str, str]], columns: Sequence[str]) -> dict[str, dict[str, int]]:
    rows = sorted({r for r, _ in counts})
    return {r: {c: counts.get((r, c), 0) for c in columns} for r in rows}


def review_log(records: Iterable[LogRecord], engine: Engine) -> YearReview:
    """Replay an input log offline and review everything it produced."""
    review = YearReview("log", targets_of(engine.rules), engine.rules.version)

    def listen(record: LogRecord, batch: Batch) -> None:
        decided = (
            any(
                isinstance(o, Decision) and o.kind != "override" and o.merged_into is None
                for o in batch.outputs
            )
            and record.topic == REPORTS_TOPIC
        )
        review.add_input(record, decided)
        review.add_observations(record.timestamp, batch.observations)
        if any(isinstance(obs, Closed) for obs in batch.observations):
            # Only the victim's own closure (or one held until her report) closes here.
            victim = orjson.loads(record.value).get("victim_ref", record.key)
            review.add_closure(str(victim), record.timestamp)
        for output in batch.outputs:
            review.add_output(output)

    capture(records, engine, listen)
    return review


def review_outputs(records: Iterable[LogRecord], rules: RuleSet | None = None) -> YearReview:
    """Review an outputs file (no replay: response times, inputs and closures are
    unavailable); ``rules`` gives the on-time targets."""
    targets = targets_of(rules) if rules is not None else None
    review = YearReview("outputs", targets, rules.version if rules is not None else None)
    for record in records:
        review.add_output(parse_output(record))
    return review


def review_file(path: str | Path, engine: Engine) -> YearReview:
    """Review ``path``: an input event log, or the output records of a run."""
    topics = Topics()
    first = next(iter(read_log(path)), None)
    if first is None:
        raise EventLogError(f"{path}: the file holds no records")
    if first.topic in topics.inputs:
        return review_log(read_log(path), engine)
    if first.topic in topics.outputs:
        return review_outputs(_only_outputs(read_log(path), topics, path), engine.rules)
    raise EventLogError(f"{path}: topic {first.topic!r} is neither an input nor an output topic")


def _only_outputs(
    records: Iterable[LogRecord], topics: Topics, path: str | Path
) -> Iterable[LogRecord]:
    for number, record in enumerate(records, start=1):
        if record.topic not in topics.outputs:
            raise EventLogError(f"{path}: record {number} is on {record.topic}, not an output")
        yield record
