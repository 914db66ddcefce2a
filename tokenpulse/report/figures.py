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
  `ttft_from_schedule` = queue wait + TTFT, the TTFT a real client arriving on schedule would have seen;
  goodput then judges TTFT from the schedule, and arrivals that were never sent count as not good.
- `cancelled` requests (cut off at a step change or the run's end, with the timings they reached) are
  counted apart: neither errors of the target nor successes. They count in goodput's denominator (they
  did not meet the SLO for the user who sent them) only when the timings they reached already broke it.
- intervals: every percentile has its `n` and p50/p95/p99 an order-statistic interval (core/stats.py);
  throughputs carry a standard error `*_se` from the compound-Poisson model (completed requests arrive as
  a Poisson stream, each with its own token count: se = sqrt(sum of squared tokens) / window), which
  overstates the noise of a closed-loop run (more regular than Poisson), so a difference it calls
  significant is one.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tokenpulse.core.stats import CONFIDENCE, counted_distribution, distribution, z_value
from tokenpulse.report.run import gap_counter

LATENCY_FIELDS = ("ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s")
CANCELLED = "cancelled"


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
    for w in windows:
        if w.start <= at < w.end:
            return True
    return False


def is_good(record: dict[str, Any], slo: dict[str, Any]) -> bool:
    """Met every SLO: succeeded, TTFT <= slo.ttft_s and TPOT <= slo.tpot_s (TPOT absent: one token).
    Under an arrival rate, TTFT counts from the scheduled arrival (queue wait + TTFT)."""
    if record.get("outcome") != "ok":
        return False
    ttft = record.get("ttft_s")
    if ttft is None or ttft + (record.get("queue_wait_s") or 0.0) > float(slo.get("ttft_s", math.inf)):
        return False
    tpot = record.get("tpot_s")
    return tpot is None or tpot <= float(slo.get("tpot_s", math.inf))


def _cancelled_judged(record: dict[str, Any], slo: dict[str, Any]) -> bool:
    """A cancelled request counts in goodput only when what it reached already broke the SLO: it waited
    past the TTFT objective (queue wait + TTFT, or + its elapsed time when no token came) or its TPOT did."""
    wait = record.get("queue_wait_s") or 0.0
    ttft = record.get("ttft_s")
    reached = ttft if ttft is not None else record.get("e2e_s") or 0.0
    if wait + reached > float(slo.get("ttft_s", math.inf)):
        return True
    tpot = record.get("tpot_s")
    return tpot is not None and tpot > float(slo.get("tpot_s", math.inf))


def _interval(value: float | None, se: float | None) -> list[float | None]:
    if value is None or se is None:
        return [None, None]
    z = z_value(CONFIDENCE)
    return [max(0.0, value - z * se), value + z * se]


