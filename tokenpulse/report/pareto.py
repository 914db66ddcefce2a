"""The trade-off between per-user speed and total throughput: each level's point, and which are Pareto-optimal.

Why: a self-hosted fleet picks an operating point, not a maximum. More concurrency buys aggregate output
throughput (tokens/s over all requests) at the cost of each user's decode speed (the median of the
per-request output tokens/s). A level is Pareto-optimal when no other level of the same target is at
least as good on both and better on one; the others are never the right choice, whatever the SLO.

Sans-IO: summary figures in, points out (summary.json's `pareto`, report.html's plot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ParetoPoint:
    level: float
    throughput: float  # aggregate output tokens/s
    per_user: float  # median per-request output tokens/s
    n: int  # successful requests behind the median


def pareto_optimal(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (x, y) points where more is better on both axes: True where no other point dominates (>= on
    both, > on one). Equal points do not dominate each other (both stay optimal); a single point is
    optimal; a point with a non-finite coordinate is never optimal and never dominates."""
    finite = [math.isfinite(x) and math.isfinite(y) for x, y in points]
    out = []
    for i, (x, y) in enumerate(points):
        if not finite[i]:
            out.append(False)
            continue
        dominated = any(finite[j] and ox >= x and oy >= y and (ox > x or oy > y)
                        for j, (ox, oy) in enumerate(points) if j != i)
        out.append(not dominated)
    return out


def target_points(steps: Sequence[dict[str, Any]], name: str) -> list[ParetoPoint]:
    """A target's measured steps with both figures (levels without successful requests are left out)."""
    out = []
    for s in steps:
        if not s.get("measured"):
            continue
        f = s["targets"][name]
        tp = f["throughput"]["output_tokens_per_s"]
        speed = f["output_tps"]["p50"]
        if tp is not None and speed is not None:
            out.append(ParetoPoint(level=float(s["level"]), throughput=float(tp), per_user=float(speed),
                                   n=int(f["output_tps"]["n"])))
    return sorted(out, key=lambda p: p.level)  # a search runs its levels in the order it chose them


def pareto_summary(steps: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any] | None:
    """summary.json's `pareto`: per target, every level's point and whether it is Pareto-optimal
    (None for a run of one step: there is no trade-off to show)."""
    if sum(1 for s in steps if s.get("measured")) < 2:
        return None
    out: dict[str, Any] = {}
    for name in names:
        pts = target_points(steps, name)
        marks = pareto_optimal([(p.throughput, p.per_user) for p in pts])
        out[name] = [{"level": p.level, "output_tokens_per_s": p.throughput, "per_user_output_tps_p50": p.per_user,
                      "n": p.n, "optimal": m} for p, m in zip(pts, marks, strict=True)]
    return {"x": "aggregate output tokens/s", "y": "per-request output tokens/s (median)", "targets": out}
