"""Prometheus metrics, all derived from the engine's observations.

Conventions: ``triage_`` prefix, seconds, ``_total`` counters, histogram
buckets on the SLA table's deadlines, and labels from small closed sets
(level, queue, unit, stage, reason codes): never a case or victim id.

Because every counter and histogram is fed by observations, and observations
are a function of the event log, an offline replay computes the same values
as the worker does through Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from triage.events.registry import INPUT_TYPES
from triage.pipeline.observations import (
    Acked,
    Actioned,
    Breached,
    ClockClamped,
    Conflict,
    Decided,
    Dormant,
    Duplicate,
    EventHandled,
    Fold,
    Ignored,
    IgnoredReason,
    Merged,
    Observation,
    Overridden,
    OverrideRejection,
    ProcessingError,
    ProcessingStage,
    Reactivated,
    ReassessmentDue,
    Refused,
    Routed,
    SlaStage,
    UpdateWaiting,
    fold,
)
from triage.pipeline.state import VictimState
from triage.routing.units import UnitDirectory
from triage.scoring.rules import RuleSet

RESPONSE_BUCKETS = (
    60.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0, 2 * 3600.0, 6 * 3600.0, 12 * 3600.0,
    86400.0, 2 * 86400.0, 3 * 86400.0, 4 * 86400.0, 7 * 86400.0, 14 * 86400.0, 30 * 86400.0,
)  # fmt: skip
"""Seconds: 1 min, the P1 deadlines (5, 15, 20 min), P2 ack (1 h), P3 ack (24 h),
2 working days (≤ 6 d with public holidays), P4 ack (72 h) and action (7 d), and beyond."""

PROCESSING_STAGES = tuple(s.value for s in ProcessingStage)
"""Where a processing error can happen: the ``stage`` label of ``triage_processing_errors``."""

BROKER_CHECKS = ("topic_missing", "partition_count", "log_shrank")
"""The ``check`` label of ``triage_broker_inconsistent`` (see triage.streaming.consistency)."""

SLA_STAGES = tuple(s.value for s in SlaStage)
"""The ``stage`` label of the deadline metrics: acknowledgement and action deadlines, and
those of a scheduled re-assessment (``review``: a supervisor notice, never the P1 page)."""

OVERRIDE_DIRECTIONS = ("up", "down")
"""The ``direction`` label of ``triage_overrides``."""

IGNORED_REASONS = tuple(r.value for r in IgnoredReason)
"""The ``reason`` label of ``triage_updates_ignored`` (see triage.pipeline.lifecycle)."""

ALARM_KINDS: tuple[Literal["tgd_pressed", "bar_zone_breach"], ...] = (
    "tgd_pressed",
    "bar_zone_breach",
)
"""The ``alarm`` label of ``triage_alarms_merged`` (the device alarms of the event schema)."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds of wall-clock processing: a worker should stay well under 100 ms."""


@dataclass(frozen=True)
class KnownLabels:
    """The label combinations a rule set and a unit directory can produce.

    A labelled series exists only once its labels are used; ``increase`` and ``rate``
    cannot see a series' first sample, so the first breach of a fresh series would
    be invisible to an alert. :class:`TriageMetrics` creates these at zero instead.
    Only combinations the engine can produce: a primary queue (the SLA table's) holds
    its own level(s) only, a fan-out queue any level; re-assessments and overrides go
    to primary queues only (a level's review may go to another level's queue: the
    rule set's ``review_queue``); an alarm decision is at least the lowest alarm floor.
    """

    levels: tuple[str, ...]
    level_queues: tuple[tuple[str, str], ...]
    """(level, queue) pairs that assignments (breaches, acks, actions) can have."""
    queue_kinds: tuple[tuple[str, str, str], ...]
    """(queue, level, kind) triples of ``triage_queue_records``."""
    decision_kinds: tuple[tuple[str, str], ...]
    """(level, kind) pairs of ``triage_decisions``."""
    units: tuple[str, ...]

    @classmethod
    def of(cls, rules: RuleSet, units: UnitDirectory) -> KnownLabels:
        """What ``rules`` and ``units`` define."""
        levels = sorted(rules.sla, key=lambda level: -level.rank)
        primary = [(level.value, rules.sla[level].queue) for level in levels]
        fanout = [(lv.value, fan.queue) for fan in rules.fanout for lv in levels]
        # A scheduled review may go to another queue than its level's (P1: high-risk).
        review = [(lv.value, rules.sla[lv].review_target) for lv in levels]
        routed = tuple(dict.fromkeys((*primary, *fanout)))
        level_queues = tuple(dict.fromkeys((*routed, *review)))
        queue_kinds = tuple(
            dict.fromkeys(
                (
                    *((q, lv, kind) for lv, q in routed for kind in ("new", "update")),
                    *((q, lv, kind) for lv, q in primary for kind in ("override", "reassessment")),
                    *((q, lv, "reassessment") for lv, q in review),
                )
            )
        )
        floors = [rules.alarms.get(alarm) for alarm in ALARM_KINDS]
        lowest = min((f.rank for f in floors if f is not None), default=0)
        alarm_floor = lowest if None not in floors else 0
        decision_kinds = (
            *((lv.value, "assessment") for lv in levels),
            *((lv.value, "alarm") for lv in levels if lv.rank >= alarm_floor),
        )
        return cls(
            levels=tuple(level.value for level in levels),
            level_queues=level_queues,
            queue_kinds=queue_kinds,
            decision_kinds=decision_kinds,
            units=tuple(unit.id for unit in units.units),
        )


