"""The capacity search, sans-IO: which level to try next, and whether a finished step met the SLO.

Why a state machine with no clock and no I/O: the decision of the next level is made live on the
Locust master (load/search.py), from the per-step tally of the records its workers send, and the
report judges the same steps again from the run folder's records. Both use this module, so the rule is
written once and tested without Locust: levels tried, pass/fail, the next level, the bracket.

The search (vocabulary of vllm bench sweep and guidellm's sweep: an exploration phase, then a
bisection):
- explore: start at `start`; while a level passes, double it (capped at `max_level`); when the very
  first level fails, halve it until one passes (or the lowest level fails: `below_min`);
- bisect: between the highest passing level `lo` and the lowest failing one `hi`, try the middle until
  `hi - lo` is within the resolution (1 user; for rates a share of `lo`, 10 % by default);
- the answer is `lo`, with the bracket `[lo, hi]`: the capacity lies in it, to the resolution.
  `above_max`: the cap itself passed (the capacity is at least that); `stopped`: `--max-steps` or
  `--max-cost` ended the search before the bracket was that narrow (the bracket so far is stated).

A step's verdict, from its tally: each criterion is a share with its Wilson interval (core/stats.py):
goodput (share of requests that met every objective of core/slo.py) against `goodput` (0.95 by
default), the error rate against `error_rate` when set, and each percentile objective (`ttft_p95 <=
1 s` is "at least 95 % of the successful requests had TTFT <= 1 s"). A criterion passes when its whole
interval is on the right side of its target, fails when its whole interval is on the wrong side, and
is *undecided* when the interval straddles the target. The step fails when any criterion fails,
is undecided when none fails but one is undecided, else passes. An undecided level is first *re-run*:
the next step is at the same level and its requests are pooled with the previous step's (up to
`repeats` more steps, 2 by default), since more requests narrow the interval; a level still undecided
then counts as failing: the answer is a level the data *show* meets the SLO, never one that only might,
and the report marks undecided levels so a longer `--step-time` can settle them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenpulse.core.slo import cancelled_broke_slo, meets_slo
from tokenpulse.core.stats import CONFIDENCE, proportion_interval

Verdict = Literal["pass", "fail", "undecided"]
PASS: Verdict = "pass"
FAIL: Verdict = "fail"
UNDECIDED: Verdict = "undecided"
DEFAULT_GOODPUT = 0.95
DEFAULT_MAX_STEPS = 12
#: An undecided level is re-run this many more times (requests pooled) before it counts as failing.
DEFAULT_REPEATS = 2
#: Default resolution of a rate search: the bracket's width as a share of its low end.
DEFAULT_RATE_RESOLUTION = 0.10
#: A rate search that keeps failing while halving gives up below this many requests per second.
MIN_RATE = 0.01
PERCENTILE_METRICS = ("ttft", "tpot", "e2e")
PERCENTILE_KEY = re.compile(r"^(ttft|tpot|e2e)_p(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class PercentileObjective:
    """`metric`'s `q`-th percentile <= `threshold_s`, over the successful requests of a step."""

    metric: str
    q: float
    threshold_s: float

    @property
    def name(self) -> str:
        return f"{self.metric}_p{self.q:g}"

    @staticmethod
    def parse(key: str, threshold_s: float) -> PercentileObjective:
        match = PERCENTILE_KEY.match(key)
        if match is None:
            raise ValueError(f"{key!r} is not a percentile objective (ttft_pNN, tpot_pNN or e2e_pNN)")
        q = float(match.group(2))
        if not 0 < q < 100:
            raise ValueError(f"{key!r}: the percentile must be between 0 and 100")
        return PercentileObjective(match.group(1), q, float(threshold_s))


@dataclass(frozen=True, slots=True)
class Criteria:
    """What a step must show to pass. `slo` holds the per-request thresholds of core/slo.py."""

    slo: Mapping[str, Any]
    goodput: float = DEFAULT_GOODPUT
    error_rate: float | None = None
    percentiles: tuple[PercentileObjective, ...] = ()
    confidence: float = CONFIDENCE

    @staticmethod
    def from_slo(slo: Mapping[str, Any], goodput: float = DEFAULT_GOODPUT,
                 confidence: float = CONFIDENCE) -> Criteria:
        """From an SLO mapping (meta.json's `slo`): thresholds, `error_rate`, `percentiles`."""
        pct = tuple(PercentileObjective.parse(k, v) for k, v in sorted((slo.get("percentiles") or {}).items()))
        rate = slo.get("error_rate")
        return Criteria(slo=dict(slo), goodput=goodput, error_rate=None if rate is None else float(rate),
                        percentiles=pct, confidence=confidence)

    def to_dict(self) -> dict[str, Any]:
        return {"goodput": self.goodput, "error_rate": self.error_rate, "confidence": self.confidence,
                "percentiles": {p.name: p.threshold_s for p in self.percentiles},
                "thresholds": {k: self.slo.get(k) for k in ("ttft_s", "tpot_s", "e2e_s")}}


