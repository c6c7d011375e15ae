"""The broker check: what the broker says against what the worker must find and knows."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import get_args

from structlog.testing import capture_logs

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the broker admin module imports it); with filterwarnings=error that
# fails collection when this file is collected first.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.broker.admin import GroupSnapshot

from triage.observability.metrics import BROKER_CHECKS, TriageMetrics
from triage.observability.redaction import ALLOWED_KEYS
from triage.settings import TriageSettings
from triage.streaming.consistency import (
    MAX_LISTED,
    BrokerWatch,
    Check,
    Expected,
    Problem,
    broker_watch,
    describe,
    find_problems,
    report,
)
from triage.streaming.watchdog import EXIT_BROKER_INCONSISTENT, EXIT_STALLED
from triage.topics import Topics

TOPICS = Topics(prefix="t.")
CHANGELOG = "t.worker-victim-state-changelog"
EXPECTED = Expected(TOPICS.inputs, TOPICS.outputs, CHANGELOG, 4, TOPICS.internal)
REPORTS, UPDATES = TOPICS.inputs


def snapshot(
    counts: Mapping[str, int] | None = None,
    ends: Mapping[tuple[str, int], int] | None = None,
    committed: Mapping[tuple[str, int], int] | None = None,
) -> GroupSnapshot:
    """A broker holding every topic with 4 partitions (changelog included), unless told."""
    if counts is None:
        counts = dict.fromkeys(EXPECTED.topics, 4)
    if ends is None:
        ends = {(t, p): 10 for t in TOPICS.consumed if t in counts for p in range(counts[t])}
    return GroupSnapshot(counts, ends, committed or {})


def checks(problems: list[Problem]) -> list[Check]:
    """The check of each problem, in order."""
    return [p.check for p in problems]


class _Owner:
    """Stands for a Faust app (anything weakly referenceable)."""


class TestTopics:
    def test_a_provisioned_broker_has_no_problem(self) -> None:
        """Every topic with the expected partition count, offsets within the logs: fine."""
        assert find_problems(EXPECTED, snapshot(committed={(REPORTS, 0): 10})) == []

    def test_a_missing_input_or_output_topic_is_named(self) -> None:
        """A missing input or output topic is one ``topic_missing`` problem naming it."""
        counts = dict.fromkeys(EXPECTED.topics, 4)
        del counts[UPDATES], counts[TOPICS.deadletter]

        problems = find_problems(EXPECTED, snapshot(counts))

        assert checks(problems) == ["topic_missing", "topic_missing"]
        assert [p.text for p in problems] == [
            "topic t.dv.case-updates.v1 does not exist",
            "topic t.dv.deadletter.v1 does not exist",
        ]

    def test_the_changelog_may_be_missing_before_the_first_start(self) -> None:
        """Faust creates the state changelog: before the first start it does not exist."""
        counts = dict.fromkeys((*TOPICS.consumed, *TOPICS.outputs), 4)

        assert find_problems(EXPECTED, snapshot(counts)) == []

    def test_a_changelog_that_was_there_and_is_gone_is_a_problem(self) -> None:
        """Once seen, a changelog that disappears is a problem."""
        counts = dict.fromkeys((*TOPICS.consumed, *TOPICS.outputs), 4)

        problems = find_problems(EXPECTED, snapshot(counts), changelog_known=True)

        assert [p.text for p in problems] == [f"state changelog {CHANGELOG} no longer exists"]

    def test_internal_topics_with_another_partition_count(self) -> None:
        """4-partition internal topics and changelog against ``TRIAGE_PARTITIONS=8``: each
        is named with both counts."""
        expected = Expected(TOPICS.inputs, TOPICS.outputs, CHANGELOG, 8, TOPICS.internal)

        problems = find_problems(expected, snapshot())

        assert [p.text for p in problems] == [
            "topic t.dv.internal.reports.v1 has 4 partitions, TRIAGE_PARTITIONS is 8",
            "topic t.dv.internal.case-updates.v1 has 4 partitions, TRIAGE_PARTITIONS is 8",
            f"topic {CHANGELOG} has 4 partitions, TRIAGE_PARTITIONS is 8",
        ]

    def test_input_topics_may_have_any_partition_count(self) -> None:
        """Upstream writes the input topics as it likes (3 and 5 partitions against 4):
        the forwarding stage re-partitions them, so that is no problem."""
        counts = dict.fromkeys(EXPECTED.topics, 4) | {REPORTS: 3, UPDATES: 5}

        assert find_problems(EXPECTED, snapshot(counts)) == []

    def test_a_missing_internal_topic_is_named(self) -> None:
        """An internal topic that is not there is a ``topic_missing`` problem."""
        counts = dict.fromkeys(EXPECTED.topics, 4)
        del counts[TOPICS.internal_updates]

        problems = find_problems(EXPECTED, snapshot(counts))

        assert [p.text for p in problems] == ["topic t.dv.internal.case-updates.v1 does not exist"]

    def test_an_internal_log_that_shrank_is_named(self) -> None:
        """Internal topics are consumed: one ending below the group's commit is a problem."""
        internal = TOPICS.internal_reports

        problems = find_problems(EXPECTED, snapshot(committed={(internal, 1): 12}))

        assert [p.text for p in problems] == [
            f"{internal}[1] ends at offset 10, below the group's committed offset 12"
        ]

    def test_output_partition_counts_are_not_compared(self) -> None:
        """Outputs are written by key with any partition count: only their existence counts."""
        counts = dict.fromkeys(EXPECTED.topics, 4) | {TOPICS.decisions: 12}

        assert find_problems(EXPECTED, snapshot(counts)) == []


