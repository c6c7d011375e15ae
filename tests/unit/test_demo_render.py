"""The demo's summary: a plain fixed-width table when stdout is not a terminal (nothing
cut, nothing run together), and every column defined under its table in both cases."""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

from rich.console import Console

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the demo imports it); with filterwarnings=error that fails collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.demo.run import (
        LEVEL_COLUMNS,
        LEVELS_TITLE,
        QUEUES_TITLE,
        _render,
        plain_table,
        render_plain,
    )


def figures(**extra: Any) -> dict[str, Any]:
    """Summary figures shaped as ``summarize`` returns them, with wide values in them."""
    row = {
        "decisions": 1234567,
        "queue_records": 2345678,
        "acknowledged": 3456789,
        "ack_p50_s": 120.0,
        "ack_p90_s": 4074.779,
        "acted": 12,
        "action_p50_s": 840.0,
        "action_p90_s": None,
        "waiting": 62,
        "ack_breaches": 17,
        "action_breaches": 16,
    }
    return {
        "levels": {lv: dict(row) for lv in ("P1", "P2", "P3", "P4")},
        "queue_records": {
            "child-protection": {"P1": 5, "P2": 35, "P3": 40, "P4": 20},
            "a-queue-with-a-very-long-name-indeed": {"P1": 0, "P2": 0, "P3": 76, "P4": 0},
        },
        "dead_letters": 7,
        "responder_updates": 773,
        "still_waiting": 62,
        "differences_from_plan": [],
        "seconds": 87.1,
        **extra,
    }


def table_lines(text: str, title: str) -> list[str]:
    """The title, header, rule and rows of the plain table called ``title``."""
    lines = text.splitlines()
    start = lines.index(title)
    end = start + 1
    while end < len(lines) and lines[end] and not lines[end].startswith("  "):
        end += 1
    return lines[start:end]


class TestPlainTable:
    def test_cells_are_whole_and_aligned(self) -> None:
        """Every cell in full; columns as wide as their widest cell; numbers right-aligned."""
        text = plain_table("T", ["name", "n"], [["a-long-name", "1"], ["b", "123456"]])

        assert text.splitlines() == [
            "T",
            "name              n",
            "-----------  ------",
            "a-long-name       1",
            "b            123456",
        ]


class TestRenderPlain:
    def test_every_column_is_defined_under_the_table(self) -> None:
        """Each column of the per-level table has a line saying what it counts."""
        text = render_plain(figures())
        lines = text.splitlines()
        header = table_lines(text, LEVELS_TITLE)[1]
        names = [name for name, _ in LEVEL_COLUMNS]

        assert re.split(r"\s{2,}", header.strip()) == names
        for name, meaning in LEVEL_COLUMNS:
            assert any(
                re.fullmatch(rf"  {re.escape(name)}\s+{re.escape(meaning)}", x) for x in lines
            )
        assert "handled" not in text

    def test_nothing_is_cut_or_run_together(self) -> None:
        """Headers and values in full (no ellipsis), one row per line, whatever the width."""
        text = render_plain(figures())
        levels = table_lines(text, LEVELS_TITLE)
        queues = table_lines(text, QUEUES_TITLE)

        assert "…" not in text
        assert len(levels) == 3 + 4  # title, header, rule, one row per level
        assert [row.split()[0] for row in levels[3:]] == ["P1", "P2", "P3", "P4"]
        assert "3456789" in levels[3]
        assert any(row.startswith("a-queue-with-a-very-long-name-indeed ") for row in queues)
        assert len({len(line) for line in levels[1:3]}) == 1  # header as wide as the rule
        assert "\x1b" not in text

    def test_the_check_against_the_plan_is_reported(self) -> None:
        """Counts that differ from the plan's are named; the same counts are said so."""
        assert "exactly the counts of the plan" in render_plain(figures())
        differing = render_plain(figures(differences_from_plan=["decisions P2: 71 ≠ 72"]))
        assert "differ from the plan's offline run: decisions P2: 71 ≠ 72" in differing


class TestRender:
    def test_not_a_terminal_gets_the_plain_text(self) -> None:
        """Written to a file (``make demo > log``): the plain text, no box drawing."""
        out = io.StringIO()
        _render(figures(), Console(file=out, force_terminal=False, width=80))

        assert out.getvalue() == render_plain(figures())

    def test_a_terminal_gets_tables_and_the_definitions(self) -> None:
        """On a wide terminal: rich tables, headers whole, then what each column counts."""
        out = io.StringIO()
        _render(figures(), Console(file=out, force_terminal=True, width=200, color_system=None))
        text = out.getvalue()

        assert text != render_plain(figures())
        assert "…" not in text
        assert "─" in text
        for name, meaning in LEVEL_COLUMNS:
            assert all(word in text for word in name.split())
            assert f"  {name}" in text
            assert meaning in text

    def test_a_narrow_terminal_gets_the_plain_text(self) -> None:
        """A terminal too narrow for the table: the plain text (the terminal wraps it),
        rather than headers and values cut to fit."""
        out = io.StringIO()
        _render(figures(), Console(file=out, force_terminal=True, width=80, color_system=None))

        assert out.getvalue() == render_plain(figures())
