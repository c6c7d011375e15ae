"""Small static SVG charts, drawn in Python: no JavaScript, no fonts, no network.

Each function returns one ``<svg>`` element (a string) that scales to the width
of its container, with a ``<title>`` for screen readers. Values are plain
numbers; labels are escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

from triage.replay.render import format_duration

LEVEL_COLOURS = {"P1": "#b03a2e", "P2": "#e67e22", "P3": "#d4ac0d", "P4": "#2e86c1"}
"""One colour per level, used by every chart and table of the pages."""
PALETTE = (
    "#34495e",
    "#16a085",
    "#8e44ad",
    "#c0392b",
    "#2980b9",
    "#d35400",
    "#7f8c8d",
    "#27ae60",
    "#f39c12",
)
DURATION_TICKS = (
    (60, "1 min"),
    (300, "5 min"),
    (900, "15 min"),
    (3600, "1 h"),
    (4 * 3600, "4 h"),
    (86400, "1 d"),
    (3 * 86400, "3 d"),
    (7 * 86400, "7 d"),
    (30 * 86400, "30 d"),
)

Formatter = Callable[[float], str]


def _fmt_count(value: float) -> str:
    return f"{value:,.0f}".replace(",", "\u202f")


TITLE_HEIGHT = 24


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    # The title is drawn (people read it) and also given as <title> (screen readers).
    total = height + TITLE_HEIGHT
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {total}" '
        f'role="img" class="chart" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title>"
        f'<text x="0" y="15" font-size="13" font-weight="600">{escape(title)}</text>'
        f'<g transform="translate(0,{TITLE_HEIGHT})">{"".join(body)}</g></svg>'
    )


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, cls: str = ""
) -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{klass}>'
        f"{escape(text)}</text>"
    )


def hbars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    colour: str | Mapping[str, str] = "#34495e",
    fmt: Formatter = _fmt_count,
    width: int = 540,
) -> str:
    """Horizontal bars, one per (label, value); a negative value is drawn as long as its size,
    in grey, and labelled with its sign."""
    row, label_w, value_w = 22, min(220, 12 + 7 * max((len(k) for k, _ in items), default=4)), 70
    height = row * len(items) + 8
    top = max((abs(v) for _, v in items), default=0.0) or 1.0
    span = width - label_w - value_w
    body = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        length = span * abs(value) / top
        fill = colour.get(label, "#34495e") if isinstance(colour, Mapping) else colour
        fill = fill if value >= 0 else "#95a5a6"
        body.append(_text(label_w - 6, y + 14, label, anchor="end"))
        body.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{fill}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
        )
        body.append(_text(label_w + length + 4, y + 14, fmt(value)))
    return _svg(width, height, title, body)


def columns(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    colours: Mapping[str, str] | None = None,
    width: int = 540,
    height: int = 240,
) -> str:
    """Stacked columns: one column per label, one coloured segment per series."""
    colours = colours or dict(zip(series, PALETTE, strict=False))
    left, bottom, top_pad, legend = 48, 22, 8, 18
    plot_h = height - bottom - top_pad - legend
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = _nice(max(totals, default=0.0) or 1.0)
    step = (width - left - 8) / max(len(labels), 1)
    body = _y_grid(left, width, top_pad + legend, plot_h, top)
    for i, label in enumerate(labels):
        x, base = left + i * step + step * 0.15, float(top_pad + legend + plot_h)
        for name, values in series.items():
            h = plot_h * values[i] / top
            base -= h
            body.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{colours.get(name, "#7f8c8d")}"><title>{escape(label)} · {escape(name)}: '
                f"{_fmt_count(values[i])}</title></rect>"
            )
        body.append(
            _text(
                x + step * 0.35,
                height - 6,
                label[-2:] if len(labels) > 8 else label,
                anchor="middle",
                size=10,
            )
        )
    body += _legend(list(series), colours, left, 12)
    return _svg(width, height, title, body)


def lines(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    colours: Mapping[str, str] | None = None,
    width: int = 540,
    height: int = 260,
) -> str:
    """Durations (seconds) over time on a logarithmic axis; gaps where a value is None."""
    colours = colours or dict(zip(series, PALETTE, strict=False))
    left, bottom, top_pad, legend = 56, 22, 8, 18
    plot_h = height - bottom - top_pad - legend
    values = [v for vs in series.values() for v in vs if v is not None and v > 0]
    low = math.log10(min(values, default=60.0) / 1.5)
    high = math.log10(max(values, default=86400.0) * 1.5)
    if high - low < 1:
        high = low + 1
    step = (width - left - 12) / max(len(labels) - 1, 1)

    def y_of(v: float) -> float:
        return top_pad + legend + plot_h * (1 - (math.log10(v) - low) / (high - low))

    body = []
    for seconds, name in DURATION_TICKS:
        if low <= math.log10(seconds) <= high:
            y = y_of(seconds)
            body.append(
                f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            )
            body.append(_text(left - 4, y + 4, name, anchor="end", size=10))
    for i, label in enumerate(labels):
        body.append(
            _text(
                left + i * step,
                height - 6,
                label[-2:] if len(labels) > 8 else label,
                anchor="middle",
                size=10,
            )
        )
    for name, vs in series.items():
        colour = colours.get(name, "#7f8c8d")
        for run in _runs(vs):
            points = " ".join(f"{left + i * step:.1f},{y_of(v):.1f}" for i, v in run)
            body.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
            for i, v in run:
                body.append(
                    f'<circle cx="{left + i * step:.1f}" cy="{y_of(v):.1f}" r="2.5" '
                    f'fill="{colour}"><title>{escape(name)} {escape(labels[i])}: '
                    f"{escape(duration(v))}</title></circle>"
                )
    body += _legend(list(series), colours, left, 12)
    return _svg(width, height, title, body)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None or v <= 0:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, v))
    return [r for r in runs if r]


def _legend(names: Sequence[str], colours: Mapping[str, str], x: float, y: float) -> list[str]:
    out = []
    for name in names:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" '
            f'fill="{colours.get(name, "#7f8c8d")}"/>'
        )
        out.append(_text(x + 14, y, name, size=10))
        x += 24 + 6.5 * len(name)
    return out


def _y_grid(left: float, width: float, top: float, plot_h: float, high: float) -> list[str]:
    out = []
    for k in range(5):
        value = high * k / 4
        y = top + plot_h * (1 - k / 4)
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(_text(left - 4, y + 4, _fmt_count(value), anchor="end", size=10))
    return out


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ not below ``value``."""
    exponent = 10.0 ** math.floor(math.log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0):
        if factor * exponent >= value:
            return factor * exponent
    return 10.0 * exponent


def duration(seconds: float | None) -> str:
    """A duration for people (same units as the terminal summary)."""
    return format_duration(seconds)
