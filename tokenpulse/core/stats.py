"""Percentiles and distribution summaries, exact (from every value, not from histogram buckets), with
their sample size and distribution-free confidence intervals.

Any finite values give finite figures: a report must not fail (or print `Infinity`) because a record
holds 1e308. Values that are not finite numbers (None, NaN, infinities, strings) are left out.

Intervals of a quantile (`quantile_interval`): the order-statistic interval. For n independent values
the number B of them below the true q-quantile is Binomial(n, q), whatever the distribution, so
[x_(l), x_(u)] (1-based order statistics) covers the quantile with probability P(l <= B < u). The ranks
are the widest-tail ones whose binomial tail stays at most (1 - confidence) / 2 on each side: exact
binomial sums when n * min(q, 1 - q) <= 1,000, the normal approximation with continuity correction
beyond (the binomial is then within a rank of normal). Coverage is at least the confidence level. When
n is too small for a bound (the p99 of 50 values has no upper one), that bound is None: the report
says "not enough samples" rather than a number that only looks like one.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Any

_MAX = sys.float_info.max

#: The percentiles every latency figure reports.
QUANTILES = (50, 90, 95, 99)
#: The percentiles that carry a confidence interval (`p50_ci`, ...), and its default level.
CI_QUANTILES = (50, 90, 95, 99)
CONFIDENCE = 0.95
#: Above this expected count in the smaller tail (n * min(q, 1 - q)), ranks come from the normal
#: approximation instead of the exact binomial sum (which costs that many terms).
_EXACT_TAIL = 1000.0


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


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile of a confidence level (0.95 -> 1.96)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def quantile_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order-statistic interval of the q-quantile (q in 0..1) of n values;
    None for a bound that n values cannot give at this confidence."""
    if n <= 0 or not 0.0 < q < 1.0:
        return None, None
    if q > 0.5:  # mirror: the q-quantile's ranks are those of the (1 - q)-quantile counted from the top
        lo, hi = quantile_ranks(n, 1.0 - q, confidence)
        return (None if hi is None else n + 1 - hi), (None if lo is None else n + 1 - lo)
    alpha = (1.0 - confidence) / 2.0
    if n * q > _EXACT_TAIL:
        sd = math.sqrt(n * q * (1.0 - q))
        z = z_value(confidence)
        lower = math.floor(n * q + 0.5 - z * sd)  # P(B <= l - 1) <= alpha, continuity-corrected
        upper = math.ceil(n * q + 0.5 + z * sd)  # P(B <= u - 1) >= 1 - alpha
        return (lower if lower >= 1 else None), (upper if upper <= n else None)
    # Exact: walk the binomial pmf up from k = 0 in log space (its first terms underflow harmlessly).
    log_ratio = math.log(q) - math.log1p(-q)
    log_pmf = n * math.log1p(-q)
    cdf = 0.0
    low_rank: int | None = None
    for k in range(n):
        cdf += math.exp(log_pmf)  # F(k) = P(B <= k)
        if cdf <= alpha:
            low_rank = k + 1  # rank l = k + 1 keeps P(B <= l - 1) <= alpha
        if cdf >= 1.0 - alpha:
            return low_rank, k + 1  # rank u = k + 1: P(B <= u - 1) >= 1 - alpha
        log_pmf += log_ratio + math.log((n - k) / (k + 1))
    return low_rank, None


