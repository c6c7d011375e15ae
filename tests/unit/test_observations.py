"""Observations: one typed value per kind, reason codes as enums, folded in one place."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from typing import get_args

import orjson
import pytest

from triage.observability.metrics import IGNORED_REASONS, PROCESSING_STAGES, SLA_STAGES
from triage.pipeline.engine import STALE_REDELIVERY
from triage.pipeline.ingest import PROCESSING_ERROR, REASONS
from triage.pipeline.observations import (
    Acked,
    Actioned,
    Breached,
    ClockClamped,
    Closed,
    Conflict,
    Decided,
    Dormant,
    Duplicate,
    EventHandled,
    EventOutcome,
    Fold,
    Ignored,
    IgnoredReason,
    Merged,
    Observation,
    Overridden,
    OverrideProblem,
    OverrideRejection,
    ProcessingError,
    ProcessingStage,
    Protected,
    Reactivated,
    ReassessmentDue,
    RefusalReason,
    Refused,
    Routed,
    SlaStage,
    UpdateWaiting,
    WaitOutcome,
    fold,
)

ONE_OF_EACH: list[Observation] = [
    EventHandled("report.received", EventOutcome.DECIDED, channel="call_17_112"),
    Refused(RefusalReason.INVALID_JSON),
    Decided("P1", "alarm", unit="U"),
    Reactivated("P2", "assessment"),
    Routed("P1", "immediate", "new"),
    Acked("P1", "immediate", seconds=60.0),
    Actioned("P1", "immediate", seconds=600.0, action="on_scene"),
    Breached("P1", "immediate", SlaStage.ACK),
    ReassessmentDue("P2", "high-risk"),
    Overridden("P1", "up", reason="new_information"),
    OverrideRejection("P3", "down", OverrideProblem.MISSING_SECOND_REVIEWER),
    Protected("tgd"),
    Closed("P2", "resolved"),
    Dormant("P4"),
    Ignored(IgnoredReason.ALREADY_CLOSED),
    Duplicate("case.acknowledged"),
    Conflict("report.received"),
    Merged("P1", "immediate", "tgd_pressed"),
    ProcessingError(ProcessingStage.TIMER),
    ClockClamped("report.received", 60.0),
    UpdateWaiting(WaitOutcome.EXPIRED),
]


class Recorder(Fold):
    """Remembers which method each observation reached."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Observation]] = []

    def __getattribute__(self, name: str) -> object:
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda o: calls.append((name, o))
        return object.__getattribute__(self, name)


class TestFold:
    def test_each_kind_reaches_its_own_method_in_order(self) -> None:
        """Every kind of observation goes to the one method named for it, in input order."""
        recorder = Recorder()

        fold(ONE_OF_EACH, recorder)

        assert [o for _, o in recorder.calls] == ONE_OF_EACH
        assert [name for name, _ in recorder.calls] == [
            "on_event", "on_refused", "on_decided", "on_reactivated", "on_routed",
            "on_acked", "on_actioned", "on_breached", "on_reassessment_due",
            "on_overridden", "on_override_rejected", "on_protected", "on_closed",
            "on_dormant", "on_ignored", "on_duplicate", "on_conflict", "on_merged",
            "on_processing_error", "on_clock_clamped", "on_waiting",
        ]  # fmt: skip

    def test_the_examples_cover_every_kind(self) -> None:
        """The list above holds one observation of every kind the union names."""
        assert {type(o) for o in ONE_OF_EACH} == set(get_args(Observation))

    def test_a_fold_ignores_the_kinds_it_does_not_count(self) -> None:
        """The base fold does nothing with any observation."""
        fold(ONE_OF_EACH, Fold())

    def test_kinds_have_distinct_names(self) -> None:
        """Each kind has its own name for logs."""
        names = [o.kind for o in ONE_OF_EACH]
        assert len(set(names)) == len(names)


class TestObservations:
    def test_they_are_immutable(self) -> None:
        """An observation cannot be changed once made."""
        decided = Decided("P1", "alarm")

        with pytest.raises(FrozenInstanceError):
            decided.level = "P2"  # type: ignore[misc]

    def test_two_kinds_with_equal_fields_differ(self) -> None:
        """Equality includes the kind (a named tuple's would not)."""
        assert Dormant("P1") != Reactivated("P1", "assessment")
        assert Duplicate("x") != Conflict("x")


class TestReasonCodes:
    def test_refusal_reasons_are_the_dead_letter_reasons(self) -> None:
        """A refusal reason is one of ingestion's verdicts, a stale redelivery or a
        processing error, and each of those is one."""
        assert set(RefusalReason) == {*REASONS, STALE_REDELIVERY, PROCESSING_ERROR}

    def test_metric_label_sets_come_from_the_enums(self) -> None:
        """The label values created at startup are the enums' values."""
        assert tuple(IgnoredReason) == IGNORED_REASONS
        assert tuple(ProcessingStage) == PROCESSING_STAGES
        assert tuple(SlaStage) == SLA_STAGES

    def test_codes_print_and_serialise_as_their_values(self) -> None:
        """A code is its plain string in text, JSON and as a dictionary key."""
        code = RefusalReason.INVALID_JSON
        assert (str(code), f"{code}") == ("invalid_json", "invalid_json")
        assert json.dumps({code: [code]}) == '{"invalid_json": ["invalid_json"]}'
        assert orjson.dumps({"r": code}) == b'{"r":"invalid_json"}'
