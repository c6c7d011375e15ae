"""Topic names. Every topic is keyed by the victim reference."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from triage.events.base import QUEUE_NAMES
from triage.events.outputs import (
    CaseDormant,
    DeadLetter,
    Decision,
    Escalation,
    OutputEvent,
    OverrideRejected,
)

REPORT_TYPES = frozenset({"report.received", "device.alarm", "clock.watermark"})
UPDATE_TYPES = frozenset(
    {
        "case.acknowledged",
        "case.action_taken",
        "case.protection_granted",
        "case.closed",
        "case.override",
    }
)


@dataclass(frozen=True)
class Topics:
    """The pipeline's topic names under an optional prefix (``"test."``, ``"region-x."``)."""

    prefix: str = ""

    @cached_property
    def reports(self) -> str:
        """Reports and device alarms from upstream."""
        return f"{self.prefix}dv.reports.v1"

    @cached_property
    def updates(self) -> str:
        """Lifecycle events from responders."""
        return f"{self.prefix}dv.case-updates.v1"

    @cached_property
    def decisions(self) -> str:
        """The decision audit log (decisions and rejected overrides)."""
        return f"{self.prefix}dv.decisions.v1"

    @cached_property
    def deadletter(self) -> str:
        """Rejected input with its original bytes."""
        return f"{self.prefix}dv.deadletter.v1"

    def queue(self, name: str) -> str:
        """A protection queue topic."""
        return f"{self.prefix}dv.queue.{name}.v1"

    @cached_property
    def queues(self) -> tuple[str, ...]:
        """Every protection queue topic, supervisor included."""
        return tuple(self.queue(name) for name in QUEUE_NAMES)

    @cached_property
    def inputs(self) -> tuple[str, ...]:
        """The upstream input topics: written with any partitioner, any partition count.

        The worker's forwarding stage consumes them and re-writes each record into
        :attr:`internal`; the stateful stage reads only those.
        """
        return (self.reports, self.updates)

    @cached_property
    def internal_reports(self) -> str:
        """Reports as the forwarding stage re-wrote them: victim-keyed, our partitioner."""
        return f"{self.prefix}dv.internal.reports.v1"

    @cached_property
    def internal_updates(self) -> str:
        """Lifecycle events as the forwarding stage re-wrote them."""
        return f"{self.prefix}dv.internal.case-updates.v1"

    @cached_property
    def internal(self) -> tuple[str, ...]:
        """The internal (repartition) topics, one per input topic and in the same order:
        partitioned by murmur2 of the key into ``TRIAGE_PARTITIONS`` partitions,
        co-partitioned with the victim-state table. The stateful stage consumes them."""
        return (self.internal_reports, self.internal_updates)

    @cached_property
    def consumed(self) -> tuple[str, ...]:
        """Every topic the worker's consumer group reads: inputs and internal topics."""
        return (*self.inputs, *self.internal)

    @cached_property
    def _internal_of(self) -> dict[str, str]:
        return dict(zip(self.inputs, self.internal, strict=True))

    @cached_property
    def _upstream_of(self) -> dict[str, str]:
        return dict(zip(self.internal, self.inputs, strict=True))

    def internal_of(self, topic: str) -> str | None:
        """The internal topic an input topic is forwarded to (None for other topics)."""
        return self._internal_of.get(topic)

    def upstream_of(self, topic: str) -> str | None:
        """The input topic an internal topic is forwarded from (None for other topics)."""
        return self._upstream_of.get(topic)

    @cached_property
    def outputs(self) -> tuple[str, ...]:
        """The topics the worker produces to."""
        return (self.decisions, *self.queues, self.deadletter)

    @cached_property
    def _accepted(self) -> dict[str, frozenset[str]]:
        return {self.reports: REPORT_TYPES, self.updates: UPDATE_TYPES}

    def accepts(self, topic: str) -> frozenset[str]:
        """Event types that may arrive on ``topic`` (empty for a topic we do not consume)."""
        return self._accepted.get(topic, frozenset())

    def for_output(self, record: OutputEvent) -> str:
        """Where an output record is published."""
        if isinstance(record, Decision | OverrideRejected | CaseDormant):
            return self.decisions
        if isinstance(record, Escalation):
            return self.queue("supervisor")
        if isinstance(record, DeadLetter):
            return self.deadletter
        return self.queue(record.queue)

    def with_prefix(self, logical: str) -> str:
        """A canonical (unprefixed) topic name as this deployment spells it."""
        return f"{self.prefix}{logical}"

    def logical(self, topic: str) -> str:
        """The canonical name of a prefixed topic (as written in event logs)."""
        return topic[len(self.prefix) :] if self.prefix and topic.startswith(self.prefix) else topic
