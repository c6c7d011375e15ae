"""The generator's settings: a small frozen value object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratorConfig:
    """How big a synthetic log to write, over which period, from which seed.

    ``bad_rate`` is the share of malformed records in the output (0 for none);
    the good records are the same whatever its value.
    """

    victims: int = 12_000
    days: int = 365
    start: date = field(default_factory=lambda: date(2026, 1, 1))
    seed: int = 62
    bad_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.victims < 1:
            raise ValueError("victims must be at least 1")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if not 0.0 <= self.bad_rate < 1.0:
            raise ValueError("bad_rate must be in [0, 1)")

    def stream(self, name: str) -> str:
        """The seed text of one independent random stream (population, responders…).

        Separate streams keep, for example, the reports identical whatever the
        responders or the malformed records draw.
        """
        return f"triage.generate:{self.seed}:{name}"
