"""Saturation knee of a sweep (or ramp): the highest load level the target still served well.

The rule, applied to the steps in increasing level order (level = concurrency for a sweep or ramp, the
arrival rate for a rate sweep), with X = aggregate output tokens/s (requests/s when no tokens were
counted), its standard error se(X) (report/figures.py), and T = TTFT p95 with its interval:

- per-unit throughput at the lowest level: b = X_0 / L_0;
- between consecutive levels, the step still scales unless the data *show* that it does not. The
  knee is stated at the lower level L_{i-1} only when the next level's throughput is not significantly
  above it (X_i - X_{i-1} < z * se of the difference) and, in addition, either
  - the gain is significantly below half of linear scaling: X_i - X_{i-1} + z * se < GAIN_RATIO * b *
    (L_i - L_{i-1}), or
  - TTFT p95 grew significantly past TTFT_FACTOR x its lowest-level value (the low end of T_i's interval
    above TTFT_FACTOR x the high end of T_0's; with >= MIN_SAMPLES successful requests in both steps);
- with z the two-sided normal quantile of CONFIDENCE (0.95 -> 1.96). When no step pair meets this, the
  answer is "no knee within the tested levels" (`level` None) with the reason: still scaling, or the
  differences are within the noise.

A step takes part only with at least MIN_STEP_OK successful requests: fewer is a count of a few
completions, whose throughput says nothing. Steps at the same level (`--levels 16,16`) are pooled into
one point (mean throughput, its se, summed counts): a repeated level has no gain to measure.

Why these: throughput that stops growing is the definition of saturation (the target's slots are full
and added users only queue); a TTFT that doubles is the same queueing seen from the client. Requiring
significance keeps a dip inside the noise (or a step that lost its slowest requests) from being read
as a knee: a knee found by noise is worse than none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokenpulse.core.stats import CONFIDENCE, z_value

GAIN_RATIO = 0.5
TTFT_FACTOR = 2.0
MIN_SAMPLES = 20
MIN_STEP_OK = 20
NO_KNEE = "no knee within the tested levels"

RULE_TEXT = (f"last level before the next one's throughput is not significantly above it (at "
             f"{CONFIDENCE:.0%}) and either its gain is significantly below {GAIN_RATIO:.0%} of linear scaling "
             f"from the lowest level or its TTFT p95 is significantly above {TTFT_FACTOR:g}x the lowest level's; "
             f"steps with >= {MIN_STEP_OK} successful requests only")


@dataclass(frozen=True, slots=True)
class StepPoint:
    level: float
    throughput: float | None
    ttft_p95: float | None
    ok: int
    throughput_se: float = 0.0
    ttft_p95_ci: tuple[float | None, float | None] = (None, None)


def _pool(points: Sequence[StepPoint]) -> StepPoint:
    """One point of several steps at the same level."""
    if len(points) == 1:
        return points[0]
    xs = [p.throughput for p in points if p.throughput is not None]
    ttfts = [p.ttft_p95 for p in points if p.ttft_p95 is not None]
    lows = [p.ttft_p95_ci[0] for p in points if p.ttft_p95_ci[0] is not None]
    highs = [p.ttft_p95_ci[1] for p in points if p.ttft_p95_ci[1] is not None]
    k = len(points)
    return StepPoint(level=points[0].level, throughput=sum(xs) / len(xs) if xs else None,
                     ttft_p95=sum(ttfts) / len(ttfts) if ttfts else None, ok=sum(p.ok for p in points),
                     throughput_se=math.sqrt(sum(p.throughput_se ** 2 for p in points)) / k,
                     ttft_p95_ci=(min(lows) if lows else None, max(highs) if highs else None))


def find_knee(points: Sequence[StepPoint], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """`{"level", "reason", "rule", "min_step_ok", "levels_used"}`; level None when there is no knee
    within the tested levels or it cannot be determined (the reason says which)."""
    eligible = [p for p in points if p.throughput is not None and p.level > 0 and p.ok >= MIN_STEP_OK]
    by_level: dict[float, list[StepPoint]] = {}
    for p in sorted(eligible, key=lambda p: p.level):
        by_level.setdefault(p.level, []).append(p)
    usable = [_pool(group) for group in by_level.values()]
    result: dict[str, Any] = {"level": None, "reason": None, "rule": RULE_TEXT, "min_step_ok": MIN_STEP_OK,
                              "levels_used": [p.level for p in usable]}
    if len(usable) < 2:
        result["reason"] = (f"{NO_KNEE}: needs at least two distinct levels with >= {MIN_STEP_OK} successful "
                            f"requests (have {len(usable)})")
        return result
    base = usable[0]
    assert base.throughput is not None
    if base.throughput <= 0:
        result["reason"] = f"{NO_KNEE}: no throughput at the lowest level"
        return result
    z = z_value(confidence)
    per_unit = base.throughput / base.level
    within_noise: list[str] = []
    for prev, cur in zip(usable, usable[1:], strict=False):
        assert prev.throughput is not None and cur.throughput is not None
        diff = cur.throughput - prev.throughput
        se = math.sqrt(prev.throughput_se ** 2 + cur.throughput_se ** 2)
        if diff > z * se:
            continue  # significantly above: still scaling
        expected = GAIN_RATIO * per_unit * (cur.level - prev.level)
        if diff + z * se < expected:
            result.update(level=prev.level,
                          reason=f"from {prev.level:g} to {cur.level:g} throughput changed by {diff:+.3g} "
                                 f"(±{z * se:.2g}), significantly below {GAIN_RATIO:.0%} of linear scaling "
                                 f"(+{expected:.3g})")
            return result
        base_hi, cur_lo = base.ttft_p95_ci[1], cur.ttft_p95_ci[0]
        if (base.ok >= MIN_SAMPLES and cur.ok >= MIN_SAMPLES and base_hi is not None and cur_lo is not None
                and base_hi > 0 and cur_lo > TTFT_FACTOR * base_hi):
            result.update(level=prev.level,
                          reason=f"from {prev.level:g} to {cur.level:g} throughput did not grow significantly "
                                 f"and TTFT p95 at {cur.level:g} is at least {cur_lo / base_hi:.1f}x its value at "
                                 f"{base.level:g} (interval bounds)")
            return result
        within_noise.append(f"{prev.level:g}->{cur.level:g}")
    if within_noise:
        result["reason"] = (f"{NO_KNEE}: throughput did not grow significantly from "
                            f"{', '.join(within_noise)}, but not significantly less than scaling either "
                            "(differences within the noise: longer steps would tell)")
    else:
        result["reason"] = f"{NO_KNEE}: throughput still grew significantly up to {usable[-1].level:g}"
    return result