def figures(started: Sequence[dict[str, Any]], pool: Iterable[dict[str, Any]], windows: Sequence[Window],
            slo: dict[str, Any], never_sent: int = 0, gaps: Counter[int] | None = None) -> dict[str, Any]:
    """Figures of the requests `started` in the windows; `pool` is every request of the same group
    (whatever step or phase) for the throughput over the windows; `never_sent`: scheduled arrivals of
    the windows that no user ever sent (open loop), which count as requests that were not good; `gaps`:
    the chunk gaps of the successful `started` requests in integer µs when already counted (report/run.py),
    else they are counted here from the token times."""
    # One pass over the started requests (a million-record run visits each record four times).
    ok: list[dict[str, Any]] = []
    cancelled: list[dict[str, Any]] = []
    errors: Counter[str] = Counter()
    values: dict[str, list[float]] = {name: [] for name in (*LATENCY_FIELDS, "output_tokens_per_s")}
    waits: list[float] = []
    from_schedule: list[float] = []
    good = judged_cancelled = scheduled = cost_unknown = estimated = 0
    good_tokens = all_out = prompt_total = reasoning_total = 0
    costs: list[float] = []
    windows_list = list(windows)
    for r in started:
        outcome = r.get("outcome")
        tokens = r.get("output_tokens") or 0
        all_out += tokens
        prompt_total += r.get("prompt_tokens") or 0
        reasoning_total += r.get("reasoning_tokens") or 0
        if r.get("tokens_estimated"):
            estimated += 1
        cost = r.get("estimated_cost_usd")
        if cost is None:
            cost_unknown += 1
        else:
            costs.append(cost)
        wait = r.get("queue_wait_s")
        if wait is not None:
            waits.append(wait)
            if _in(float(r["start_time"]) - wait, windows_list):
                scheduled += 1
        if outcome == "ok":
            ok.append(r)
            for name, bucket in values.items():
                v = r.get(name)
                if v is not None:
                    bucket.append(v)
            ttft = r.get("ttft_s")
            if wait is not None and ttft is not None:
                from_schedule.append(wait + ttft)
            if is_good(r, slo):
                good += 1
                good_tokens += tokens
        elif outcome == CANCELLED:
            cancelled.append(r)
            if _cancelled_judged(r, slo):
                judged_cancelled += 1
        else:
            errors[str(r.get("error_class"))] += 1
    finished = len(started) - len(cancelled)
    window_s = sum(w.length for w in windows)
    out: dict[str, Any] = {
        "requests": len(started),
        "ok": len(ok),
        "cancelled": len(cancelled),
        "errors": sum(errors.values()),
        "error_rate": (sum(errors.values()) / finished) if finished else None,
        "error_classes": dict(sorted(errors.items())),
    }
    for name in LATENCY_FIELDS:
        out[name.removesuffix("_s")] = distribution(values[name])
    if gaps is None:
        gaps = Counter()
        for r in ok:
            gap_counter(r.get("token_times_s"), gaps)
    out["chunk_gap"] = counted_distribution(gaps, 1e-6)
    out["output_tps"] = distribution(values["output_tokens_per_s"])
    if waits:
        out["queue_wait"] = distribution(waits)
        out["ttft_from_schedule"] = distribution(from_schedule)
    out_tokens = in_tokens = completed = out_sq = in_sq = sent = 0.0
    for r in pool:
        part = tokens_in_windows(r, windows)
        out_tokens += part
        out_sq += part * part
        if _in(float(r["start_time"]), windows):
            prompt = r.get("prompt_tokens") or 0
            in_tokens += prompt
            in_sq += prompt * prompt
            sent += 1
        if r.get("outcome") != CANCELLED and _in(float(r["start_time"]) + float(r.get("e2e_s") or 0.0), windows):
            completed += 1

    def per_s(x: float) -> float | None:
        return x / window_s if window_s > 0 else None

    def se(sq: float) -> float | None:
        return math.sqrt(sq) / window_s if window_s > 0 else None

    out["throughput"] = {
        "window_s": window_s,
        "requests_per_s": per_s(completed), "requests_per_s_se": se(completed),
        "requests_per_s_ci": _interval(per_s(completed), se(completed)),
        "output_tokens_per_s": per_s(out_tokens), "output_tokens_per_s_se": se(out_sq),
        "output_tokens_per_s_ci": _interval(per_s(out_tokens), se(out_sq)),
        "input_tokens_per_s": per_s(in_tokens), "input_tokens_per_s_se": se(in_sq),
        "completed_requests": int(completed),
        "sent_per_s": per_s(sent),
    }
    if waits:  # open loop: the rate the schedule offered (sent or not) and the rate users achieved
        out["rate"] = {"offered_per_s": per_s(scheduled + never_sent), "achieved_per_s": per_s(sent),
                       "scheduled": scheduled + never_sent, "sent": int(sent), "never_sent": never_sent}
    judged = finished + judged_cancelled + never_sent
    out["goodput"] = {
        "requests": good,
        "judged": judged,
        "never_sent": never_sent,
        "ratio": good / judged if judged else None,
        "tokens_ratio": good_tokens / all_out if all_out else None,
        "requests_per_s": good / window_s if window_s > 0 else None,
        "slo": {"ttft_s": slo.get("ttft_s"), "tpot_s": slo.get("tpot_s")},
    }
    out["cost_usd"] = math.fsum(costs)
    out["cost_unknown_requests"] = cost_unknown
    out["tokens"] = {"prompt": prompt_total, "output": all_out, "reasoning": reasoning_total,
                     "estimated_requests": estimated}
    return out
