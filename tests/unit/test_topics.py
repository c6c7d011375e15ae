"""Topic names: canonical names, prefixes, what each topic accepts, where outputs go."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.events.base import QUEUE_NAMES
from triage.events.outputs import OutputEvent
from triage.events.registry import INPUT_TYPES
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import dead_letter
from triage.testing import after, make_override, make_raw, make_report
from triage.topics import REPORT_TYPES, UPDATE_TYPES, Topics


class TestTopics:
    def test_canonical_names(self, topics: Topics) -> None:
        """Without a prefix, topics have their canonical versioned names."""
        assert (topics.reports, topics.updates, topics.decisions, topics.deadletter) == (
            "dv.reports.v1",
            "dv.case-updates.v1",
            "dv.decisions.v1",
            "dv.deadletter.v1",
        )
        assert topics.queue("immediate") == "dv.queue.immediate.v1"

    def test_prefix_applies_to_every_topic(self) -> None:
        """A prefix is put in front of every input and output topic."""
        topics = Topics(prefix="region-x.")

        assert all(name.startswith("region-x.dv.") for name in (*topics.inputs, *topics.outputs))

    def test_queues_cover_every_queue_name(self, topics: Topics) -> None:
        """There is one queue topic per queue name, supervisor included."""
        assert topics.queues == tuple(f"dv.queue.{q}.v1" for q in QUEUE_NAMES)
        assert "dv.queue.supervisor.v1" in topics.outputs

    def test_inputs_and_outputs_do_not_overlap(self, topics: Topics) -> None:
        """The worker never consumes a topic it produces to."""
        assert not set(topics.inputs) & set(topics.outputs)

    def test_accepts(self, topics: Topics) -> None:
        """Reports and alarms belong on the reports topic, updates on the updates topic."""
        assert topics.accepts(topics.reports) == REPORT_TYPES
        assert topics.accepts(topics.updates) == UPDATE_TYPES
        assert topics.accepts(topics.decisions) == frozenset()

    def test_every_input_type_has_exactly_one_topic(self) -> None:
        """Each input event type is accepted on exactly one topic."""
        assert REPORT_TYPES | UPDATE_TYPES == INPUT_TYPES
        assert not REPORT_TYPES & UPDATE_TYPES

    @given(
        prefix=st.text(st.sampled_from("abc.-_"), max_size=6),
        logical=st.sampled_from(Topics().outputs),
    )
    def test_logical_undoes_with_prefix(self, prefix: str, logical: str) -> None:
        """The canonical name of a prefixed topic is the name it was made from."""
        topics = Topics(prefix=prefix)

        assert topics.logical(topics.with_prefix(logical)) == logical

    def test_logical_leaves_foreign_topics_alone(self) -> None:
        """A topic without the prefix is returned unchanged."""
        assert Topics(prefix="x.").logical("dv.reports.v1") == "dv.reports.v1"

    def test_for_output(self, topics: Topics, engine: Engine) -> None:
        """Decisions and rejections go to the audit log, queue records to their queue,
        escalations to the supervisor queue, dead letters to the dead-letter topic."""
        report = make_report(indicators={"immediate_danger": "yes", "children_present": "yes"})
        step = engine.step(None, report, report.time)
        rejected = engine.step(
            step.state,
            make_override(direction="down", decision_id=step.outputs[0].id),
            after(minutes=1),
        )
        breach = engine.step(step.state, None, after(minutes=6))
        letter = dead_letter(make_raw(b"{"), "invalid_json", "", topics)
        outputs: list[OutputEvent] = [*step.outputs, *rejected.outputs, breach.outputs[0], letter]

        assert [topics.for_output(o) for o in outputs] == [
            "dv.decisions.v1",
            "dv.queue.immediate.v1",
            "dv.queue.child-protection.v1",
            "dv.decisions.v1",
            "dv.queue.supervisor.v1",
            "dv.deadletter.v1",
        ]

    @pytest.mark.parametrize("prefix", ["", "test."])
    def test_with_prefix(self, prefix: str) -> None:
        """with_prefix spells a canonical name the way this deployment does."""
        assert Topics(prefix=prefix).with_prefix("dv.reports.v1") == f"{prefix}dv.reports.v1"


class TestInternalTopics:
    def test_one_internal_topic_per_input_in_the_same_order(self) -> None:
        """Each input topic has its internal (repartition) topic; both maps invert."""
        topics = Topics(prefix="p.")

        assert topics.internal == ("p.dv.internal.reports.v1", "p.dv.internal.case-updates.v1")
        for upstream, internal in zip(topics.inputs, topics.internal, strict=True):
            assert topics.internal_of(upstream) == internal
            assert topics.upstream_of(internal) == upstream
        assert topics.internal_of(topics.decisions) is None
        assert topics.upstream_of(topics.reports) is None

    def test_the_group_consumes_inputs_and_internal_topics(self) -> None:
        """Lag and broker checks cover both stages: the inputs and the internal topics."""
        topics = Topics()

        assert topics.consumed == (*topics.inputs, *topics.internal)
        assert not set(topics.internal) & set(topics.outputs)
