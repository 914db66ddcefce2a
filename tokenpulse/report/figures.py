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

from tokenpulse.core.slo import cancelled_broke_slo, meets_slo
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
    """Met every SLO (core/slo.py: TTFT, TPOT and, when set, E2E; from the scheduled arrival under a rate)."""
    return meets_slo(record, slo)


def _cancelled_judged(record: dict[str, Any], slo: dict[str, Any]) -> bool:
    """A cancelled request counts in goodput only when what it reached already broke the SLO (core/slo.py)."""
    return cancelled_broke_slo(record, slo)


def _interval(value: float | None, se: float | None) -> list[float | None]:
    if value is None or se is None:
        return [None, None]
    z = z_value(CONFIDENCE)
    return [max(0.0, value - z * se), value + z * se]


class Started:
    """What the requests *started* in a group's windows add up to; groups merge (a step's targets into
    `all`, a target's steps into its overall figures), so each record is visited once however many
    figures it takes part in. `count_gaps`: count the chunk gaps of successful requests here (when the
    run folder reader has not already counted them)."""

    def __init__(self, count_gaps: bool = True) -> None:
        self.requests = self.ok = self.cancelled = self.judged_cancelled = self.scheduled = 0
        self.good = self.good_tokens = self.all_out = self.prompt = self.reasoning = 0
        self.estimated = self.cost_unknown = 0
        self.errors: Counter[str] = Counter()
        self.values: dict[str, list[float]] = {name: [] for name in (*LATENCY_FIELDS, "output_tokens_per_s")}
        self.waits: list[float] = []
        self.from_schedule: list[float] = []
        self.costs: list[float] = []
        self.gaps: Counter[int] | None = Counter() if count_gaps else None

    def add(self, r: dict[str, Any], windows: Sequence[Window], slo: dict[str, Any]) -> None:
        self.requests += 1
        outcome = r.get("outcome")
        tokens = r.get("output_tokens") or 0
        self.all_out += tokens
        self.prompt += r.get("prompt_tokens") or 0
        self.reasoning += r.get("reasoning_tokens") or 0
        if r.get("tokens_estimated"):
            self.estimated += 1
        cost = r.get("estimated_cost_usd")
        if cost is None:
            self.cost_unknown += 1
        else:
            self.costs.append(cost)
        wait = r.get("queue_wait_s")
        if wait is not None:
            self.waits.append(wait)
            if _in(float(r["start_time"]) - wait, windows):
                self.scheduled += 1
        if outcome == "ok":
            self.ok += 1
            for name, bucket in self.values.items():
                v = r.get(name)
                if v is not None:
                    bucket.append(v)
            ttft = r.get("ttft_s")
            if wait is not None and ttft is not None:
                self.from_schedule.append(wait + ttft)
            if is_good(r, slo):
                self.good += 1
                self.good_tokens += tokens
            if self.gaps is not None:
                gap_counter(r.get("token_times_s"), self.gaps)
        elif outcome == CANCELLED:
            self.cancelled += 1
            if _cancelled_judged(r, slo):
                self.judged_cancelled += 1
        else:
            self.errors[str(r.get("error_class"))] += 1

    def sort_values(self) -> None:
        """Sort the value lists in place (their order means nothing): merged groups are then runs of
        sorted values, which the percentiles' sort merges in near-linear time."""
        for bucket in (*self.values.values(), self.waits, self.from_schedule):
            bucket.sort()

    @staticmethod
    def merged(parts: Sequence[Started]) -> Started:
        out = Started(count_gaps=all(p.gaps is not None for p in parts))
        for p in parts:
            for name in ("requests", "ok", "cancelled", "judged_cancelled", "scheduled", "good", "good_tokens",
                         "all_out", "prompt", "reasoning", "estimated", "cost_unknown"):
                setattr(out, name, getattr(out, name) + getattr(p, name))
            out.errors.update(p.errors)
            for name, bucket in out.values.items():
                bucket.extend(p.values[name])
            out.waits.extend(p.waits)
            out.from_schedule.extend(p.from_schedule)
            out.costs.extend(p.costs)
            if out.gaps is not None and p.gaps is not None:
                out.gaps.update(p.gaps)
        return out


