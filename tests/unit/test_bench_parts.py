"""``triage bench --parts``: which parts run, faust-ceiling included (nothing is measured)."""

from __future__ import annotations

import warnings
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the runner imports it); with filterwarnings=error that fails collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    import triage.bench.runner as runner

from triage.cli import cli


class TestBenchParts:
    """The command line hands the chosen parts to the runner, and refuses unknown ones."""

    def test_default_runs_the_faust_ceiling_beside_baseline_and_worker(self) -> None:
        """Every part runs by default, the faust ceiling between the baseline and the worker."""
        parts = runner.BenchConfig().parts
        assert parts.index("baseline") < parts.index("faust-ceiling") < parts.index("pipeline")

    def test_faust_ceiling_can_be_chosen(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``--parts baseline,faust-ceiling,pipeline`` reaches the runner as given."""
        seen: dict[str, Any] = {}

        def fake_run(config: runner.BenchConfig, progress: Any = None) -> dict[str, Any]:
            seen["parts"] = config.parts
            return {"ok": True}

        monkeypatch.setattr(runner, "run_bench", fake_run)
        result = CliRunner().invoke(cli, ["bench", "--parts", "baseline,faust-ceiling,pipeline"])
        assert result.exit_code == 0, result.output
        assert seen["parts"] == ("baseline", "faust-ceiling", "pipeline")
        assert orjson.loads(result.output) == {"ok": True}

    def test_unknown_part_is_refused(self) -> None:
        """An unknown part name exits 2 before anything runs."""
        result = CliRunner().invoke(cli, ["bench", "--parts", "faust-floor"])
        assert result.exit_code == 2


class TestRatios:
    """Throughputs are shares of the ceilings measured in the same run."""

    def test_worker_is_given_against_both_ceilings(self) -> None:
        """The worker gets a ratio to the baseline and to the faust ceiling; the ceiling
        gets its own ratio to the baseline."""
        figures: dict[str, Any] = {
            "baseline": {"events_per_s": 20_000},
            "faust_ceiling": {"events_per_s": 3_000},
            "pipeline": {"events_per_s": 2_400},
        }
        runner._ratios(figures)
        assert figures["faust_ceiling"] == {"events_per_s": 3_000, "ratio_to_baseline": 0.15}
        assert figures["pipeline"]["ratio_to_baseline"] == 0.12
        assert figures["pipeline"]["ratio_to_faust_ceiling"] == 0.8

    def test_a_missing_ceiling_gives_no_ratio(self) -> None:
        """Without the faust-ceiling part the worker has only its baseline ratio."""
        figures: dict[str, Any] = {
            "baseline": {"events_per_s": 20_000},
            "pipeline": {"events_per_s": 2_000},
        }
        runner._ratios(figures)
        assert figures["pipeline"] == {"events_per_s": 2_000, "ratio_to_baseline": 0.1}


class TestFencingCosts:
    def test_each_cost_is_measured_and_set_against_the_worker(self) -> None:
        """The fencing part times the lease, the stamp and the recovery check, and gives
        their share of the worker's time per record when the pipeline ran."""
        from datetime import date

        from triage.bench.fencing import fencing_costs
        from triage.generate import GeneratorConfig, generate_log
        from triage.pipeline.engine import Engine

        config = GeneratorConfig(victims=20, days=5, start=date(2026, 1, 1), seed=3)
        records = list(generate_log(config, Engine()))

        figures = fencing_costs(records, {"events_per_s": 3000})

        assert figures["lease_check_us"] > 0
        assert figures["stamp_per_state_us"] > 0
        assert figures["recovery_check_per_record_us"] > 0
        assert figures["share_of_worker_time"] == pytest.approx(
            figures["per_record_us"] * 1e-6 * 3000, rel=0.01
        )
