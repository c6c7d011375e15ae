"""The soak's faults (``triage.reliability.faults``): the order of kills and freezes,
and the poison records with what the offline replay, the oracle, makes of them."""

from __future__ import annotations

from itertools import pairwise
from random import Random

import orjson
import pytest

from triage.pipeline.engine import Engine
from triage.reliability.faults import HUGE_KEY_BYTES, LARGE_VALUE_BYTES, plan, with_poison
from triage.reliability.soak import SoakConfig, soak_input, soak_log
from triage.replay.offline import replay_offline


class TestPlan:
    def test_each_kind_has_its_signals(self) -> None:
        """kill and freeze repeat theirs, poison has none, mixed alternates the two."""
        assert plan("kill", 3, Random(1)) == ["kill"] * 3
        assert plan("freeze", 2, Random(1)) == ["freeze"] * 2
        assert plan("poison", 3, Random(1)) == []
        mixed = plan("mixed", 4, Random(1))
        assert sorted(mixed) == ["freeze", "freeze", "kill", "kill"]
        assert all(a != b for a, b in pairwise(mixed))


@pytest.fixture(scope="module", name="poisoned")
def _poisoned() -> tuple[list[bytes], dict[str, object]]:
    """A short poisoned log's offline outputs, and its poison records by name."""
    log, poisons = soak_input(SoakConfig(fault="poison", events=400))
    outputs = [r.value for r in replay_offline(log, Engine())]
    return outputs, {p.name: p.record for p in poisons}


class TestPoison:
    def test_the_poison_is_spread_through_valid_records(self) -> None:
        """Four poison records of the promised sizes, each followed by valid records."""
        log = soak_log(SoakConfig(events=400))
        poisoned, poisons = with_poison(log, seed=62)

        sizes = {p.name: p.describe() for p in poisons}
        assert len(poisoned) == len(log) + 4
        assert sizes["huge_key"]["key_bytes"] == HUGE_KEY_BYTES
        assert sizes["huge_headers"]["header_bytes"] > 500_000
        assert sizes["large_value"]["value_bytes"] > LARGE_VALUE_BYTES
        places = [poisoned.index(p.record) for p in poisons]
        assert all(b - a > 50 for a, b in zip([-1, *places], places, strict=False))
        assert places[-1] < len(poisoned) - 50

    def test_the_oracle_dead_letters_the_bad_ones(
        self, poisoned: tuple[list[bytes], dict[str, object]]
    ) -> None:
        """Offline, the huge key, the bad value under huge headers and the 5 MiB value each
        make one bounded dead letter; the valid report under huge headers is decided."""
        outputs, _ = poisoned
        bodies = [orjson.loads(v) for v in outputs]
        letters = {b["reason"]: b for b in bodies if b["type"] == "triage.dead_letter"}
        decided = {b["source_event_id"] for b in bodies if b["type"] == "triage.decision"}

        assert {"key_mismatch", "invalid_json", "oversize"} <= set(letters)
        assert "evt-poison-62-1" in decided
        assert "evt-poison-62-0" not in decided
        assert max(len(v) for v in outputs) < 1024 * 1024
