"""Quantile intervals with known answers: the order-statistic (binomial) ranks, their coverage, and the
sample size every distribution carries."""

from __future__ import annotations

import math
import random

import pytest

from tokenpulse.core.stats import distribution, quantile_interval, quantile_ranks


def exact_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int | None, int | None]:
    """The same ranks from exact integer binomial sums (slow, for checking)."""
    alpha = (1 - confidence) / 2
    pmf = [math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(n + 1)]
    cdf, acc = [], 0.0
    for p in pmf:
        acc += p
        cdf.append(acc)
    lower = max((k + 1 for k in range(n) if cdf[k] <= alpha), default=None)
    upper = min((k + 1 for k in range(n) if cdf[k] >= 1 - alpha), default=None)
    return lower, upper


@pytest.mark.parametrize("n, q, ranks", [
    (100, 0.5, (40, 61)),   # the textbook interval of a median of 100 (Conover, Practical Nonparametric Statistics)
    (10, 0.5, (2, 9)),      # coverage 97.9 %: ranks 3..8 would give 89 %
    (20, 0.5, (6, 15)),
    (50, 0.99, (48, None)),  # the p99 of 50 values has no upper bound
    (5, 0.5, (None, None)),  # nor a median of 5 any bound at 95 % (1/32 per tail > 2.5 %)
])
def test_known_ranks(n: int, q: float, ranks: tuple[int | None, int | None]) -> None:
    assert quantile_ranks(n, q) == ranks


@pytest.mark.parametrize("n", [7, 30, 120, 400])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_ranks_match_exact_binomial_sums(n: int, q: float) -> None:
    assert quantile_ranks(n, q) == exact_ranks(n, q)


def test_normal_regime_is_within_a_rank_of_exact() -> None:
    n = 2500  # n * 0.5 > 1,000: the normal approximation
    lo, hi = quantile_ranks(n, 0.5)
    # exact ranks by integer arithmetic: P(B <= k) = sum comb(n, i) / 2^n
    total, acc, exact_lo, exact_hi = 2 ** n, 0, None, None
    for k in range(n):
        acc += math.comb(n, k)
        if acc * 40 <= total:
            exact_lo = k + 1
        if exact_hi is None and acc * 40 >= total * 39:
            exact_hi = k + 1
    assert exact_lo is not None and exact_hi is not None and lo is not None and hi is not None
    assert abs(lo - exact_lo) <= 1 and abs(hi - exact_hi) <= 1


def test_interval_covers_the_true_quantile_at_least_as_often_as_stated() -> None:
    rng = random.Random(7)
    true_median, true_p95 = math.log(2), -math.log(0.05)  # exponential(1)
    trials, hits50, hits95 = 400, 0, 0
    for _ in range(trials):
        data = sorted(rng.expovariate(1.0) for _ in range(200))
        lo, hi = quantile_interval(data, 50)
        hits50 += lo is not None and hi is not None and lo <= true_median <= hi
        lo, hi = quantile_interval(data, 95)
        hits95 += lo is not None and hi is not None and lo <= true_p95 <= hi
    assert hits50 / trials >= 0.93 and hits95 / trials >= 0.93  # nominal 95 %, binomial noise of 400 trials


def test_distribution_carries_n_and_intervals() -> None:
    d = distribution([float(i) for i in range(1, 101)])
    assert d["n"] == 100 and d["ci_level"] == 0.95
    assert d["p50_ci"] == [40.0, 61.0]
    assert d["p50_ci"][0] <= d["p50"] <= d["p50_ci"][1]
    assert d["p99_ci"][1] is None  # 100 values cannot bound a p99 from above
    empty = distribution([])
    assert empty["n"] == 0 and empty["p95"] is None and empty["p95_ci"] == [None, None]
