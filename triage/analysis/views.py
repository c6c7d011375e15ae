"""People-facing renderings of a comparison and a what-if: Markdown and HTML."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from triage.analysis import html
from triage.analysis.compare import LEVELS, CaseChange, Comparison
from triage.analysis.html import Cell
from triage.analysis.svg import hbars
from triage.analysis.whatif import POLICIES, WhatIf
from triage.replay.render import format_duration

Row = Sequence[str]


def md_table(headers: Row, rows: Sequence[Row], align: str = "") -> str:
    """A Markdown table; ``align`` is one letter per column (``l`` or ``r``, default right
    for every column but the first)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _n(value: int) -> str:
    return f"{value:,}"


def _delta(a: int, b: int) -> str:
    change = b - a
    pct = f" ({100 * change / a:+.1f} %)" if a else ""
    return f"{change:+,}{pct}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _dur_delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "–"
    sign = "+" if b >= a else "-"
    return f"{sign}{format_duration(abs(b - a))}"


def _change_row(c: CaseChange) -> Row:
    level = c.level_a if c.level_a == c.level_b else f"{c.level_a} → {c.level_b}"
    queues = (
        ", ".join(c.queues_a)
        if c.queues_a == c.queues_b
        else f"{', '.join(c.queues_a)} → {', '.join(c.queues_b)}"
    )
    return (
        c.victim_ref,
        f"{c.source_event_id} ({c.source_event_type})",
        c.time.strftime("%Y-%m-%d %H:%M"),
        level,
        queues,
    )


def _sections(c: Comparison) -> dict[str, tuple[Row, Sequence[Row]]]:
    """Every table of a comparison: title → (headers, rows)."""
    matrix = [(f"**{a}**", *(_n(c.matrix.get((a, b), 0)) for b in LEVELS)) for a in LEVELS]
    load = [(q, _n(a), _n(b), _delta(a, b)) for q, (a, b) in c.load.items()]
    reassess = [(q, _n(a), _n(b), _delta(a, b)) for q, (a, b) in c.reassessments.items()]
    times = [
        (
            lv,
            f"{_n(ta.records)} → {_n(tb.records)}",
            f"{format_duration(ta.p50_s)} → {format_duration(tb.p50_s)}",
            _dur_delta(ta.p50_s, tb.p50_s),
            f"{format_duration(ta.p90_s)} → {format_duration(tb.p90_s)}",
            _dur_delta(ta.p90_s, tb.p90_s),
            f"{_pct(ta.on_time)} → {_pct(tb.on_time)}",
        )
        for lv, (ta, tb) in c.response.items()
    ]
    return {
        "Transition matrix (rows: A, columns: B)": (("A \\ B", *LEVELS), matrix),
        "Load per queue (queue records, all kinds)": (("queue", "A", "B", "change"), load),
        "Re-assessments per queue": (("queue", "A", "B", "change"), reassess),
        "Time to action under the responder capacity model": (
            ("level", "records", "p50", "change", "p90", "change", "on time"),
            times,
        ),
    }


def _headline(c: Comparison) -> str:
    moves = Counter(ch.direction for ch in c.changes)
    return (
        f"{len(c.changes):,} of {c.decisions_a:,} decisions change level or queue, for "
        f"{c.victims_changed:,} victims: {moves.get('up', 0):,} up, {moves.get('down', 0):,} "
        f"down, {moves.get('same', 0):,} same level with other queues." + _one_sided_note(c)
    )


def _one_sided_note(c: Comparison) -> str:
    if not c.only_a and not c.only_b:
        return ""
    kinds = Counter(d.source_event_type for d in (*c.only_a, *c.only_b))
    what = ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items()))
    return (
        f" Decisions in one run only: {len(c.only_a):,} in A, {len(c.only_b):,} in B ({what});"
        " an override accepted under one rule set can be refused under the other, e.g. an"
        " upgrade to a level the other rule set already gives (not_an_upgrade)."
    )


def _teams(c: Comparison) -> str:
    return ", ".join(f"{q} {n}" for q, n in c.teams.items())


