"""Percentiles and distribution summaries, exact (from every value, not from histogram buckets).

Any finite values give finite figures: a report must not fail (or print `Infinity`) because a record
holds 1e308. Values that are not finite numbers (None, NaN, infinities, strings) are left out.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

_MAX = sys.float_info.max

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
    a, b = float(sorted_values[lo]), float(sorted_values[hi])
    span = b - a
    if span - span == 0.0:
        return a + span * (pos - lo)
    return a * (1.0 - (pos - lo)) + b * (pos - lo)  # b - a overflowed (-1e308 and 1e308): no difference


def mean(data: Sequence[float]) -> float | None:
    """Mean of finite values, finite even when their sum is not (1e308 twice)."""
    n = len(data)
    if n == 0:
        return None
    try:
        return math.fsum(data) / n
    except OverflowError:
        scaled = math.fsum(v / 4.0 / n for v in data) * 4.0  # each term below max/4: no overflow
        return min(max(scaled, min(data)), max(data))


def finite_values(values: Iterable[Any]) -> list[float]:
    """The values that are finite numbers (floats and ints that convert), in order."""
    return [v for v in values if (type(v) is float and v - v == 0.0) or (type(v) is int and -_MAX <= v <= _MAX)]


def distribution(values: Iterable[Any]) -> dict[str, Any]:
    """`{"n", "mean", "p50", "p90", "p95", "p99", "max"}` of the finite values (None figures if empty)."""
    data = sorted(finite_values(values))
    out: dict[str, Any] = {"n": len(data), "mean": mean(data)}
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
