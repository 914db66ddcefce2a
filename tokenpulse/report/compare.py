"""Comparing a run with a baseline, and the `--fail-on` rules that turn a comparison into a CI gate.

Grammar of one rule (repeat `--fail-on` for several):

    RULE      := METRIC [ "@" TARGET ] ":" THRESHOLD
    METRIC    := LATENCY "_p" (50|90|95|99)     latency: ttft ttfc ttfb e2e tpot chunk_gap queue_wait
               | "output_tps_p" (50|90|95|99)   per-request output tokens/s (higher is better)
               | throughput | input_throughput | rps | goodput | error_rate | cost
    THRESHOLD := [ "+" | "-" ] NUMBER UNIT
    UNIT      := "%"                            relative to the baseline (every metric)
               | "ms" | "s"                     latencies
               | "tok/s"                        throughput, input_throughput, output_tps
               | "req/s"                        rps
               | "usd"                          cost
               | (none)                         goodput and error_rate only: an absolute 0..1 ratio

- `+` fails when the run's value is *higher* than the baseline's by more than the threshold, `-` when it
  is *lower*. Without a sign, the metric's bad direction is used: up for latencies, error_rate and
  cost; down for throughput, rps, goodput and output_tps.
- A number without a unit on any other metric (`ttft_p95:+10`) is refused: 10 what?
- `@TARGET` names a target as a user can type it: its name in the report, its provider, its model, or
  `model/provider` (`endpoint/model/provider` when needed); a name that matches several targets
  (`swiftinfer` serving two models) applies the rule to each. `all` is every target together. A TARGET
  in neither run, or in only one of them, is refused (exit 2): it can neither pass nor regress.
- Without `@TARGET` the rule applies to every target present in both runs and to `all`.

A rule fails only when the change is beyond its threshold in the bad direction *and* the difference is
significant at `confidence` (one-sided): z = (run - baseline) x direction / sqrt(se_run^2 + se_base^2)
> Phi^-1(confidence). The standard errors come from the summaries: a percentile's from its
order-statistic interval (the half-width on the side facing the other run, divided by the interval's z);
goodput's and error_rate's from the binomial (sqrt(p (1 - p) / n)); throughputs' from the compound-Poisson
model of figures.py; cost's as cost / sqrt(requests). A percentile whose interval lacks the needed bound
(too few samples) cannot show a significant change: the verdict says so and does not fail.

Runs are comparable when they ran the same workload, shape (kind, levels or rates, step length,
users), reasoning setting and targets; otherwise `compatibility` lists what differs and the CLI refuses
unless `--force`. Targets are matched by (endpoint, model, provider), whatever their display names.
Figures compared are each target's `overall` figures (all measured windows of the run).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from tokenpulse.core.stats import CONFIDENCE, z_value
from tokenpulse.report.summary import ALL

LATENCY_METRICS = ("ttft", "ttfc", "ttfb", "e2e", "tpot", "chunk_gap", "queue_wait")
HIGHER_IS_BETTER = frozenset({"throughput", "input_throughput", "rps", "goodput", "output_tps"})
RATIO_METRICS = frozenset({"goodput", "error_rate"})
_UNITS = {"throughput": "tok/s", "input_throughput": "tok/s", "output_tps": "tok/s", "rps": "req/s", "cost": "usd"}
_RULE = re.compile(r"^(?P<metric>[a-z0-9_]+?(?:_p(?:\d+))?)(?:@(?P<target>[^:]+))?:"
                   r"(?P<sign>[+-])?(?P<num>\d+(?:\.\d+)?)(?P<unit>%|ms|s|tok/s|req/s|usd)?$")


class RuleError(ValueError):
    """A --fail-on rule that does not parse, or names a target it cannot apply to; the message says why."""


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    metric: str
    target: str | None
    direction: int  # +1: fail when higher; -1: fail when lower
    amount: float
    relative: bool

    @property
    def base_metric(self) -> str:
        return _base(self.metric)


def _base(metric: str) -> str:
    return metric.rsplit("_p", 1)[0] if re.search(r"_p\d\d$", metric) else metric


def parse_rule(text: str) -> Rule:
    m = _RULE.match(text.strip())
    if not m:
        raise RuleError(f"--fail-on {text!r}: expected METRIC[@TARGET]:[+|-]NUMBER UNIT, e.g. ttft_p95:+10% "
                        "or tpot_p50:+5ms")
    metric, unit = m["metric"], m["unit"]
    pct = re.fullmatch(r"(.+)_p(\d+)", metric)
    if pct and pct[2] not in ("50", "90", "95", "99"):
        raise RuleError(f"--fail-on {text!r}: percentiles are p50, p90, p95 and p99")
    base = pct[1] if pct else metric
    known = base in LATENCY_METRICS or base == "output_tps" or metric in (
        "throughput", "input_throughput", "rps", "goodput", "error_rate", "cost")
    if not known or (base in LATENCY_METRICS + ("output_tps",) and metric == base):
        raise RuleError(f"--fail-on {text!r}: unknown metric {metric!r} (latencies need a percentile, "
                        "e.g. ttft_p95; others: throughput, input_throughput, rps, goodput, error_rate, cost, "
                        "output_tps_p50)")
    allowed = ("%", "ms", "s") if base in LATENCY_METRICS else ("%", _UNITS[base]) if base in _UNITS else ("%", None)
    if unit not in allowed:
        units = " or ".join(u for u in allowed if u) + (" or a bare 0..1 ratio" if None in allowed else "")
        what = f"{unit} does not apply to" if unit else "a number without a unit is ambiguous for"
        raise RuleError(f"--fail-on {text!r}: {what} {metric}; use {units}")
    amount = float(m["num"]) / (1000.0 if unit == "ms" else 1.0)
    if unit == "%":
        amount /= 100.0
    elif unit is None and amount > 1:
        raise RuleError(f"--fail-on {text!r}: {metric} is a 0..1 ratio; write {amount:g}% for a relative change")
    default = -1 if base in HIGHER_IS_BETTER else 1
    direction = {"+": 1, "-": -1}.get(m["sign"] or "", default)
    return Rule(text=text, metric=metric, target=m["target"], direction=direction, amount=amount,
                relative=unit == "%")


@dataclass(frozen=True, slots=True)
class Estimate:
    """One figure of one run: its value, sample size, interval and the standard errors towards each side."""

    value: float | None
    n: int | None
    ci: tuple[float | None, float | None]
    se_low: float | None  # spread below the value (towards a lower other run)
    se_high: float | None


def estimate(figs: dict[str, Any], metric: str) -> Estimate:
    """A metric of one `figures()` block, with what a significance test needs."""
    tp = figs["throughput"]
    if metric in ("throughput", "input_throughput", "rps"):
        key = {"throughput": "output_tokens_per_s", "input_throughput": "input_tokens_per_s",
               "rps": "requests_per_s"}[metric]
        value, se = tp.get(key), tp.get(f"{key}_se")
        z = z_value(CONFIDENCE)
        ci = (None, None) if value is None or se is None else (max(0.0, value - z * se), value + z * se)
        return Estimate(value, tp.get("completed_requests"), ci, se, se)
    if metric in RATIO_METRICS:
        g = figs["goodput"]
        value = g.get("ratio") if metric == "goodput" else figs.get("error_rate")
        n = g.get("judged", figs["requests"]) if metric == "goodput" else figs["requests"] - figs.get("cancelled", 0)
        if value is None or not n:
            return Estimate(value, n, (None, None), None, None)
        se = math.sqrt(value * (1.0 - value) / n)
        z = z_value(CONFIDENCE)
        return Estimate(value, n, (max(0.0, value - z * se), min(1.0, value + z * se)), se, se)
    if metric == "cost":
        value, n = figs.get("cost_usd"), figs["requests"]
        se = value / math.sqrt(n) if value is not None and n else None
        return Estimate(value, n, (None, None), se, se)
    base, q = metric.rsplit("_p", 1)
    block = figs.get(base) or {}
    value = block.get(f"p{q}")
    bounds = block.get(f"p{q}_ci") or [None, None]
    z = z_value(float(block.get("ci_level") or CONFIDENCE))
    lo, hi = bounds[0], bounds[1]
    return Estimate(value, block.get("n"), (lo, hi),
                    None if value is None or lo is None else max(0.0, value - lo) / z,
                    None if value is None or hi is None else max(0.0, hi - value) / z)


def metric_value(figs: dict[str, Any], metric: str) -> float | None:
    """A metric of one `figures()` block."""
    return estimate(figs, metric).value


def significance(run: Estimate, base: Estimate, direction: int) -> tuple[float | None, str]:
    """(one-sided z of a change in `direction`, note); z None when the data cannot tell."""
    if run.value is None or base.value is None:
        return None, "no value in one of the runs"
    # The spread of each run on the side facing the other.
    run_se = run.se_low if (run.value >= base.value) else run.se_high
    base_se = base.se_high if (run.value >= base.value) else base.se_low
    if run_se is None or base_se is None:
        return None, "too few samples for an interval"
    se = math.hypot(run_se, base_se)
    diff = (run.value - base.value) * direction
    if se == 0:
        return (math.inf if diff > 0 else -math.inf if diff < 0 else 0.0), "no spread"
    return diff / se, ""


def _key(t: dict[str, Any]) -> tuple[str, str, str]:
    return (str(t.get("endpoint")), str(t.get("model")), str(t.get("provider")))


def _groups(summary: dict[str, Any]) -> dict[tuple[str, str, str] | str, tuple[str, dict[str, Any]]]:
    groups: dict[tuple[str, str, str] | str, tuple[str, dict[str, Any]]] = {
        _key(t): (t["name"], t["overall"]) for t in summary["targets"]}
    groups[ALL] = (ALL, summary["overall"])
    return groups


def _aliases(t: dict[str, Any]) -> set[str]:
    endpoint, model, provider = _key(t)
    return {t["name"], provider, model, f"{model}/{provider}", f"{endpoint}/{model}/{provider}"}


def resolve_target(name: str, run: dict[str, Any], baseline: dict[str, Any]) -> list[tuple[str, str, str] | str]:
    """The group keys a rule's `@TARGET` names; RuleError when it names no target of both runs."""
    if name == ALL:
        return [ALL]
    ours = {_key(t): t for t in run["targets"]}
    theirs = {_key(t): t for t in baseline["targets"]}
    hits_ours = {k for k, t in ours.items() if name in _aliases(t)}
    hits_theirs = {k for k, t in theirs.items() if name in _aliases(t)}
    if not hits_ours and not hits_theirs:
        known = sorted({t["name"] for t in [*run["targets"], *baseline["targets"]]})
        raise RuleError(f"@{name}: no such target in either run (targets: {', '.join(known)}, or all)")
    both = sorted(hits_ours & hits_theirs)
    if not both:
        where = "the run" if hits_ours else "the baseline"
        raise RuleError(f"@{name}: only in {where}; a target must be in both runs to be compared")
    return list(both)


