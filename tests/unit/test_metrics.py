"""Prometheus metrics: folded from observations, SLA-aligned buckets, no personal data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import contact_values
from triage.events.base import QUEUE_NAMES, Level
from triage.generate import GeneratorConfig, generate_log
from triage.observability.metrics import RESPONSE_BUCKETS, TriageMetrics
from triage.pipeline.engine import Engine
from triage.pipeline.observations import (
    Acked,
    Actioned,
    Duplicate,
    EventHandled,
    EventOutcome,
    Ignored,
    IgnoredReason,
    Observation,
    Overridden,
    OverrideProblem,
    OverrideRejection,
    Protected,
    ReassessmentDue,
)
from triage.pipeline.processor import Processor
from triage.pipeline.state import Assignment, VictimState
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.replay.summary import Summary
from triage.routing.units import UnitDirectory
from triage.scoring.rules import RuleSet
from triage.testing import BASE_TIME, after
from triage.topics import Topics

SLA_DEADLINES = (300, 900, 1200, 3600, 86400, 259200, 604800)
"""Seconds: P1 ack, P1 on scene urban and rural, P2 ack, P3 ack, P4 ack, P4 action."""
VICTIM_PATTERN = re.compile(r"V-[0-9A-Z]{4,32}")
DECISION_PATTERN = re.compile(r"D-[0-9a-f]{24}")
LEVELS = [lv.value for lv in Level]


@dataclass(frozen=True)
class Run:
    """An offline replay of a small generated log: its records and observations."""

    log: list[LogRecord]
    observations: list[Observation]
    states: list[VictimState]


@pytest.fixture(name="run", scope="module")
def _run(engine: Engine) -> Run:
    """Replay 40 victims over 10 days (5 % malformed), then let eight more days pass."""
    log = list(generate_log(GeneratorConfig(victims=40, days=10, bad_rate=0.05), engine))
    topics = Topics()
    processor = Processor(engine, topics)
    observations: list[Observation] = []
    for record in log:
        observations.extend(processor.feed(to_raw(record, topics)).observations)
    assert processor.clock is not None
    # Like a late watermark: the deadlines nobody met fire as breaches.
    observations.extend(processor.advance(processor.clock + timedelta(days=8)).observations)
    return Run(log, observations, list(processor.states.values()))


@pytest.fixture(name="registry")
def _registry() -> CollectorRegistry:
    """A fresh registry: nothing leaks between tests or from the process default."""
    return CollectorRegistry()


def sample_sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of every sample called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def label_values(registry: CollectorRegistry) -> Iterator[str]:
    """Every label value in the text exposition, parsed back."""
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield from sample.labels.values()


def assignment(queue: str, level: Level, decision: str) -> Assignment:
    """An open assignment routed at :data:`BASE_TIME`."""
    return Assignment(
        decision_id=decision,
        queue=queue,
        level=level,
        kind="new",
        routed_at=BASE_TIME,
        ack_due=after(minutes=5),
        action_due=after(minutes=15),
    )


class TestTriageMetrics:
    @pytest.fixture(name="figures")
    def _figures(self, run: Run, registry: CollectorRegistry) -> Summary:
        """Feed the run's observations to both the metrics and a summary."""
        TriageMetrics(registry).observe(run.observations)
        summary = Summary()
        summary.add(run.observations)
        return summary

    def test_the_run_exercises_what_is_compared(self, figures: Summary) -> None:
        """The generated log has decisions, breaches, dead letters and acks to compare."""
        assert sum(figures.decisions.values()) > 0
        assert sum(figures.breaches.values()) > 0
        assert sum(figures.dead_letters.values()) > 0
        assert sum(len(v) for v in figures.ack_seconds.values()) > 0

    @pytest.mark.parametrize("level", LEVELS)
    def test_decisions_per_level(
        self, figures: Summary, registry: CollectorRegistry, level: str
    ) -> None:
        """Decisions counted per level (all kinds and units) equal the summary's."""
        assert (
            sample_sum(registry, "triage_decisions_total", level=level) == figures.decisions[level]
        )

    @pytest.mark.parametrize("level", LEVELS)
    @pytest.mark.parametrize("stage", ["ack", "action", "review"])
    def test_breaches_per_level_and_stage(
        self, figures: Summary, registry: CollectorRegistry, level: str, stage: str
    ) -> None:
        """SLA breaches per level and stage (all queues) equal the summary's."""
        counted = sample_sum(registry, "triage_sla_breaches_total", level=level, stage=stage)

        assert counted == figures.breaches[(level, stage)]

    def test_dead_letters_per_reason(self, figures: Summary, registry: CollectorRegistry) -> None:
        """Dead letters per reason code equal the summary's, and no other reason appears."""
        for reason, count in figures.dead_letters.items():
            assert registry.get_sample_value("triage_dead_letters_total", {"reason": reason}) == (
                count
            )
        assert sample_sum(registry, "triage_dead_letters_total") == sum(
            figures.dead_letters.values()
        )

    @pytest.mark.parametrize("level", LEVELS)
    def test_time_to_ack_per_level(
        self, figures: Summary, registry: CollectorRegistry, level: str
    ) -> None:
        """Time-to-ack histogram counts and sums per level equal the summary's samples: new
        information and scheduled reviews together (the summary keeps them apart, the
        histogram does not yet)."""
        samples = figures.ack_seconds.get(level, []) + figures.review_ack_seconds.get(level, [])

        assert sample_sum(registry, "triage_time_to_ack_seconds_count", level=level) == len(samples)
        assert sample_sum(registry, "triage_time_to_ack_seconds_sum", level=level) == (
            pytest.approx(sum(samples))
        )

    @pytest.mark.parametrize("level", LEVELS)
    def test_time_to_action_per_level(
        self, figures: Summary, registry: CollectorRegistry, level: str
    ) -> None:
        """Time-to-action histogram counts per level equal the summary's samples (new
        information and scheduled reviews together, as for time to ack)."""
        counted = sample_sum(registry, "triage_time_to_action_seconds_count", level=level)
        samples = figures.action_seconds.get(level, []) + figures.review_action_seconds.get(
            level, []
        )

        assert counted == len(samples)

    def test_queue_records_per_queue_and_level(
        self, figures: Summary, registry: CollectorRegistry
    ) -> None:
        """Routed queue records (re-assessments aside) equal the summary's routing counts."""
        for (queue, level), count in figures.routed.items():
            routed = sum(
                sample_sum(registry, "triage_queue_records_total", queue=queue, level=level, kind=k)
                for k in ("new", "override")
            )
            assert routed == count

    def test_events_count_rejected_records(self, registry: CollectorRegistry) -> None:
        """A rejected record counts as an ``invalid`` event with outcome ``rejected``."""
        metrics = TriageMetrics(registry)

        metrics.observe([EventHandled("invalid", EventOutcome.REJECTED)])

        labels = {"type": "invalid", "channel": "none", "outcome": "rejected"}
        assert registry.get_sample_value("triage_events_total", labels) == 1.0

    def test_every_input_record_is_counted_as_an_event(
        self, run: Run, registry: CollectorRegistry
    ) -> None:
        """``triage_events_total`` counts every input record once, accepted or not."""
        TriageMetrics(registry).observe(run.observations)

        assert sample_sum(registry, "triage_events_total") == len(run.log)

    @pytest.mark.parametrize(
        "name", ["triage_time_to_ack_seconds", "triage_time_to_action_seconds"]
    )
    def test_buckets_include_the_sla_deadlines(
        self, registry: CollectorRegistry, name: str
    ) -> None:
        """Response-time histograms have a bucket at every deadline of the SLA table."""
        metrics = TriageMetrics(registry)
        metrics.observe(
            [
                Acked("P1", "immediate", seconds=299.0),
                Actioned("P1", "immediate", seconds=299.0),
            ]
        )

        for deadline in SLA_DEADLINES:
            labels = {"level": "P1", "queue": "immediate", "le": str(float(deadline))}
            assert registry.get_sample_value(f"{name}_bucket", labels) == 1.0
        assert set(map(float, SLA_DEADLINES)) <= set(RESPONSE_BUCKETS)

    def test_a_deadline_met_to_the_second_is_inside_its_bucket(
        self, registry: CollectorRegistry
    ) -> None:
        """An ack exactly at 5 minutes falls in the 300 s bucket (buckets are ``le``)."""
        metrics = TriageMetrics(registry)

        metrics.observe([Acked("P1", "immediate", seconds=300.0)])

        labels = {"level": "P1", "queue": "immediate"}
        assert (
            registry.get_sample_value("triage_time_to_ack_seconds_bucket", {**labels, "le": "60.0"})
            == 0.0
        )
        assert (
            registry.get_sample_value(
                "triage_time_to_ack_seconds_bucket", {**labels, "le": "300.0"}
            )
            == 1.0
        )

    def test_observations_without_seconds_are_not_timed(self, registry: CollectorRegistry) -> None:
        """An ack without a measured duration adds no histogram sample."""
        metrics = TriageMetrics(registry)

        metrics.observe([Acked("P2", "high-risk")])

        assert sample_sum(registry, "triage_time_to_ack_seconds_count") == 0

    def test_each_kind_of_observation_lands_in_its_counter(
        self, registry: CollectorRegistry
    ) -> None:
        """Overrides, rejections, ignored updates, duplicates and re-assessments are counted."""
        metrics = TriageMetrics(registry)

        metrics.observe(
            [
                Overridden("P2", "up"),
                OverrideRejection("P3", "down", OverrideProblem.MISSING_SECOND_REVIEWER),
                Ignored(IgnoredReason.ALREADY_CLOSED),
                Duplicate(),
                ReassessmentDue("P2", "high-risk", unit="U"),
                Protected("tgd"),  # not a metric: nothing breaks
            ]
        )

        assert registry.get_sample_value("triage_overrides_total", {"direction": "up"}) == 1
        assert (
            registry.get_sample_value(
                "triage_overrides_rejected_total",
                {"direction": "down", "reason": "missing_second_reviewer"},
            )
            == 1
        )
        assert (
            registry.get_sample_value("triage_updates_ignored_total", {"reason": "already_closed"})
            == 1
        )
        assert registry.get_sample_value("triage_duplicates_total") == 1
        assert registry.get_sample_value("triage_reassessments_due_total", {"level": "P2"}) == 1
        assert (
            registry.get_sample_value(
                "triage_queue_records_total",
                {"queue": "high-risk", "level": "P2", "unit": "U", "kind": "reassessment"},
            )
            == 1
        )

    def test_registries_are_independent(self) -> None:
        """Two metric sets on two registries do not share counts (and may coexist)."""
        first, second = CollectorRegistry(), CollectorRegistry()
        TriageMetrics(first).observe([Duplicate()])
        TriageMetrics(second)

        assert first.get_sample_value("triage_duplicates_total") == 1
        assert second.get_sample_value("triage_duplicates_total") == 0

    @pytest.fixture(name="exposition")
    def _exposition(self, run: Run, registry: CollectorRegistry) -> tuple[str, list[str]]:
        """Every metric filled from the run; the text exposition and its label values."""
        metrics = TriageMetrics(registry)
        metrics.observe(run.observations)
        metrics.watch_open_cases(lambda: run.states)
        metrics.processing.observe(0.002)
        metrics.consumer_lag.labels(Topics().reports).set(3)
        return generate_latest(registry).decode(), list(label_values(registry))

    def test_no_victim_or_decision_id_in_labels(self, exposition: tuple[str, list[str]]) -> None:
        """No label value is a victim reference or a decision id."""
        _, values = exposition

        assert values  # the exposition does have labels
        assert [v for v in values if VICTIM_PATTERN.search(v) or DECISION_PATTERN.search(v)] == []

    def test_no_victim_or_decision_id_anywhere(
        self, run: Run, exposition: tuple[str, list[str]]
    ) -> None:
        """No victim reference or decision id of the log appears anywhere in the exposition."""
        text, _ = exposition

        assert VICTIM_PATTERN.search(text) is None
        assert DECISION_PATTERN.search(text) is None
        assert [key for key in {r.key for r in run.log if r.key} if key in text] == []

    def test_no_contact_value_anywhere(self, run: Run, exposition: tuple[str, list[str]]) -> None:
        """No name, phone, address or note from any contact block appears in the exposition."""
        text, values = exposition
        contacts = contact_values(run.log)

        assert contacts  # the log does carry contact blocks
        assert [c for c in contacts if c in text] == []
        assert contacts.isdisjoint(values)


