"""Small inline-SVG line charts for report.html: no CDN, no JavaScript, readable without a network.

Why hand-written: the report must open from a CI artifact or an air-gapped machine, and the few plot
types it needs (CDF, metric against load) are a page of code. Axes get "nice" ticks (1-2-5 steps, or
decades on a log axis); a vertical dashed marker shows the knee.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] with a 1, 2 or 5 x 10^k step."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    if not math.isfinite(raw):  # a range wider than a float holds (-1e308 to 1e308): its ends only
        return [lo, hi]
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        if value >= lo - step * 1e-9:
            ticks.append(round(value, 12))
        value += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade when the range is short, decades when it is long."""
    if not (0 < lo <= hi < math.inf):
        return [v for v in (lo, hi) if 0 < v < math.inf]
    lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1, 2, 5) if hi_e - lo_e <= 3 else (1,)
    return [m * 10 ** e for e in range(lo_e, hi_e + 1) for m in mults if lo <= m * 10 ** e <= hi]


def fmt_tick(value: float, unit: str = "") -> str:
    if unit == "s":
        if value == 0:
            return "0"
        return f"{value * 1000:g} ms" if abs(value) < 1 else f"{value:g} s"
    if unit == "%":
        return f"{value * 100:g}%"
    if abs(value) >= 10000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str, x_unit: str = "",
               y_unit: str = "", log_x: bool = False, y_min: float | None = 0.0, y_max: float | None = None,
               marker_x: float | None = None, marker_label: str = "", markers: bool = False,
               width: int = 640, height: int = 300) -> str:
    """An SVG line chart. Points outside a log axis's domain (<= 0) are dropped."""
    left, right, top, bottom = 64, 150, 28, 44
    pw, ph = width - left - right, height - top - bottom
    pts = [(x, y) for s in series for x, y in s.points if math.isfinite(x) and math.isfinite(y)
           and (not log_x or x > 0)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}" class="chart">',
             f'<text x="{left}" y="18" class="title">{escape(title)}</text>']
    if not pts:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    xs = [p[0] for p in pts] + ([marker_x] if marker_x is not None and (not log_x or marker_x > 0) else [])
    ys = [p[1] for p in pts]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = (x_lo / 2, x_hi * 2) if log_x else (x_lo - 1, x_hi + 1)
    lo_y = min(ys) if y_min is None else min(y_min, min(ys))
    hi_y = max(ys) if y_max is None else y_max
    if hi_y <= lo_y:
        hi_y = lo_y + 1
    y_ticks = nice_ticks(lo_y, hi_y * 1.05 if y_max is None else hi_y)
    lo_y, hi_y = min(y_ticks[0], lo_y), max(y_ticks[-1], hi_y)
    if log_x:
        l_lo, l_hi = math.log10(x_lo), math.log10(x_hi)
        x_ticks = log_ticks(x_lo, x_hi)

        def sx(x: float) -> float:
            return left + (math.log10(x) - l_lo) / (l_hi - l_lo) * pw
    else:
        x_ticks = nice_ticks(x_lo, x_hi)

        def sx(x: float) -> float:
            return left + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y: float) -> float:
        return top + ph - (y - lo_y) / (hi_y - lo_y) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot"/>')
    for t in y_ticks:
        y = sy(t)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt_tick(t, y_unit))}</text>')
    for t in x_ticks:
        if not (x_lo <= t <= x_hi):
            continue
        x = sx(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" class="grid"/>'
                     f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{escape(fmt_tick(t, x_unit))}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" class="label">'
                 f'{escape(x_label)}</text>'
                 f'<text x="14" y="{top + ph / 2}" text-anchor="middle" class="label" '
                 f'transform="rotate(-90 14 {top + ph / 2})">{escape(y_label)}</text>')
    if marker_x is not None and x_lo <= marker_x <= x_hi and (not log_x or marker_x > 0):
        x = sx(marker_x)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" class="marker"/>'
                     f'<text x="{x + 4:.1f}" y="{top + 12}" class="marker-label">{escape(marker_label)}</text>')
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        coords = [(sx(x), sy(y)) for x, y in s.points if math.isfinite(x) and math.isfinite(y) and (not log_x or x > 0)]
        if not coords:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        if markers:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{color}"/>' for x, y in coords]
        ly = top + 10 + i * 16
        parts.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 28}" y1="{ly}" y2="{ly}" stroke="{color}" '
                     f'stroke-width="2"{dash}/><text x="{left + pw + 32}" y="{ly + 4}">{escape(s.name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)