@dataclass(slots=True)
class StepTally:
    """The counts of one step's measured requests that its verdict needs.

    `judged` is goodput's denominator: finished requests, cancelled ones that already broke the SLO,
    and `unresolved` ones (still unreported when the master had to decide, counted as not good: the
    decision never waits on, nor flatters itself with, requests it has not seen)."""

    judged: int = 0
    good: int = 0
    errors: int = 0
    ok: int = 0
    cancelled: int = 0
    unresolved: int = 0
    #: per percentile objective: successful requests within its threshold
    within: dict[str, int] = field(default_factory=dict)

    def add(self, record: Mapping[str, Any], criteria: Criteria) -> None:
        """One request (a JSONL record or a wire record: the same field names)."""
        outcome = record.get("outcome")
        slo = criteria.slo
        if outcome == "cancelled":
            self.cancelled += 1
            if cancelled_broke_slo(record, slo):
                self.judged += 1
            return
        self.judged += 1
        if outcome != "ok":
            self.errors += 1
            return
        self.ok += 1
        if meets_slo(record, slo):
            self.good += 1
        wait = record.get("queue_wait_s") or 0.0
        for p in criteria.percentiles:
            value = record.get(f"{p.metric}_s")
            if value is None:
                continue
            if p.metric != "tpot":
                value += wait  # from the scheduled arrival, as for goodput
            if value <= p.threshold_s:
                self.within[p.name] = self.within.get(p.name, 0) + 1

    def merged(self, other: StepTally) -> StepTally:
        """The counts of both (a level re-run: its steps' requests pooled)."""
        within = dict(self.within)
        for k, v in other.within.items():
            within[k] = within.get(k, 0) + v
        return StepTally(judged=self.judged + other.judged, good=self.good + other.good,
                         errors=self.errors + other.errors, ok=self.ok + other.ok,
                         cancelled=self.cancelled + other.cancelled, unresolved=self.unresolved + other.unresolved,
                         within=within)

    def add_unresolved(self, n: int) -> None:
        self.unresolved += n
        self.judged += n

    def to_dict(self) -> dict[str, Any]:
        return {"judged": self.judged, "good": self.good, "errors": self.errors, "ok": self.ok,
                "cancelled": self.cancelled, "unresolved": self.unresolved, "within": dict(self.within)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> StepTally:
        return StepTally(**{k: data[k] for k in ("judged", "good", "errors", "ok", "cancelled", "unresolved")},
                         within={str(k): int(v) for k, v in (data.get("within") or {}).items()})


def _check(name: str, k: int, n: int, target: float, *, at_least: bool, confidence: float) -> dict[str, Any]:
    lo, hi = proportion_interval(k, n, confidence)
    if lo is None or hi is None:
        verdict: Verdict = UNDECIDED
    elif at_least:
        verdict = PASS if lo >= target else FAIL if hi < target else UNDECIDED
    else:
        verdict = PASS if hi <= target else FAIL if lo > target else UNDECIDED
    return {"name": name, "share": k / n if n else None, "k": k, "n": n, "ci": [lo, hi], "target": target,
            "at_least": at_least, "verdict": verdict}


def judge(tally: StepTally, criteria: Criteria) -> dict[str, Any]:
    """The step's verdict and every criterion's share, n, interval and verdict (see the module doc)."""
    c = criteria.confidence
    checks = [_check("goodput", tally.good, tally.judged, criteria.goodput, at_least=True, confidence=c)]
    if criteria.error_rate is not None:
        checks.append(_check("error_rate", tally.errors, tally.judged, criteria.error_rate, at_least=False,
                             confidence=c))
    for p in criteria.percentiles:
        checks.append(_check(p.name, tally.within.get(p.name, 0), tally.ok, p.q / 100.0, at_least=True,
                             confidence=c))
    verdicts = {ch["verdict"] for ch in checks}
    verdict = FAIL if FAIL in verdicts else UNDECIDED if UNDECIDED in verdicts else PASS
    return {"verdict": verdict, "checks": checks, "tally": tally.to_dict()}


def parse_resolution(text: str) -> tuple[float, bool]:
    """`1` -> (1.0, absolute); `10%` -> (0.10, relative to the bracket's low end). Raises ValueError."""
    raw = text.strip()
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        raise ValueError(f"--resolution {text!r}: a number (levels) or a percentage such as 10%") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--resolution {text!r}: must be > 0")
    return (value / 100.0 if relative else value), relative


@dataclass(slots=True)
class Search:
    """Exploration then bisection over levels (users: whole numbers >= 1; rates: > 0 per second)."""

    start: float
    integer: bool
    resolution: float
    relative: bool = False
    max_level: float = math.inf
    max_steps: int = DEFAULT_MAX_STEPS
    repeats: int = DEFAULT_REPEATS
    tried: list[tuple[float, Verdict]] = field(default_factory=list)
    #: a level to run again (undecided, repeats left)
    repeat: float | None = None
    lo: float | None = None
    hi: float | None = None
    stopped_by: str | None = None

    def __post_init__(self) -> None:
        if self.start <= 0 or (self.integer and self.start != int(self.start)):
            raise ValueError("the search's start level must be > 0 (a whole number of users)")
        if self.start > self.max_level:
            raise ValueError(f"the search's start level {self.start:g} is above its cap {self.max_level:g}")
        if self.max_steps < 1:
            raise ValueError("--max-steps must be >= 1")

    @property
    def min_level(self) -> float:
        return 1.0 if self.integer else MIN_RATE

    def _narrow_enough(self, lo: float, hi: float) -> bool:
        width = hi - lo
        if self.integer and width <= 1:
            return True
        return width <= (self.resolution * lo if self.relative else self.resolution)

    def _round(self, level: float) -> float:
        return float(math.floor(level)) if self.integer else float(f"{level:.4g}")

    def runs_at_end(self) -> int:
        """How many of the last steps ran at the last step's level (1 unless a level was re-run)."""
        if not self.tried:
            return 0
        level, n = self.tried[-1][0], 0
        for lvl, _ in reversed(self.tried):
            if lvl != level:
                break
            n += 1
        return n

    def record(self, level: float, verdict: Verdict) -> None:
        """The verdict of the step run at `level` (with a re-run level: of its pooled steps). Undecided
        re-runs the level while repeats are left, then counts as failing."""
        self.tried.append((level, verdict))
        if verdict == UNDECIDED and self.runs_at_end() <= self.repeats:
            self.repeat = level
            return
        self.repeat = None
        if verdict == PASS:
            self.lo = level if self.lo is None else max(self.lo, level)
        else:
            self.hi = level if self.hi is None else min(self.hi, level)

    def stop(self, reason: str) -> None:
        """The run ends before the search does (`max_cost`, `interrupted`)."""
        self.stopped_by = self.stopped_by or reason

    def next_level(self) -> float | None:
        """The level of the next step, or None when the search is over (`status()` says why)."""
        if self.stopped_by is not None:
            return None
        if not self.tried:
            return float(self.start)
        level = self.repeat if self.repeat is not None else self._natural_next()
        if level is not None and len(self.tried) >= self.max_steps:
            self.stopped_by = "max_steps"
            return None
        return level

    def _natural_next(self) -> float | None:
        lo, hi = self.lo, self.hi
        if hi is None:  # everything passed so far: explore upwards
            assert lo is not None
            return None if lo >= self.max_level else min(self._round(lo * 2), self.max_level)
        if lo is None:  # everything failed so far: explore downwards
            level = self._round(hi / 2)
            return None if level < self.min_level or level >= hi else level
        if self._narrow_enough(lo, hi):
            return None
        mid = self._round((lo + hi) / 2)
        return mid if lo < mid < hi else None

    def status(self) -> str:
        """found | above_max | below_min | stopped (`stopped_by` says by what) | running."""
        if not self.tried:
            return "running"
        if self.repeat is None and self._natural_next() is None:
            if self.hi is None:
                return "above_max"
            return "below_min" if self.lo is None else "found"
        return "stopped" if self.stopped_by else "running"

    def answer(self) -> dict[str, Any]:
        return {"status": self.status(), "stopped_by": self.stopped_by, "level": self.lo,
                "bracket": [self.lo, self.hi], "resolution": self.resolution_text(),
                "tried": [{"level": lvl, "verdict": v} for lvl, v in self.tried]}

    def resolution_text(self) -> str:
        if self.relative:
            floor = " (at least 1 user)" if self.integer else ""
            return f"{self.resolution:.0%} of the lower level{floor}"
        if self.integer:
            return "1 user" if self.resolution <= 1 else f"{self.resolution:g} users"
        return f"{self.resolution:g} requests/s"


def bracket(results: list[tuple[float, Verdict]]) -> tuple[float | None, float | None]:
    """(highest passing level below every failing one, lowest failing level) of a set of step results
    (undecided counts as failing): what the report states from the records, whatever order they ran in."""
    final: dict[float, Verdict] = {}
    for lvl, v in results:  # a re-run level: its last verdict (of its pooled steps) stands
        final[lvl] = v
    failing = [lvl for lvl, v in final.items() if v != PASS]
    hi = min(failing) if failing else None
    passing = [lvl for lvl, v in final.items() if v == PASS and (hi is None or lvl < hi)]
    return (max(passing) if passing else None), hi
