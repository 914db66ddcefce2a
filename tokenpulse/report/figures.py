"""The figures of one group of requests over one measured window (DESIGN.md §2 definitions).

Which requests count:
- latency percentiles (TTFB, TTFT, TTFC, E2E, TPOT, chunk gaps, per-request output tokens/s) use the
  *successful* requests that *started* in the measured window: a failure's timings describe the failure;
- counts, error classes, goodput and cost use every request that started in the window;
- aggregate throughput uses what *happened* in the window, whichever request it belonged to: output
  tokens whose event arrived inside it (a request's output tokens spread evenly over its token events),
  input tokens of requests sent inside it, requests completed inside it; each divided by the window's
  length. So a request that straddles the window's edge counts for the part inside, and warm-up traffic
  never inflates a step.
- open loop (rate shape): `queue_wait` is the time a scheduled request waited for a free user, and
  `ttft_from_schedule` = queue wait + TTFT, the TTFT a real client arriving on schedule would have seen.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tokenpulse.core.stats import distribution

LATENCY_FIELDS = ("ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s")


@dataclass(frozen=True, slots=True)
class Window:
    """Unix-time interval [start, end) of a measured window (several for a pooled overall figure)."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


def tokens_in_windows(record: dict[str, Any], windows: Sequence[Window]) -> float:
    """Output tokens of one request whose events arrived inside the windows (token times are sorted,
    so each window is two binary searches)."""
    times = record.get("token_times_s") or []
    tokens = record.get("output_tokens") or 0
    if not times or not tokens:
        return 0.0
    start = float(record["start_time"])
    inside = 0
    for w in windows:
        inside += bisect_left(times, w.end - start) - bisect_left(times, w.start - start)
    return inside * tokens / len(times)


def _in(at: float, windows: Sequence[Window]) -> bool:
    return any(w.start <= at < w.end for w in windows)


def is_good(record: dict[str, Any], slo: dict[str, Any]) -> bool:
    """Met every SLO: succeeded, TTFT <= slo.ttft_s and TPOT <= slo.tpot_s (TPOT absent: one token)."""
    if record.get("outcome") != "ok":
        return False
    ttft = record.get("ttft_s")
    if ttft is None or ttft > float(slo.get("ttft_s", math.inf)):
        return False
    tpot = record.get("tpot_s")
    return tpot is None or tpot <= float(slo.get("tpot_s", math.inf))


def figures(started: Sequence[dict[str, Any]], pool: Iterable[dict[str, Any]], windows: Sequence[Window],
            slo: dict[str, Any]) -> dict[str, Any]:
    """Figures of the requests `started` in the windows; `pool` is every request of the same group
    (whatever step or phase) for the throughput over the windows."""
    ok = [r for r in started if r.get("outcome") == "ok"]
    errors = Counter(str(r.get("error_class")) for r in started if r.get("outcome") != "ok")
    window_s = sum(w.length for w in windows)
    out: dict[str, Any] = {
        "requests": len(started),
        "ok": len(ok),
        "errors": sum(errors.values()),
        "error_rate": (sum(errors.values()) / len(started)) if started else None,
        "error_classes": dict(sorted(errors.items())),
    }
    for name in LATENCY_FIELDS:
        out[name.removesuffix("_s")] = distribution(r.get(name) for r in ok)
    out["chunk_gap"] = distribution(_gaps(ok))
    out["output_tps"] = distribution(r.get("output_tokens_per_s") for r in ok)
    waits = [r.get("queue_wait_s") for r in started if r.get("queue_wait_s") is not None]
    if waits:
        out["queue_wait"] = distribution(waits)
        out["ttft_from_schedule"] = distribution(
            (r.get("queue_wait_s") or 0.0) + r["ttft_s"] for r in ok if r.get("ttft_s") is not None)
    out_tokens = in_tokens = completed = 0.0
    for r in pool:
        out_tokens += tokens_in_windows(r, windows)
        if _in(float(r["start_time"]), windows):
            in_tokens += r.get("prompt_tokens") or 0
        if _in(float(r["start_time"]) + float(r.get("e2e_s") or 0.0), windows):
            completed += 1
    out["throughput"] = {
        "window_s": window_s,
        "requests_per_s": completed / window_s if window_s > 0 else None,
        "output_tokens_per_s": out_tokens / window_s if window_s > 0 else None,
        "input_tokens_per_s": in_tokens / window_s if window_s > 0 else None,
    }
    good = [r for r in started if is_good(r, slo)]
    all_out = sum(r.get("output_tokens") or 0 for r in started)
    out["goodput"] = {
        "requests": len(good),
        "ratio": len(good) / len(started) if started else None,
        "tokens_ratio": (sum(r.get("output_tokens") or 0 for r in good) / all_out) if all_out else None,
        "requests_per_s": len(good) / window_s if window_s > 0 else None,
        "slo": {"ttft_s": slo.get("ttft_s"), "tpot_s": slo.get("tpot_s")},
    }
    costs = [r.get("estimated_cost_usd") for r in started]
    out["cost_usd"] = math.fsum(c for c in costs if c is not None)
    out["cost_unknown_requests"] = sum(1 for c in costs if c is None)
    out["tokens"] = {
        "prompt": sum(r.get("prompt_tokens") or 0 for r in started),
        "output": all_out,
        "reasoning": sum(r.get("reasoning_tokens") or 0 for r in started),
        "estimated_requests": sum(1 for r in started if r.get("tokens_estimated")),
    }
    return out


def _gaps(records: Iterable[dict[str, Any]]) -> Iterable[float]:
    for r in records:
        times = r.get("token_times_s") or []
        for a, b in zip(times, times[1:], strict=False):
            yield b - a
