"""Small inline-SVG line charts for report.html: no CDN, no JavaScript, readable without a network.

Why hand-written: the report must open from a CI artifact or an air-gapped machine, and the few plot
types it needs (CDF, metric against load, a trade-off curve, a time line) are a page of code. Axes get
"nice" ticks (1-2-5 steps, or decades on a log axis); a vertical dashed marker shows the knee. Charts
carry a viewBox and no fixed size: 900 units wide, they fill the page's width and scale with it, the
legend under the plot (report.html's CSS enlarges the text in SVG units on a phone, so that it stays
readable once scaled down).
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
    """One line. `color`: fixed by the caller (one colour per target across every plot), else by
    position; `step`: drawn as a step function (a value holds until the next point: an empirical CDF);
    `labels`: a text beside each point (the load level); `highlight`: per point, drawn filled and larger
    (True) or hollow (False), e.g. Pareto-optimal or dominated."""

    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    color: str | None = None
    step: bool = False
    labels: Sequence[str] | None = None
    highlight: Sequence[bool] | None = None


def target_colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per target, by its place in the run's target list, for every plot of the report."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


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


LEGEND_COLUMNS = 3
LEGEND_ROW = 24


def _label_spot(x: float, y: float, text: str, placed: list[tuple[float, float, float, float]]
                ) -> tuple[float, float, str]:
    """Where a point's label goes: above right of it, else below right, above left, below left, the
    first spot whose box overlaps no label already placed (points close together, as saturated levels
    are, would otherwise print their labels on top of each other); the box is remembered."""
    w, h = 8.0 * len(text) + 2, 13.0
    spots = ((x + 7, y - 7, ""), (x + 7, y + 17, ""), (x - 7, y - 7, ' text-anchor="end"'),
             (x - 7, y + 17, ' text-anchor="end"'))
    for tx, ty, anchor in spots:
        left = tx - w if anchor else tx
        box = (left, ty - h, left + w, ty)
        if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            placed.append(box)
            return tx, ty, anchor
    tx, ty, anchor = spots[0]
    return tx, ty, anchor


def _keep(x: float, y: float, log_x: bool) -> bool:
    return math.isfinite(x) and math.isfinite(y) and (not log_x or x > 0)


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str, x_unit: str = "",
               y_unit: str = "", log_x: bool = False, y_min: float | None = 0.0, y_max: float | None = None,
               marker_x: float | None = None, marker_label: str = "", markers: bool = False,
               width: int = 900, height: int = 330, x_range: tuple[float, float] | None = None,
               vlines: Sequence[float] = ()) -> str:
    """An SVG line chart with a viewBox (it scales to the page's width); `height` is the plot's with its
    axes, the legend adds a row per LEGEND_COLUMNS series under it. Points outside a log axis's
    domain (<= 0) are dropped. `x_range`: fixed x limits (plots that share a time axis); `vlines`: thin
    dotted vertical lines (step boundaries)."""
    left, right, top, bottom = 86, 24, 30, 50
    pw, ph = width - left - right, height - top - bottom
    pts = [(x, y) for s in series for x, y in s.points if _keep(x, y, log_x)]
    # The legend goes under the plot, LEGEND_COLUMNS entries a row: the plot keeps the full width, and
    # on a phone the legend stays in view.
    legend_top = height + 4
    total_height = legend_top + -(-len(series) // LEGEND_COLUMNS) * LEGEND_ROW
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {total_height}" '
             f'role="img" aria-label="{escape(title)}" class="chart">',
             f'<text x="{left}" y="19" class="title">{escape(title)}</text>']
    if not pts:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    xs = [p[0] for p in pts] + ([marker_x] if marker_x is not None and (not log_x or marker_x > 0) else [])
    ys = [p[1] for p in pts]
    x_lo, x_hi = x_range if x_range is not None else (min(xs), max(xs))
    if x_hi <= x_lo:
        x_lo, x_hi = (x_lo / 2, x_hi * 2) if log_x else (x_lo - 1, x_hi + 1)
    labelled = any(s.labels for s in series)
    if labelled and x_range is None and not log_x:  # room for the last point's label inside the plot
        x_hi += (x_hi - x_lo) * 0.06
    lo_y = min(ys) if y_min is None else min(y_min, min(ys))
    hi_y = max(ys) if y_max is None else y_max
    if labelled and y_max is None:  # and above the highest point
        hi_y += (hi_y - lo_y) * 0.08
    if hi_y <= lo_y:
        hi_y = lo_y + 1
    y_ticks = nice_ticks(lo_y, hi_y * 1.05 if y_max is None else hi_y)
    if y_max is None and len(y_ticks) > 1 and y_ticks[-1] < hi_y:  # the axis ends on a tick above the data
        y_ticks.append(round(y_ticks[-1] + (y_ticks[1] - y_ticks[0]), 12))
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
                     f'<text x="{x:.1f}" y="{top + ph + 17}" text-anchor="middle">{escape(fmt_tick(t, x_unit))}</text>')
    for v in vlines:
        if x_lo <= v <= x_hi and (not log_x or v > 0):
            parts.append(f'<line x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{top}" y2="{top + ph}" class="vline"/>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" class="label">'
                 f'{escape(x_label)}</text>'
                 f'<text x="16" y="{top + ph / 2}" text-anchor="middle" class="label y-label" '
                 f'transform="rotate(-90 16 {top + ph / 2})">{escape(y_label)}</text>')
    if marker_x is not None and x_lo <= marker_x <= x_hi and (not log_x or marker_x > 0):
        x = sx(marker_x)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" class="marker"/>'
                     f'<text x="{x + 4:.1f}" y="{top + 13}" class="marker-label">{escape(marker_label)}</text>')
    placed: list[tuple[float, float, float, float]] = []  # point-label boxes drawn so far
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        kept = [(j, sx(x), sy(y)) for j, (x, y) in enumerate(s.points)
                if _keep(x, y, log_x) and x_lo <= x <= x_hi]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        lx = left + (i % LEGEND_COLUMNS) * (pw // LEGEND_COLUMNS)
        ly = legend_top + (i // LEGEND_COLUMNS) * LEGEND_ROW + LEGEND_ROW / 2
        parts.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2.5"{dash}/>'
                     f'<text x="{lx + 30}" y="{ly + 5}" class="legend">{escape(s.name[:28])}</text>')
        if not kept:
            continue
        coords = [(x, y) for _, x, y in kept]
        if s.step:
            d = f"M{coords[0][0]:.1f},{sy(max(lo_y, 0.0)):.1f} V{coords[0][1]:.1f}"
            for x1, y1 in coords[1:]:
                d += f" H{x1:.1f} V{y1:.1f}"
            parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        else:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for j, x, y in kept:
            if s.highlight is not None:
                if s.highlight[j]:
                    parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5.5" fill="{color}" class="optimal"/>')
                else:
                    parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#fff" stroke="{color}" '
                                 'stroke-width="1.8"/>')
            elif markers:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
            if s.labels is not None and s.labels[j]:
                tx, ty, anchor = _label_spot(x, y, s.labels[j], placed)
                parts.append(f'<text x="{tx:.1f}" y="{ty:.1f}" class="pt-label" fill="{color}"{anchor}>'
                             f'{escape(s.labels[j])}</text>')
    parts.append("</svg>")
    return "".join(parts)