class TestOffsets:
    def test_a_committed_offset_past_the_end(self) -> None:
        """A committed offset above its partition's end names topic, partition and both
        offsets."""
        problems = find_problems(EXPECTED, snapshot(committed={(REPORTS, 2): 57}))

        assert [p.text for p in problems] == [
            "t.dv.reports.v1[2] ends at offset 10, below the group's committed offset 57"
        ]
        assert checks(problems) == ["log_shrank"]

    def test_a_committed_offset_at_the_end_is_fine(self) -> None:
        """Committed up to the end: everything read, nothing lost."""
        assert find_problems(EXPECTED, snapshot(committed={(REPORTS, 2): 10})) == []

    def test_an_end_at_or_below_an_offset_already_read(self) -> None:
        """A log must end after the last offset read there: ending at it is a problem."""
        assert find_problems(EXPECTED, snapshot(), read={(UPDATES, 1): 9}) == []

        problems = find_problems(EXPECTED, snapshot(), read={(UPDATES, 1): 10})

        assert [p.text for p in problems] == [
            "t.dv.case-updates.v1[1] ends at offset 10, below offset 10, which this worker"
            " already read"
        ]

    def test_an_end_below_an_earlier_end(self) -> None:
        """A log end never decreases on a healthy broker."""
        problems = find_problems(EXPECTED, snapshot(), ended={(REPORTS, 3): 11})

        assert [p.text for p in problems] == [
            "t.dv.reports.v1[3] ends at offset 10, below its end 11 at an earlier check"
        ]

    def test_one_problem_per_partition(self) -> None:
        """A partition below several floors is named once (the committed offset first)."""
        problems = find_problems(
            EXPECTED,
            snapshot(committed={(REPORTS, 0): 40}),
            read={(REPORTS, 0): 45},
            ended={(REPORTS, 0): 50},
        )

        assert len(problems) == 1
        assert "committed offset 40" in problems[0].text