def quantile_interval(sorted_values: Sequence[float], q: float,
                      confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The order-statistic confidence interval of the q-th percentile (q in 0..100) of sorted values."""
    lo, hi = quantile_ranks(len(sorted_values), q / 100.0, confidence)
    return (None if lo is None else float(sorted_values[lo - 1]),
            None if hi is None else float(sorted_values[hi - 1]))


def distribution(values: Iterable[Any], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """`{"n", "mean", "p50", "p90", "p95", "p99", "max", "p50_ci", "p95_ci", "p99_ci", "ci_level"}` of the
    finite values (None figures if empty); each `pNN_ci` is `[low, high]` (either may be None)."""
    return sorted_distribution(sorted(finite_values(values)), confidence)


def sorted_distribution(data: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """`distribution` of values that are already finite and sorted (the report's fast path)."""
    out: dict[str, Any] = {"n": len(data), "mean": data.mean if isinstance(data, CountedValues) else mean(data)}
    for q in QUANTILES:
        out[f"p{q}"] = percentile(data, q)
    out["max"] = float(data[-1]) if data else None
    for q in CI_QUANTILES:
        out[f"p{q}_ci"] = list(quantile_interval(data, q, confidence)) if data else [None, None]
    out["ci_level"] = confidence
    return out


class CountedValues(Sequence[float]):
    """A sorted sequence given as {integer value: count}, times `scale`: what a run's chunk gaps become
    (tens of millions of gaps, at the records' microsecond resolution, take a few thousand distinct
    values). Indexing by rank is a binary search, so `percentile` and `quantile_interval` read it exactly
    as they read a sorted list, with the same results."""

    def __init__(self, counts: dict[int, int], scale: float = 1.0) -> None:
        self._keys = sorted(k for k, c in counts.items() if c > 0)
        self._ends: list[int] = []
        total = 0
        for k in self._keys:
            total += counts[k]
            self._ends.append(total)
        self._scale = scale
        self._mean = (math.fsum(k * counts[k] for k in self._keys) * scale / total) if total else None

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int) -> float:  # type: ignore[override]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self._keys[bisect_right(self._ends, index)] * self._scale

    @property
    def mean(self) -> float | None:
        return self._mean


def counted_distribution(counts: dict[int, int], scale: float = 1.0,
                         confidence: float = CONFIDENCE) -> dict[str, Any]:
    """`distribution` of values given as counts of integers (times `scale`)."""
    return sorted_distribution(CountedValues(counts, scale), confidence)


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


def proportion_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The Wilson score interval of a binomial share (`successes` of `n`: a goodput, an availability, a
    cache hit rate); (None, None) when n is 0.

    Why Wilson and not p ± z·se: a share near 0 or 1 from a few hundred requests (a goodput of 98 %)
    is exactly where the normal interval leaves [0, 1] or shrinks to nothing at 100 %; Wilson's stays
    inside and keeps its coverage, which is what a pass/fail decision against a target share needs."""
    if n <= 0:
        return None, None
    z = z_value(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends: no 1e-17 from rounding
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


#: Two-sided 95 % Student t quantiles for 1..30 degrees of freedom (beyond 30 the normal's is within 4 %
#: and is corrected by the 2.4 / df term below).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t_value_95(df: int) -> float:
    """The two-sided 95 % Student t quantile for `df` degrees of freedom (small samples widen an interval)."""
    if df < 1:
        return math.inf
    if df <= len(_T95):
        return _T95[df - 1]
    return z_value(0.95) + 2.4 / df  # within 0.1 % of the exact quantile for df > 30


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict[str, Any] | None:
    """Ordinary least squares y = intercept + slope * x, with 95 % t intervals of both coefficients, the
    residual standard deviation and R². None with fewer than 3 points or no spread in x."""
    n = len(xs)
    if n < 3 or n != len(ys):
        return None
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    sse = math.fsum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    syy = math.fsum((y - my) ** 2 for y in ys)
    sd = math.sqrt(sse / (n - 2))
    se_slope = sd / math.sqrt(sxx)
    se_intercept = sd * math.sqrt(1.0 / n + mx * mx / sxx)
    t = t_value_95(n - 2)
    return {"n": n, "slope": slope, "slope_ci": [slope - t * se_slope, slope + t * se_slope],
            "intercept": intercept, "intercept_ci": [intercept - t * se_intercept, intercept + t * se_intercept],
            "residual_sd": sd, "r2": 1.0 - sse / syy if syy > 0 else None, "ci_level": 0.95}


def proportion(successes: int, n: int, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """A rate with its sample size and Wilson score interval (`proportion_interval`): `{n, k, rate, low,
    high, ci_level}`, the shape the validity tables print. No request to judge (n = 0): rate and bounds
    None."""
    if n <= 0:
        return {"n": 0, "k": 0, "rate": None, "low": None, "high": None, "ci_level": confidence}
    k = min(max(successes, 0), n)
    low, high = proportion_interval(k, n, confidence)
    return {"n": n, "k": k, "rate": k / n, "low": low, "high": high, "ci_level": confidence}