class TriageMetrics(Fold):
    """Every triage metric, registered on one (injectable) registry.

    Given the worker's ``rules`` and ``units``, every series those can produce exists
    from the start at zero (see :class:`KnownLabels`), so that an alert's ``increase``
    sees the first breach; without them (tests), series appear when first used.

    It is a :class:`~triage.pipeline.observations.Fold`: :meth:`observe` hands each
    observation to the ``on_`` method of its kind.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        rules: RuleSet | None = None,
        units: UnitDirectory | None = None,
    ) -> None:
        if (rules is None) != (units is None):
            raise ValueError("give both rules and units, or neither")
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.events = Counter(
            "triage_events", "Input records by event type, channel and outcome.",
            ["type", "channel", "outcome"], registry=reg,
        )  # fmt: skip
        self.dead_letters = Counter(
            "triage_dead_letters", "Records sent to the dead-letter topic, by reason code.",
            ["reason"], registry=reg,
        )  # fmt: skip
        self.decisions = Counter(
            "triage_decisions", "Decisions by level, kind (assessment, alarm, override) and unit.",
            ["level", "kind", "unit"], registry=reg,
        )  # fmt: skip
        self.queue_records = Counter(
            "triage_queue_records", "Queue records by queue, level, unit and kind.",
            ["queue", "level", "unit", "kind"], registry=reg,
        )  # fmt: skip
        self.time_to_ack = Histogram(
            "triage_time_to_ack_seconds",
            "Event time from routing to acknowledgement, by level and queue.",
            ["level", "queue"], buckets=RESPONSE_BUCKETS, registry=reg,
        )  # fmt: skip
        self.time_to_action = Histogram(
            "triage_time_to_action_seconds",
            "Event time from routing to action (on scene, victim contacted…), by level and queue.",
            ["level", "queue"], buckets=RESPONSE_BUCKETS, registry=reg,
        )  # fmt: skip
        self.breaches = Counter(
            "triage_sla_breaches", "Deadlines missed (escalated), by level, queue, stage and unit.",
            ["level", "queue", "stage", "unit"], registry=reg,
        )  # fmt: skip
        self.deadlines_met = Counter(
            "triage_sla_deadlines_met",
            "Deadlines met (acknowledged or actioned in time), by level, queue, stage and"
            " unit: with triage_sla_breaches, every deadline that fell due, once.",
            ["level", "queue", "stage", "unit"], registry=reg,
        )  # fmt: skip
        self.reassessments = Counter(
            "triage_reassessments_due", "Scheduled re-assessments that fell due, by level.",
            ["level"], registry=reg,
        )  # fmt: skip
        self.cases_dormant = Counter(
            "triage_cases_dormant",
            "Open cases made dormant (the rule set's dormant_after_reviews reviews passed"
            " without a new report or alarm), by level: no more reviews, work withdrawn.",
            ["level"], registry=reg,
        )  # fmt: skip
        self.cases_reactivated = Counter(
            "triage_cases_reactivated",
            "Dormant cases reactivated by a new report, alarm or override, by the level"
            " decided.",
            ["level"], registry=reg,
        )  # fmt: skip
        self.overrides = Counter(
            "triage_overrides", "Accepted overrides by direction (up, down).",
            ["direction"], registry=reg,
        )  # fmt: skip
        self.overrides_rejected = Counter(
            "triage_overrides_rejected", "Rejected overrides by direction and reason code.",
            ["direction", "reason"], registry=reg,
        )  # fmt: skip
        self.updates_ignored = Counter(
            "triage_updates_ignored", "Lifecycle events that changed nothing, by reason.",
            ["reason"], registry=reg,
        )  # fmt: skip
        self.duplicates = Counter(
            "triage_duplicates",
            "Events seen before with the same content (redelivery or exact repeat), ignored.",
            registry=reg,
        )  # fmt: skip
        self.conflicting_resends = Counter(
            "triage_conflicting_resends",
            "Events resent under the source and id of one already processed but with other"
            " content, by event type: not decided, escalated to the supervisor.",
            ["type"], registry=reg,
        )  # fmt: skip
        for event_type in sorted(INPUT_TYPES - {"clock.watermark"}):  # an alert sees the first
            self.conflicting_resends.labels(event_type)
        self.alarms_merged = Counter(
            "triage_alarms_merged",
            "Repeated device alarms merged into the victim's open work (within the rule"
            " set's alarm_merge_window): no new queue record, by alarm kind.",
            ["alarm"], registry=reg,
        )  # fmt: skip
        self.updates_waiting = Counter(
            "triage_updates_waiting",
            "Case updates that named a case or decision their victim did not have yet, by"
            " outcome: waiting (held for the rule set's update_grace), applied (their case"
            " came), expired (dead-lettered after the grace period).",
            ["outcome"], registry=reg,
        )  # fmt: skip
        for outcome in ("waiting", "applied", "expired"):
            self.updates_waiting.labels(outcome)
        self.report_to_decision = Histogram(
            "triage_report_to_decision_seconds",
            "Wall time from a record's Kafka timestamp to its decision (live mode only).",
            buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.processing = Histogram(
            "triage_processing_seconds", "Wall time to process one input record.",
            buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.consumer_lag = Gauge(
            "triage_consumer_lag", "Records not yet processed, by input topic.",
            ["topic"], registry=reg,
        )  # fmt: skip
        self.broker_inconsistent = Gauge(
            "triage_broker_inconsistent",
            "1 when the broker contradicts what this worker must find (a topic missing, a"
            " partition count, a log shorter than what was read): the worker then exits.",
            ["check"], registry=reg,
        )  # fmt: skip
        for check in BROKER_CHECKS:  # at 0 from the start: every check has a series
            self.broker_inconsistent.labels(check).set(0)
        self.processing_errors = Counter(
            "triage_processing_errors",
            "Records (stage ingest or engine, then dead-lettered as processing_error) and"
            " timers (stage timer) whose processing raised: a bug, counted, not a crash.",
            ["stage"], registry=reg,
        )  # fmt: skip
        for stage in PROCESSING_STAGES:  # at 0 from the start: an alert sees the first one
            self.processing_errors.labels(stage)
        self.dead_letters_reduced = Counter(
            "triage_dead_letters_reduced",
            "Dead letters the broker refused, sent again as a minimal dead letter (no payload).",
            registry=reg,
        )  # fmt: skip
        self.agent_crashes = Counter(
            "triage_agent_crashes",
            "Times the worker's processing loop (a Faust agent, or the timer that flushes"
            " outputs, states and acknowledgements) died on an exception.",
            registry=reg,
        )  # fmt: skip
        self.fenced = Counter(
            "triage_fenced_drops",
            "Times this worker dropped processed work it no longer owned (why: fenced = "
            "not a group member or lease lapsed at a rebalance; generation = made under "
            "an older group generation).",
            ["why"], registry=reg,
        )  # fmt: skip
        for why in ("fenced", "generation"):
            self.fenced.labels(why)
        self.clock_clamped = Counter(
            "triage_clock_clamped",
            "Live mode: events stamped further ahead of the wall clock than the allowed skew,"
            " taken at wall clock + skew (an upstream clock running ahead), by event type and"
            " channel.",
            ["type", "channel"], registry=reg,
        )  # fmt: skip
        self.frozen_partitions = Gauge(
            "triage_frozen_partitions",
            "Assigned input partitions whose committed offset has not moved for a third of"
            " TRIAGE_STALL_TIMEOUT while records wait past it (at the full timeout the worker"
            " leaves for its supervisor to restart it).",
            registry=reg,
        )  # fmt: skip
        self.misrouted = Counter(
            "triage_misrouted_records",
            "Input records found on a partition other than their key's (an upstream producer"
            " with another partitioner), re-published to their key's partition.",
            registry=reg,
        )  # fmt: skip
        self.skipped_records = Counter(
            "triage_skipped_records",
            "Records the consumer skipped (found by their offsets after a later one) and"
            " read back from the broker before that later one was handled.",
            registry=reg,
        )  # fmt: skip
        self.ack_gaps = Counter(
            "triage_ack_gaps",
            "Acknowledgements refused because an earlier received record was never "
            "handled (the worker stops and re-reads from its last commit).",
            registry=reg,
        )  # fmt: skip
        for reason in IGNORED_REASONS:
            self.updates_ignored.labels(reason)
        for direction in OVERRIDE_DIRECTIONS:
            self.overrides.labels(direction)
        for alarm in ALARM_KINDS:
            self.alarms_merged.labels(alarm)
        self.known: KnownLabels | None = None
        if rules is not None and units is not None:
            self.known = KnownLabels.of(rules, units)
            self._create(self.known)

    def _create(self, known: KnownLabels) -> None:
        """Every series ``known`` names, at zero."""
        for level in known.levels:
            self.reassessments.labels(level)
            self.cases_dormant.labels(level)
            self.cases_reactivated.labels(level)
        for level, queue in known.level_queues:
            self.time_to_ack.labels(level, queue)
            self.time_to_action.labels(level, queue)
            for stage in SLA_STAGES:
                for unit in known.units:
                    self.breaches.labels(level, queue, stage, unit)
                    self.deadlines_met.labels(level, queue, stage, unit)
        for unit in known.units:
            for queue, level, kind in known.queue_kinds:
                self.queue_records.labels(queue, level, unit, kind)
            for level, kind in known.decision_kinds:
                self.decisions.labels(level, kind, unit)

    def series_count(self) -> int:
        """Series exposed now (each histogram bucket, ``_sum``, ``_count`` and
        ``_created`` sample is one series to Prometheus)."""
        return sum(len(family.samples) for family in self.registry.collect())

    def observe(self, observations: Iterable[Observation]) -> None:
        """Fold a step's observations into the metrics."""
        fold(observations, self)

    def on_event(self, o: EventHandled) -> None:
        self.events.labels(o.event_type, o.channel or "none", o.outcome).inc()

    def on_refused(self, o: Refused) -> None:
        self.dead_letters.labels(o.reason).inc()

    def on_decided(self, o: Decided) -> None:
        self.decisions.labels(o.level, o.decision_kind, o.unit).inc()

    def on_routed(self, o: Routed) -> None:
        self.queue_records.labels(o.queue, o.level, o.unit, o.record_kind).inc()

    def on_acked(self, o: Acked) -> None:
        if o.seconds is not None:
            self.time_to_ack.labels(o.level, o.queue).observe(o.seconds)
        if not o.late:
            self.deadlines_met.labels(o.level, o.queue, "ack", o.unit).inc()

    def on_actioned(self, o: Actioned) -> None:
        if o.seconds is not None:
            self.time_to_action.labels(o.level, o.queue).observe(o.seconds)
        if not o.late:
            self.deadlines_met.labels(o.level, o.queue, "action", o.unit).inc()

    def on_breached(self, o: Breached) -> None:
        self.breaches.labels(o.level, o.queue, o.stage, o.unit).inc()

    def on_reassessment_due(self, o: ReassessmentDue) -> None:
        self.reassessments.labels(o.level).inc()
        self.queue_records.labels(o.queue, o.level, o.unit, "reassessment").inc()

    def on_dormant(self, o: Dormant) -> None:
        self.cases_dormant.labels(o.level).inc()

    def on_reactivated(self, o: Reactivated) -> None:
        self.cases_reactivated.labels(o.level).inc()

    def on_overridden(self, o: Overridden) -> None:
        self.overrides.labels(o.direction).inc()

    def on_override_rejected(self, o: OverrideRejection) -> None:
        self.overrides_rejected.labels(o.direction, o.problem).inc()

    def on_ignored(self, o: Ignored) -> None:
        self.updates_ignored.labels(o.reason).inc()

    def on_duplicate(self, o: Duplicate) -> None:
        self.duplicates.inc()

    def on_conflict(self, o: Conflict) -> None:
        self.conflicting_resends.labels(o.event_type).inc()

    def on_merged(self, o: Merged) -> None:
        self.alarms_merged.labels(o.alarm).inc()

    def on_processing_error(self, o: ProcessingError) -> None:
        self.processing_errors.labels(o.stage).inc()

    def on_waiting(self, o: UpdateWaiting) -> None:
        self.updates_waiting.labels(o.outcome).inc()

    def on_clock_clamped(self, o: ClockClamped) -> None:
        self.clock_clamped.labels(o.event_type, o.channel or "none").inc()

    def watch_open_cases(self, states: Callable[[], Iterable[VictimState]]) -> None:
        """Serve ``triage_open_cases`` from the live states at each scrape."""
        self.registry.register(OpenCases(states))


class OpenCases(Collector):
    """``triage_open_cases{level,queue}``: open assignments, computed when scraped."""

    def __init__(self, states: Callable[[], Iterable[VictimState]]) -> None:
        self._states = states

    def collect(self) -> Sequence[GaugeMetricFamily]:
        """Count open assignments by level and queue."""
        family = GaugeMetricFamily(
            "triage_open_cases",
            "Open queue assignments by level, queue and unit.",
            labels=["level", "queue", "unit"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        for state in self._states():
            for item in state.assignments:
                key = (item.level.value, item.queue, state.unit or "")
                counts[key] = counts.get(key, 0) + 1
        for labels, count in sorted(counts.items()):
            family.add_metric(list(labels), count)
        return [family]
