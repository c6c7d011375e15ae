"""The bench's faust-ceiling part on the real embedded broker, with a tiny input."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from triage.bench.runner import faust_ceiling
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine

pytestmark = pytest.mark.integration


class TestFaustCeiling:
    """The bare Faust agent with a Table does the same work as the worker's input asks."""

    def test_every_input_gets_its_output(self, broker, tmp_path: Path) -> None:
        """A few hundred generated records give a rate, one output per input (records and
        watermarks) and per-key table counts 1..n."""
        config = GeneratorConfig(victims=60, days=14, start=date(2026, 2, 2), seed=12)
        records = list(generate_log(config, Engine()))
        assert 100 <= len(records) <= 1000

        figures = faust_ceiling(broker.bootstrap, records, tmp_path)

        assert figures["events_per_s"] > 0
        assert figures["inputs"] == len(records) + 4  # one clock watermark per partition
        assert figures["outputs"] == figures["inputs"]
        assert figures["missing"] == 0
        assert figures["table_counts_match"] is True