class Happened:
    """What happened inside a group's windows, whichever request it belonged to (the throughput):
    output tokens whose event arrived inside, prompts sent inside, requests completed inside. Sums, so
    groups merge by adding (windows are disjoint)."""

    __slots__ = ("out_tokens", "out_sq", "in_tokens", "in_sq", "sent", "completed")

    def __init__(self) -> None:
        self.out_tokens = self.out_sq = self.in_tokens = self.in_sq = 0.0
        self.sent = self.completed = 0

    def add(self, r: dict[str, Any], windows: Sequence[Window]) -> None:
        part = tokens_in_windows(r, windows)
        self.out_tokens += part
        self.out_sq += part * part
        start = float(r["start_time"])
        if _in(start, windows):
            prompt = r.get("prompt_tokens") or 0
            self.in_tokens += prompt
            self.in_sq += prompt * prompt
            self.sent += 1
        if r.get("outcome") != CANCELLED and _in(start + float(r.get("e2e_s") or 0.0), windows):
            self.completed += 1

    @staticmethod
    def merged(parts: Sequence[Happened]) -> Happened:
        out = Happened()
        for p in parts:
            out.out_tokens += p.out_tokens
            out.out_sq += p.out_sq
            out.in_tokens += p.in_tokens
            out.in_sq += p.in_sq
            out.sent += p.sent
            out.completed += p.completed
        return out


def figures(started: Sequence[dict[str, Any]], pool: Iterable[dict[str, Any]], windows: Sequence[Window],
            slo: dict[str, Any], never_sent: int = 0, gaps: Counter[int] | None = None) -> dict[str, Any]:
    """Figures of the requests `started` in the windows; `pool` is every request of the same group
    (whatever step or phase) for the throughput over the windows; `never_sent`: scheduled arrivals of
    the windows that no user ever sent (open loop), which count as requests that were not good; `gaps`:
    the chunk gaps of the successful `started` requests in integer µs when already counted (report/run.py),
    else they are counted here from the token times."""
    acc = Started(count_gaps=gaps is None)
    for r in started:
        acc.add(r, windows, slo)
    happened = Happened()
    for r in pool:
        happened.add(r, windows)
    return finish(acc, happened, sum(w.length for w in windows), slo, never_sent, gaps)


def finish(acc: Started, happened: Happened, window_s: float, slo: dict[str, Any], never_sent: int = 0,
           gaps: Counter[int] | None = None) -> dict[str, Any]:
    """The figures of a group from its sums (see the module docstring for what counts where)."""
    finished = acc.requests - acc.cancelled
    errors = sum(acc.errors.values())
    out: dict[str, Any] = {
        "requests": acc.requests,
        "ok": acc.ok,
        "cancelled": acc.cancelled,
        "errors": errors,
        "error_rate": errors / finished if finished else None,
        "error_classes": dict(sorted(acc.errors.items())),
    }
    for name in LATENCY_FIELDS:
        out[name.removesuffix("_s")] = distribution(acc.values[name])
    out["chunk_gap"] = counted_distribution(gaps if gaps is not None else acc.gaps or Counter(), 1e-6)
    out["output_tps"] = distribution(acc.values["output_tokens_per_s"])
    if acc.waits:
        out["queue_wait"] = distribution(acc.waits)
        out["ttft_from_schedule"] = distribution(acc.from_schedule)
    h = happened

    def per_s(x: float) -> float | None:
        return x / window_s if window_s > 0 else None

    def se(sq: float) -> float | None:
        return math.sqrt(sq) / window_s if window_s > 0 else None

    out["throughput"] = {
        "window_s": window_s,
        "requests_per_s": per_s(h.completed), "requests_per_s_se": se(h.completed),
        "requests_per_s_ci": _interval(per_s(h.completed), se(h.completed)),
        "output_tokens_per_s": per_s(h.out_tokens), "output_tokens_per_s_se": se(h.out_sq),
        "output_tokens_per_s_ci": _interval(per_s(h.out_tokens), se(h.out_sq)),
        "input_tokens_per_s": per_s(h.in_tokens), "input_tokens_per_s_se": se(h.in_sq),
        "completed_requests": h.completed,
        "sent_per_s": per_s(h.sent),
    }
    if acc.waits:  # open loop: the rate the schedule offered (sent or not) and the rate users achieved
        out["rate"] = {"offered_per_s": per_s(acc.scheduled + never_sent), "achieved_per_s": per_s(h.sent),
                       "scheduled": acc.scheduled + never_sent, "sent": h.sent, "never_sent": never_sent}
    judged = finished + acc.judged_cancelled + never_sent
    out["goodput"] = {
        "requests": acc.good,
        "judged": judged,
        "never_sent": never_sent,
        "ratio": acc.good / judged if judged else None,
        "tokens_ratio": acc.good_tokens / acc.all_out if acc.all_out else None,
        "requests_per_s": acc.good / window_s if window_s > 0 else None,
        "slo": {"ttft_s": slo.get("ttft_s"), "tpot_s": slo.get("tpot_s"), "e2e_s": slo.get("e2e_s")},
    }
    out["cost_usd"] = math.fsum(acc.costs)
    out["cost_unknown_requests"] = acc.cost_unknown
    out["tokens"] = {"prompt": acc.prompt, "output": acc.all_out, "reasoning": acc.reasoning,
                     "estimated_requests": acc.estimated}
    return out
