"""What a step accumulates: output records, observations, or a refusal."""

from __future__ import annotations

from dataclasses import dataclass, field

from triage.events.outputs import OutputEvent
from triage.pipeline.observations import Observation

ENGINE_SOURCE = "urn:triage:engine"
"""CloudEvents ``source`` of every record the engine produces."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A well-formed event the state cannot accept; it goes to the dead-letter topic."""

    reason: str
    detail: str


@dataclass(slots=True)
class Effects:
    """Accumulates outputs and observations while a step runs."""

    outputs: list[OutputEvent] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    seen_ids: tuple[str, ...] = ()
    """The victim's recent event ids, this event's included. A handler that builds a
    new state puts them in it (one copy instead of two); the engine does otherwise."""

    def observe(self, observation: Observation) -> None:
        """Record an observation."""
        self.observations.append(observation)
