"""Fixtures shared by every test, and the hypothesis profiles.

The core objects are immutable, so they are built once per session; that also
lets hypothesis tests use them (hypothesis refuses function-scoped fixtures).
Set ``TRIAGE_HYPOTHESIS_PROFILE=thorough`` for a longer, still deterministic run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from triage.pipeline.engine import Engine
from triage.routing.units import UnitDirectory, load_units
from triage.scoring.rules import RuleSet, load_rules
from triage.topics import Topics

settings.register_profile(
    "triage",
    derandomize=True,  # the same examples on every run and every machine
    database=None,  # nothing to replay when derandomized; keeps the tree clean
    max_examples=100,
    deadline=None,  # timing varies on shared CI runners; the suite has its own budget
    # Event logs are built from many small draws; generation is slow by hypothesis's
    # measure but the whole unit suite stays within its time budget.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("triage"), max_examples=1000)
settings.load_profile(os.environ.get("TRIAGE_HYPOTHESIS_PROFILE", "triage"))


@pytest.fixture(name="rules", scope="session")
def _rules() -> RuleSet:
    """The packaged rule set."""
    return load_rules()


@pytest.fixture(name="units", scope="session")
def _units() -> UnitDirectory:
    """The packaged commune → unit directory."""
    return load_units()


@pytest.fixture(name="engine", scope="session")
def _engine(rules: RuleSet, units: UnitDirectory) -> Engine:
    """An engine with the packaged rules and units (stateless, so shared)."""
    return Engine(rules, units)


@pytest.fixture(name="topics", scope="session")
def _topics() -> Topics:
    """Topic names without a prefix (the canonical names written in event logs)."""
    return Topics()
