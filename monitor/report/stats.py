"""Percentiles and distribution summaries, exact (from every value, not from histogram buckets)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

#: The percentiles every latency figure reports.
QUANTILES = (50, 90, 95, 99)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), q in 0..100. None when empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def distribution(values: Iterable[float | None]) -> dict[str, Any]:
    """`{"n", "mean", "p50", "p90", "p95", "p99", "max"}` of the non-None values (None figures if empty)."""
    data = sorted(v for v in values if v is not None and math.isfinite(v))
    out: dict[str, Any] = {"n": len(data), "mean": (math.fsum(data) / len(data)) if data else None}
    for q in QUANTILES:
        out[f"p{q}"] = percentile(data, q)
    out["max"] = data[-1] if data else None
    return out


def cdf_points(values: Iterable[float], max_points: int = 400) -> list[tuple[float, float]]:
    """(value, cumulative fraction) pairs of the empirical CDF, thinned to at most `max_points`."""
    data = sorted(values)
    n = len(data)
    if n == 0:
        return []
    step = max(1, n // max_points)
    points = [(data[i], (i + 1) / n) for i in range(0, n, step)]
    if points[-1][1] < 1.0:
        points.append((data[-1], 1.0))
    return points