def comparison_markdown(c: Comparison, *, log_name: str, limit: int = 25) -> str:
    """``triage compare --format markdown``: for a pull request or an issue."""
    out = [
        f"# Rule-change impact: {c.version_a} → {c.version_b}",
        "",
        f"Log `{log_name}`: {c.events:,} records replayed under both rule sets (A = "
        f"`{c.version_a}`, B = `{c.version_b}`). Decisions are matched by victim and source "
        "event.",
        "",
        _headline(c),
        "",
        f"## Cases that change (first {min(limit, len(c.changes))} of {len(c.changes):,})",
        "",
        md_table(
            ("victim", "source event", "time (UTC)", "level", "queues"),
            [_change_row(ch) for ch in c.changes[:limit]],
            "lllll",
        ),
    ]
    for title, (headers, rows) in _sections(c).items():
        out += ["", f"## {title}", "", md_table(headers, rows)]
    out += [
        "",
        f"Responder teams (the demo's model, same for A and B): {_teams(c)}. Each team takes "
        "its queue's records P1 first, then by acknowledgement deadline; time to action runs "
        "from the queue record to the action, on time means by the record's action deadline. "
        "The log's own acknowledgements answered A's queues, so they are not used here.",
    ]
    return "\n".join(out) + "\n"


def comparison_html(c: Comparison, *, log_name: str, limit: int = 200) -> str:
    """``triage compare --format html``: the same tables as one self-contained page."""
    changes = html.table(
        ("victim", "source event", "time (UTC)", "level", "queues"),
        [_change_row(ch) for ch in c.changes[:limit]],
        ident="changes",
        text_columns=5,
    )
    load_chart = hbars(
        [(q, float(b - a)) for q, (a, b) in c.load.items() if b != a],
        title="Change in queue records per queue (B − A)",
        fmt=lambda v: f"{v:+,.0f}",
    )
    parts = [
        html.section(
            "Cases that change level or queue",
            html.note(_headline(c)),
            changes,
            html.note(
                f"First {min(limit, len(c.changes))} of {len(c.changes):,} shown; "
                "`--format json` lists every one."
            ),
        )
    ]
    for title, (headers, rows) in _sections(c).items():
        clean = [[Cell(v.strip("*")) for v in row] for row in rows]
        extra = load_chart if title.startswith("Load") and c.load else ""
        parts.append(html.section(title, html.table(headers, clean), extra))
    parts.append(html.section("Responder model", html.note(f"Teams: {_teams(c)}.")))
    return html.page(
        f"Rule-change impact: {c.version_a} → {c.version_b}",
        f"{log_name} · {c.events:,} records",
        parts,
        "Generated by `triage compare`. Synthetic data only.",
    )


def whatif_markdown(w: WhatIf, *, log_name: str) -> str:
    """``triage whatif``: time to action for every level, FIFO against priority."""
    headers = ["capacity", "utilisation", "policy"]
    for lv in LEVELS:
        headers += [f"{lv} p50", f"{lv} p90", f"{lv} on time"]
    rows = []
    for s in w.scenarios:
        row = [
            "unlimited" if s.capacity is None else str(s.capacity),
            "–" if s.utilisation is None else f"{s.utilisation:.0%}",
            s.policy,
        ]
        for f in s.levels.values():
            on_time = "–" if f.on_time is None else f"{f.on_time:.0%}"
            row += [format_duration(f.p50_s), format_duration(f.p90_s), on_time]
        rows.append(row)
    first = w.first.strftime("%Y-%m-%d") if w.first else "–"
    last = w.last.strftime("%Y-%m-%d") if w.last else "–"
    return (
        "\n".join(
            [
                f"# Capacity what-if: {' vs '.join(POLICIES)}",
                "",
                f"`{log_name}`: {w.records:,} queue records from {first} to {last}; handling them "
                f"takes {w.offered_load:.1f} responders working non-stop on average.",
                "",
                md_table(headers, rows, "rrl" + "r" * (len(headers) - 3)),
                "",
                "Time to action: from the queue record to the action. On time: acted on by the "
                "record's action deadline.",
            ]
        )
        + "\n"
    )


__all__ = ["comparison_html", "comparison_markdown", "md_table", "whatif_markdown"]
