"""The HTML template of the analysis pages: one self-contained file, no script.

Styles are inline in the page; charts are inline SVG (:mod:`triage.analysis.svg`);
nothing is fetched from the network. Table cells that hold a figure carry it raw
in ``data-value`` so that tests (and anyone scraping the page) read exact numbers
while people read rounded ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

STYLE = """
:root { --ink: #1f2d3a; --muted: #5d6d7e; --line: #d5dbdb; --band: #f4f6f7; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); margin: 0; background: #fff; }
header { background: #1f2d3a; color: #fff; padding: 22px 32px 16px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: #d0d7de; }
main { max-width: 1080px; margin: 0 auto; padding: 8px 32px 48px; }
section { border-bottom: 1px solid var(--line); padding: 12px 0 20px; }
h2 { font-size: 19px; margin: 18px 0 8px; }
h3 { font-size: 15px; margin: 14px 0 6px; color: var(--muted); }
p.note { color: var(--muted); font-size: 13px; margin: 4px 0 10px; }
p.missing { color: #7b241c; background: #fdedec; padding: 6px 10px; border-radius: 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13.5px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th.t, td.t { text-align: left; }
td { white-space: nowrap; }
td.t:last-child { white-space: normal; }
thead th { background: var(--band); font-weight: 600; }
td.bad { color: #922b21; font-weight: 600; }
td.good { color: #1e8449; }
.grid-2 { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; align-items: start; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.kpi { background: var(--band); border-radius: 6px; padding: 10px 14px; min-width: 150px; }
.kpi b { display: block; font-size: 22px; }
.kpi span { color: var(--muted); font-size: 12.5px; }
svg.chart { width: 100%; height: auto; max-width: 760px; display: block; margin: 6px 0 12px; }
svg.chart text { fill: var(--ink); font-family: system-ui, sans-serif; }
svg.chart line.grid { stroke: #e5e8e8; stroke-width: 1; }
footer { color: var(--muted); font-size: 12.5px; max-width: 1080px; margin: 0 auto;
         padding: 0 32px 32px; }
@media print { header { background: #fff; color: #000; } .grid-2 { display: block; } }
"""


@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell: what people read, the exact figure behind it, a style class."""

    text: str
    value: float | int | str | None = None
    cls: str = ""


CellLike = Cell | str | int | float | None


def count(value: int | None) -> Cell:
    """A whole number with thin-space thousands (``12 345``); ``–`` when unknown."""
    if value is None:
        return Cell("–")
    return Cell(f"{value:,}".replace(",", "\u202f"), value)


def share(value: float | None, *, target: float | None = None) -> Cell:
    """A percentage; marked bad under ``target`` (0–1), good at or above it."""
    if value is None:
        return Cell("–")
    cls = "" if target is None else ("good" if value >= target else "bad")
    return Cell(f"{100 * value:.1f} %", round(value, 6), cls)


def _cell(item: CellLike) -> Cell:
    if isinstance(item, Cell):
        return item
    if item is None:
        return Cell("–")
    if isinstance(item, int):
        return count(item)
    if isinstance(item, float):
        return Cell(f"{item:,.1f}", item)
    return Cell(item)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[CellLike]],
    *,
    ident: str | None = None,
    text_columns: int = 1,
) -> str:
    """An HTML table; the first ``text_columns`` columns hold text (left-aligned), the rest
    figures (right-aligned)."""
    text = ' class="t"'
    head = "".join(
        f"<th{text if i < text_columns else ''}>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = []
        for i, item in enumerate(row):
            c = _cell(item)
            attrs = f' data-value="{escape(str(c.value))}"' if c.value is not None else ""
            classes = " ".join(k for k in (c.cls, "t" if i < text_columns else "") if k)
            attrs += f' class="{classes}"' if classes else ""
            cells.append(f"<td{attrs}>{escape(c.text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}">none</td></tr>')
    ident_attr = f' id="{escape(ident)}"' if ident else ""
    return (
        f"<table{ident_attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def kpis(items: Sequence[tuple[str, str]]) -> str:
    """Headline figures: (figure, what it counts)."""
    cards = "".join(
        f'<div class="kpi"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in items
    )
    return f'<div class="kpis">{cards}</div>'


def note(text: str, *, missing: bool = False) -> str:
    """A short explanatory paragraph (or a notice that a figure is unavailable)."""
    return f'<p class="{"missing" if missing else "note"}">{escape(text)}</p>'


def section(title: str, *parts: str, ident: str | None = None) -> str:
    """A titled section of the page (parts are HTML already)."""
    ident_attr = f' id="{escape(ident)}"' if ident else ""
    return f"<section{ident_attr}><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def side_by_side(left: str, right: str) -> str:
    """Two blocks in two columns (one column when printed)."""
    return f'<div class="grid-2"><div>{left}</div><div>{right}</div></div>'


def page(title: str, subtitle: str, sections: Sequence[str], footer: str) -> str:
    """A complete, self-contained HTML document."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<main>{''.join(sections)}</main>"
        f"<footer>{escape(footer)}</footer></body></html>\n"
    )


def h3(text: str) -> str:
    """A sub-heading inside a section."""
    return f"<h3>{escape(text)}</h3>"