class TestOpenCases:
    def test_counts_open_assignments_by_level_and_queue(self, registry: CollectorRegistry) -> None:
        """``triage_open_cases`` counts the assignments of the watched states."""
        d1, d2 = "D-" + "1" * 24, "D-" + "2" * 24
        states = [
            VictimState(
                victim_ref="V-0001A2",
                open=True,
                unit="PN-ARRAS",
                assignments=(
                    assignment("immediate", Level.P1, d1),
                    assignment("child-protection", Level.P1, d1),
                ),
            ),
            VictimState(
                victim_ref="V-0002B3",
                open=True,
                unit="PN-ARRAS",
                assignments=(assignment("immediate", Level.P1, d2),),
            ),
            VictimState(victim_ref="V-0003C4"),
        ]
        metrics = TriageMetrics(registry)

        metrics.watch_open_cases(lambda: states)

        assert (
            registry.get_sample_value(
                "triage_open_cases", {"level": "P1", "queue": "immediate", "unit": "PN-ARRAS"}
            )
            == 2
        )
        assert (
            registry.get_sample_value(
                "triage_open_cases",
                {"level": "P1", "queue": "child-protection", "unit": "PN-ARRAS"},
            )
            == 1
        )
        assert sample_sum(registry, "triage_open_cases") == 3

    def test_is_computed_at_each_scrape(self, registry: CollectorRegistry) -> None:
        """The gauge follows the states as they are when scraped, not when registered."""
        states: list[VictimState] = []
        TriageMetrics(registry).watch_open_cases(lambda: states)

        assert sample_sum(registry, "triage_open_cases") == 0

        states.append(
            VictimState(
                victim_ref="V-0001A2",
                open=True,
                assignments=(assignment("standard", Level.P4, "D-" + "3" * 24),),
            )
        )

        assert (
            registry.get_sample_value(
                "triage_open_cases", {"level": "P4", "queue": "standard", "unit": ""}
            )
            == 1
        )

    def test_matches_the_replayed_states(self, run: Run, registry: CollectorRegistry) -> None:
        """Over a replay, the gauge totals the open assignments the processor holds."""
        TriageMetrics(registry).watch_open_cases(lambda: run.states)

        expected = sum(len(s.assignments) for s in run.states)
        assert sample_sum(registry, "triage_open_cases") == expected