@dataclass(frozen=True, slots=True)
class Verdict:
    rule: Rule
    target: str
    baseline: float | None
    value: float | None
    change: float | None  # relative (or absolute) change in the rule's terms
    failed: bool
    z: float | None = None
    significant: bool = False
    note: str = ""


def check_rules(rules: list[Rule], run: dict[str, Any], baseline: dict[str, Any]) -> None:
    """Raise RuleError for a rule whose @TARGET cannot be compared (a usage error, exit 2)."""
    for rule in rules:
        if rule.target:
            resolve_target(rule.target, run, baseline)


def evaluate(rules: list[Rule], run: dict[str, Any], baseline: dict[str, Any],
             confidence: float = CONFIDENCE) -> list[Verdict]:
    ours, theirs = _groups(run), _groups(baseline)
    z_needed = NormalDist().inv_cdf(confidence)
    verdicts = []
    for rule in rules:
        keys = resolve_target(rule.target, run, baseline) if rule.target else [k for k in ours if k in theirs]
        for key in keys:
            name = ours[key][0]
            est_run, est_base = estimate(ours[key][1], rule.metric), estimate(theirs[key][1], rule.metric)
            base, value = est_base.value, est_run.value
            if base is None or value is None:
                verdicts.append(Verdict(rule, name, base, value, None, False, note="no value in one of the runs"))
                continue
            if rule.relative:
                change = (value - base) / base if base else (0.0 if value == base else math.inf)
            else:
                change = value - base
            beyond = change * rule.direction > rule.amount
            z, note = significance(est_run, est_base, rule.direction)
            significant = z is not None and z > z_needed
            if beyond and not significant:
                note = note or f"not significant at {confidence:.0%} (z {z:.2f} <= {z_needed:.2f})"
            verdicts.append(Verdict(rule, name, base, value, change, beyond and significant, z, significant, note))
    return verdicts