class TestBrokerWatch:
    def test_a_broker_restarted_empty_trips_it(self) -> None:
        """Seen healthy, then empty (no topic at all): every topic is named, it trips."""
        watch = BrokerWatch()
        assert watch.observe(EXPECTED, snapshot(), {(REPORTS, 0): 9}) == []
        assert not watch.tripped

        problems = watch.observe(EXPECTED, GroupSnapshot({}, {}, {}), {})

        assert watch.tripped
        assert watch.problems == problems
        assert checks(problems) == ["topic_missing"] * (len(EXPECTED.topics))
        assert problems[-1].text == f"state changelog {CHANGELOG} no longer exists"

    def test_a_broker_restarted_empty_and_provisioned_again_trips_it(self) -> None:
        """Topics back, but shorter than before: the remembered ends give it away."""
        watch = BrokerWatch()
        watch.observe(EXPECTED, snapshot(), {})

        problems = watch.observe(EXPECTED, snapshot(ends={(REPORTS, 1): 0}), {})

        assert [p.text for p in problems] == [
            "t.dv.reports.v1[1] ends at offset 0, below its end 10 at an earlier check"
        ]

    def test_growing_logs_do_not_trip_it(self) -> None:
        """Ends that grow, offsets read within them: never a problem."""
        watch = BrokerWatch()
        for end in (0, 3, 3, 20):
            ends = {(t, p): end for t in TOPICS.inputs for p in range(4)}
            read = {(REPORTS, 0): end - 1} if end else {}
            assert watch.observe(EXPECTED, snapshot(ends=ends), read) == []
        assert not watch.tripped

    def test_one_watch_per_owner(self) -> None:
        """``broker_watch`` gives the same watch for the same app, another for another."""
        first, second = _Owner(), _Owner()

        assert broker_watch(first) is broker_watch(first)
        assert broker_watch(first) is not broker_watch(second)


class TestReport:
    def test_one_error_line_with_allowed_keys_and_the_gauge(self) -> None:
        """One ``broker_inconsistent`` error line, every key allowed by the log redaction,
        and the gauge at 1 for the checks that failed only."""
        metrics = TriageMetrics()
        problems = find_problems(
            EXPECTED, snapshot(committed={(REPORTS, 2): 57}), changelog_known=True
        )
        with capture_logs() as logs:
            report(problems, metrics, when="running")

        assert len(logs) == 1
        line = logs[0]
        assert (line["event"], line["log_level"]) == ("broker_inconsistent", "error")
        assert set(line) - {"log_level"} <= ALLOWED_KEYS
        assert "t.dv.reports.v1[2] ends at offset 10" in line["reason"]
        assert f"exit status {EXIT_BROKER_INCONSISTENT}" in line["reason"]
        value = metrics.registry.get_sample_value
        assert value("triage_broker_inconsistent", {"check": "log_shrank"}) == 1
        assert value("triage_broker_inconsistent", {"check": "topic_missing"}) == 0

    def test_the_line_lists_a_bounded_number_of_problems(self) -> None:
        """Past ``MAX_LISTED`` problems the line says how many more there are."""
        problems = [Problem("topic_missing", f"topic x{i} does not exist") for i in range(20)]

        line = describe(problems)

        assert line.count("does not exist") == MAX_LISTED
        assert line.endswith(f"; and {20 - MAX_LISTED} more")

    def test_checks_and_exit_status(self) -> None:
        """The gauge's label values are the checks; the exit status is its own."""
        assert set(get_args(Check)) == set(BROKER_CHECKS)
        assert EXIT_BROKER_INCONSISTENT not in (0, 1, 2, EXIT_STALLED)


class TestExpected:
    def test_expected_topics_come_from_settings(self) -> None:
        """Inputs, outputs and the partition count follow the settings' prefix and count."""
        settings = TriageSettings(topic_prefix="t.", partitions=8)

        expected = Expected.of(settings, CHANGELOG)

        assert (expected.inputs, expected.outputs) == (TOPICS.inputs, TOPICS.outputs)
        assert expected.internal == TOPICS.internal
        assert expected.consumed == TOPICS.consumed
        assert expected.partitions == 8
        assert expected.topics[-1] == CHANGELOG

    def test_lag_from_a_snapshot(self) -> None:
        """Lag: records past the committed offset (all of them where nothing is committed)."""
        snap = GroupSnapshot({}, {(REPORTS, 0): 10, (REPORTS, 1): 5}, {(REPORTS, 0): 4})

        assert snap.lag() == {(REPORTS, 0): 6, (REPORTS, 1): 5}
