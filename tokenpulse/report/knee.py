"""Saturation knee of a sweep (or ramp): the highest load level the target still served well.

The rule, applied to the steps in increasing level order (level = concurrency for a sweep or ramp, the
arrival rate for a rate sweep), with X = aggregate output tokens/s (requests/s when no tokens were
counted) and T = TTFT p95:

- per-unit throughput at the lowest level: b = X_0 / L_0;
- step i (i >= 1) still scales when the throughput gained per added unit of load,
  (X_i - X_{i-1}) / (L_i - L_{i-1}), is at least GAIN_RATIO x b, *and* T_i <= TTFT_FACTOR x T_0;
- the knee is the level of the last step before the first one that does not scale. When every step
  scales, the knee was not reached within the levels tested (`level` is None).

A step takes part only with at least MIN_STEP_OK successful requests (its throughput is otherwise a
count of a few completions), and the TTFT criterion is only applied when both steps have at least
MIN_SAMPLES: a p95 of a handful of requests is noise, and a knee found by noise would be worse than none.

Why these two: throughput that stops growing is the definition of saturation (the target's slots are
full and added users only queue); a TTFT that doubles is the same queueing seen from the client, and
catches targets that keep throughput up by batching harder at the users' expense.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GAIN_RATIO = 0.5
TTFT_FACTOR = 2.0
MIN_SAMPLES = 20
MIN_STEP_OK = 5

RULE_TEXT = (f"last level before the throughput gained per added unit of load falls below "
             f"{GAIN_RATIO:.0%} of the per-unit throughput at the lowest level, or TTFT p95 exceeds "
             f"{TTFT_FACTOR:g}x its lowest-level value (TTFT checked with >= {MIN_SAMPLES} requests per step)")


@dataclass(frozen=True, slots=True)
class StepPoint:
    level: float
    throughput: float | None
    ttft_p95: float | None
    ok: int


def find_knee(points: Sequence[StepPoint]) -> dict[str, Any]:
    """`{"level", "reason", "rule"}`; level None when not reached or not determinable."""
    usable = [p for p in sorted(points, key=lambda p: p.level)
              if p.throughput is not None and p.level > 0 and p.ok >= MIN_STEP_OK]
    result: dict[str, Any] = {"level": None, "reason": None, "rule": RULE_TEXT}
    if len(usable) < 2:
        result["reason"] = f"needs at least two steps with >= {MIN_STEP_OK} successful requests"
        return result
    base = usable[0]
    assert base.throughput is not None
    if base.throughput <= 0:
        result["reason"] = "no throughput at the lowest level"
        return result
    per_unit = base.throughput / base.level
    for i in range(1, len(usable)):
        prev, cur = usable[i - 1], usable[i]
        assert prev.throughput is not None and cur.throughput is not None
        gain = (cur.throughput - prev.throughput) / (cur.level - prev.level)
        if gain < GAIN_RATIO * per_unit:
            result.update(level=prev.level,
                          reason=f"from {prev.level:g} to {cur.level:g} throughput gained {gain:.3g}/unit "
                                 f"(< {GAIN_RATIO:.0%} of {per_unit:.3g}/unit at {base.level:g})")
            return result
        if (base.ttft_p95 and cur.ttft_p95 and base.ok >= MIN_SAMPLES and cur.ok >= MIN_SAMPLES
                and cur.ttft_p95 > TTFT_FACTOR * base.ttft_p95):
            result.update(level=prev.level,
                          reason=f"TTFT p95 at {cur.level:g} is {cur.ttft_p95 / base.ttft_p95:.1f}x "
                                 f"its value at {base.level:g}")
            return result
    result["reason"] = f"not reached: throughput still scaled at {usable[-1].level:g}"
    return result