COMPARE_METRICS = ("ttft_p50", "ttft_p95", "ttft_p99", "ttfc_p50", "tpot_p50", "e2e_p50", "chunk_gap_p99",
                   "queue_wait_p50", "queue_wait_p95", "output_tps_p50", "throughput", "rps", "goodput",
                   "error_rate", "cost")


def _differences(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            _differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k), out)
    elif a != b:
        out.append(f"{path}: {a!r} (run) vs {b!r} (baseline)")


def _shape_for_compare(summary: dict[str, Any]) -> dict[str, Any]:
    shape = dict(summary["run"].get("shape_params") or {"kind": summary["run"].get("shape")})
    shape.pop("seed", None)  # a different Poisson seed is another sample of the same shape
    return shape


def compatibility(run: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """What differs between two runs that should not, for a fair comparison (empty: comparable)."""
    out: list[str] = []
    work_run = dict(run["run"].get("workload") or {})
    work_base = dict(baseline["run"].get("workload") or {})
    _differences(work_run.pop("reasoning", None), work_base.pop("reasoning", None), "reasoning", out)
    _differences(work_run, work_base, "workload", out)
    _differences(_shape_for_compare(run), _shape_for_compare(baseline), "shape", out)
    only = only_in_one(run, baseline)
    if only["run"]:
        out.append(f"targets only in the run: {', '.join(only['run'])}")
    if only["baseline"]:
        out.append(f"targets only in the baseline: {', '.join(only['baseline'])}")
    return out


def only_in_one(run: dict[str, Any], baseline: dict[str, Any]) -> dict[str, list[str]]:
    ours = {_key(t): t["name"] for t in run["targets"]}
    theirs = {_key(t): t["name"] for t in baseline["targets"]}
    return {"run": [n for k, n in ours.items() if k not in theirs],
            "baseline": [n for k, n in theirs.items() if k not in ours]}


def comparison(run: dict[str, Any], baseline: dict[str, Any], confidence: float = CONFIDENCE) -> list[dict[str, Any]]:
    """Per target in both runs and metric: both runs' value, n and interval (base units), the change and
    whether it is significant at `confidence` (two-sided here: a change either way)."""
    ours, theirs = _groups(run), _groups(baseline)
    z_needed = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    rows = []
    for key in [k for k in ours if k in theirs]:
        for metric in COMPARE_METRICS:
            a, b = estimate(ours[key][1], metric), estimate(theirs[key][1], metric)
            if a.value is None and b.value is None:
                continue
            z, _ = significance(a, b, 1)
            rows.append({
                "target": ours[key][0], "metric": metric,
                "baseline": {"value": b.value, "n": b.n, "ci": list(b.ci)},
                "run": {"value": a.value, "n": a.n, "ci": list(a.ci)},
                "change": None if a.value is None or not b.value else (a.value - b.value) / b.value,
                "significant": z is not None and abs(z) > z_needed,
            })
    return rows


def comparison_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """target, metric, baseline, run, change, significant: the table `report --compare` prints."""
    out = []
    for r in rows:
        change = "-" if r["change"] is None else f"{r['change'] * 100:+.1f}%"
        out.append([r["target"], r["metric"], _cell(r["metric"], r["baseline"]), _cell(r["metric"], r["run"]),
                    change, "yes" if r["significant"] else "no"])
    return out


def _cell(metric: str, side: dict[str, Any]) -> str:
    value = side["value"]
    if value is None:
        return "-" if not side.get("n") else f"- (n={side['n']})"
    lo, hi = side["ci"]
    text = _fmt(metric, value)
    if lo is not None or hi is not None:
        text += f" [{'?' if lo is None else _fmt(metric, lo)}-{'?' if hi is None else _fmt(metric, hi)}]"
    return text + ("" if side.get("n") is None else f" n={side['n']}")


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    base = _base(metric)
    if base in LATENCY_METRICS:
        return f"{value * 1000:.1f} ms"
    if metric in RATIO_METRICS:
        return f"{value * 100:.2f}%"
    if metric == "cost":
        return f"{value:.6f}"
    return f"{value:.2f}"
