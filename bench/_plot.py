"""A dependency-free SVG line chart for the benchmark results.

The dashboard draws its charts with Plotly in the browser; a saved benchmark result
needs a picture that opens anywhere (GitHub renders SVG, and nothing is fetched),
so this writes the SVG elements itself: one colour per series group, a thick line
for the group's mean over runs and a thin one for each run, optional horizontal
reference lines, and a legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe-Ito's colour-blind-friendly palette (its pale yellow swapped for brown, legible on white), then greys
PALETTE = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#8C564B", "#0072B2", "#D55E00", "#CC79A7",
           "#999999", "#666666", "#7B3294", "#1B7837", "#BBBBBB"]
DASHES = ["", "6 3", "2 3", "8 3 2 3"]


@dataclass(frozen=True)
class Group:
    """Runs of one configuration: one y-series per run, all the same length as the x axis."""

    name: str
    runs: Sequence[Sequence[float]]
    dash: int = 0  # index into DASHES, to tell modes apart beyond colour


@dataclass(frozen=True)
class Reference:
    """A labelled horizontal line, e.g. a target or the chance level."""

    y: float
    label: str


def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    step = (hi - lo) / max(n - 1, 1)
    magnitude = 10 ** math.floor(math.log10(step)) if step > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if step <= m * magnitude:
            step = m * magnitude
            break
    first = math.ceil(lo / step) * step
    out, v = [], first
    while v <= hi + 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def line_chart(
    groups: Sequence[Group],
    *,
    title: str,
    x_label: str,
    y_label: str,
    references: Sequence[Reference] = (),
    y_range: tuple[float, float] | None = None,
    width: int = 900,
    height: int = 520,
) -> str:
    """The SVG document. x runs 1..n (rounds); every run of every group must have n points."""
    lengths = {len(r) for g in groups for r in g.runs}
    if not groups or not lengths:
        raise ValueError("line_chart needs at least one group with at least one run")
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"every run must have the same, non-zero number of points; got lengths {sorted(lengths)}")
    n = lengths.pop()
    values = [v for g in groups for r in g.runs for v in r] + [ref.y for ref in references]
    if any(not math.isfinite(v) for v in values):
        raise ValueError("line_chart: every value must be finite")
    lo, hi = y_range if y_range else (min(values), max(values))
    if hi <= lo:
        lo, hi = lo - 1, hi + 1

    legend_w = 260
    left, right, top, bottom = 64, legend_w + 20, 44, 52
    pw, ph = width - left - right, height - top - bottom

    def px(i: int) -> float:  # point i (0-based) -> x pixel
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def py(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>']
    for t in _ticks(lo, hi):  # y grid and labels
        y = py(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    step = max(1, math.ceil(n / 15))
    for i in range(0, n, step):  # x labels: 1..n
        out.append(f'<text x="{px(i):.1f}" y="{top + ph + 18}" text-anchor="middle">{i + 1}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888888"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 12}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    for ref in references:
        y = py(ref.y)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#555555" '
                   'stroke-dasharray="4 4"/>')
        out.append(f'<text x="{left + pw - 4}" y="{y - 4:.1f}" text-anchor="end" fill="#555555">'
                   f'{escape(ref.label)}</text>')

    for gi, g in enumerate(groups):
        colour = PALETTE[gi % len(PALETTE)]
        dash = DASHES[g.dash % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series" data-name="{escape(g.name)}">')
        for run in g.runs:  # each run, thin
            pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(run))
            out.append(f'<polyline class="run" points="{pts}" fill="none" stroke="{colour}" stroke-width="1" '
                       f'stroke-opacity="0.45"{dash_attr}/>')
        mean = [sum(r[i] for r in g.runs) / len(g.runs) for i in range(n)]
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(mean))
        out.append(f'<polyline class="mean" points="{pts}" fill="none" stroke="{colour}" stroke-width="2.5"'
                   f'{dash_attr}/>')
        out.append("</g>")
        ly = top + 8 + 18 * gi  # legend entry
        lx = width - legend_w
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{colour}" stroke-width="2.5"'
                   f'{dash_attr}/>')
        out.append(f'<text x="{lx + 34}" y="{ly + 4}">{escape(g.name)}</text>')
    note_y = top + 8 + 18 * len(groups) + 10
    out.append(f'<text x="{width - legend_w}" y="{note_y}" fill="#555555">thick: mean over runs; thin: each run'
               '</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
