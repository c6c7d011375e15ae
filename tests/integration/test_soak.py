"""A short soak of each fault kind (``triage soak``, see ``triage.reliability.soak``):
a few hundred records through workers that are killed, frozen past the session
timeout or fed poison records. Nothing may be missing and no id may come with two
contents; the full run with thousands of records is ``make soak``.

Each run starts its own embedded broker (the soak owns its topics, group and
workers) and takes 15–50 s, a freeze being longer than the session timeout (10 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.reliability.faults import FAULT_KINDS, FaultKind
from triage.reliability.soak import SoakConfig, run_soak

pytestmark = pytest.mark.integration

SHORT = {"kill": 1, "freeze": 1, "poison": 0}
"""Kills or freezes of each short run. ``mixed`` (the three at once) runs in ``make soak``
only: each of its fault kinds has its short run here, and the suite must stay under
15 minutes on two cores."""


class TestShortSoak:
    @pytest.mark.parametrize("kind", [k for k in FAULT_KINDS if k in SHORT])
    def test_nothing_is_missing_and_nothing_differs(self, kind: FaultKind, tmp_path: Path) -> None:
        """A short soak of one fault kind decides every report and repeats only exact copies."""
        config = SoakConfig(
            fault=kind, events=600, faults=SHORT[kind], workdir=tmp_path, min_window=8.0,
            catch_up_timeout=90.0, stall_timeout=30.0,
        )  # fmt: skip

        result = run_soak(config)

        summary = {k: result[k] for k in ("missing", "same_id_different_content", "failures")}
        assert result["missing"] == 0, summary
        assert result["same_id_different_content"] == 0, summary
        assert len(result["fault_points"]) == SHORT[kind], result["problems"]