PRE_CREATED = (
    "triage_sla_breaches_total",
    "triage_sla_deadlines_met_total",
    "triage_queue_records_total",
    "triage_decisions_total",
    "triage_time_to_ack_seconds_count",
    "triage_time_to_action_seconds_count",
    "triage_reassessments_due_total",
    "triage_cases_dormant_total",
    "triage_cases_reactivated_total",
    "triage_overrides_total",
    "triage_alarms_merged_total",
    "triage_updates_ignored_total",
)
"""Counters (and histogram counts) whose label combinations exist from the start."""


def label_sets(registry: CollectorRegistry, name: str) -> set[tuple[tuple[str, str], ...]]:
    """The label sets of every sample called ``name``."""
    return {
        tuple(sorted(sample.labels.items()))
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    }


class TestSeriesFromTheStart:
    """Issue 15: a series born at its first increment hides that increment from
    ``increase``; the worker's metrics exist at zero from the start."""

    @pytest.fixture(name="started")
    def _started(
        self, registry: CollectorRegistry, rules: RuleSet, units: UnitDirectory
    ) -> TriageMetrics:
        return TriageMetrics(registry, rules=rules, units=units)

    def test_every_known_combination_exists_at_zero(
        self, started: TriageMetrics, registry: CollectorRegistry, units: UnitDirectory
    ) -> None:
        """Breach, met, queue-record, decision and histogram series exist at 0; prints the
        number of series the packaged rule set and unit directory create."""
        unit_count = len(units.units)
        expected = {
            # 13 level-queue pairs (12 routed, plus P1 reviews in high-risk), 3 stages
            "triage_sla_breaches_total": 13 * 3 * unit_count,
            "triage_sla_deadlines_met_total": 13 * 3 * unit_count,
            "triage_queue_records_total": 33 * unit_count,  # 32, plus P1 reviews in high-risk
            "triage_decisions_total": 5 * unit_count,  # 4 assessed levels + alarm at P1
            "triage_time_to_ack_seconds_count": 13,
            "triage_time_to_action_seconds_count": 13,
            "triage_reassessments_due_total": 4,
            "triage_cases_dormant_total": 4,
            "triage_cases_reactivated_total": 4,
            "triage_overrides_total": 2,
        }
        for name, count in expected.items():
            assert len(label_sets(registry, name)) == count, name
            assert sample_sum(registry, name) == 0, name
        breach = {"level": "P1", "queue": "immediate", "stage": "ack", "unit": "PN-ARRAS"}
        assert registry.get_sample_value("triage_sla_breaches_total", breach) == 0
        print(
            f"\nseries at startup (packaged rules, {unit_count} units): "
            f"{started.series_count()} samples exposed, of which "
            f"{sum(expected.values())} labelled counter / histogram-count series"
        )

    def test_only_combinations_the_routing_table_allows(self, started: TriageMetrics) -> None:
        """A primary queue is fed its own level only (high-risk also P1 reviews, the rule
        set's review_queue); fan-out queues every level."""
        known = started.known
        assert known is not None
        by_queue: dict[str, set[str]] = {}
        for level, queue in known.level_queues:
            by_queue.setdefault(queue, set()).add(level)
        assert by_queue == {
            "immediate": {"P1"},
            "high-risk": {"P1", "P2"},
            "follow-up": {"P3"},
            "standard": {"P4"},
            "child-protection": set(LEVELS),
            "judicial": set(LEVELS),
        }
        assert ("child-protection", "P1", "reassessment") not in known.queue_kinds
        assert ("high-risk", "P1", "reassessment") in known.queue_kinds
        assert ("high-risk", "P1", "new") not in known.queue_kinds
        assert ("P3", "alarm") not in known.decision_kinds  # both alarms are P1 floors

    def test_a_replayed_log_creates_no_series_beyond_them(
        self, run: Run, started: TriageMetrics, registry: CollectorRegistry
    ) -> None:
        """Everything a generated log (with 8 days of breaches after it) produces is
        one of the series created at the start: no first increment is hidden."""
        before = {name: label_sets(registry, name) for name in PRE_CREATED}

        started.observe(run.observations)

        for name in PRE_CREATED:
            assert label_sets(registry, name) == before[name], name
        assert sample_sum(registry, "triage_sla_breaches_total") > 0
        assert sample_sum(registry, "triage_sla_deadlines_met_total") > 0

    def test_label_values_are_closed_sets(
        self, started: TriageMetrics, registry: CollectorRegistry, units: UnitDirectory
    ) -> None:
        """Only levels, queues, stages, units and reason codes: nothing personal."""
        allowed = (
            set(LEVELS)
            | set(QUEUE_NAMES)
            | {"ack", "action", "up", "down", "new", "update", "override", "reassessment"}
            | {"assessment", "alarm", "tgd_pressed", "bar_zone_breach"}
            | {unit.id for unit in units.units}
        )
        values = set(label_values(registry)) - {"+Inf"}
        values = {v for v in values if not re.fullmatch(r"[0-9.e+]+", v)}  # bucket bounds
        closed = values - allowed
        # Pre-existing closed sets: event types, outcomes, stages, checks, reasons.
        assert all(re.fullmatch(r"[a-z_.]+", v) for v in closed), closed
        assert not any(VICTIM_PATTERN.search(v) or DECISION_PATTERN.search(v) for v in values)

    def test_rules_without_units_is_an_error(
        self, registry: CollectorRegistry, rules: RuleSet
    ) -> None:
        """Both or neither: half a set of known labels would be a silent gap."""
        with pytest.raises(ValueError, match="both"):
            TriageMetrics(registry, rules=rules)


class TestDeadlinesMet:
    def test_in_time_acks_and_actions_count_late_ones_do_not(
        self, registry: CollectorRegistry
    ) -> None:
        """A deadline ends once: met (counted here) or missed (a breach)."""
        metrics = TriageMetrics(registry)
        where = {"level": "P1", "queue": "immediate", "unit": "PN-ARRAS"}

        metrics.observe(
            [
                Acked(**where, seconds=120.0),
                Acked(**where, seconds=400.0, late=True),
                Actioned(**where, seconds=600.0, action="on_scene"),
                Actioned(**where, seconds=1900.0, late=True, action="on_scene"),
            ]
        )

        met = "triage_sla_deadlines_met_total"
        assert registry.get_sample_value(met, where | {"stage": "ack"}) == 1
        assert registry.get_sample_value(met, where | {"stage": "action"}) == 1
        assert sample_sum(registry, "triage_time_to_ack_seconds_count") == 2
        assert sample_sum(registry, "triage_time_to_action_seconds_count") == 2
