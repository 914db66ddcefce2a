"""Comparing a run with a baseline, and the `--fail-on` rules that turn a comparison into a CI gate.

Grammar of one rule (repeat `--fail-on` for several):

    RULE      := METRIC [ "@" TARGET ] ":" THRESHOLD
    METRIC    := LATENCY "_p" (50|90|95|99)     latency: ttft ttfc ttfb e2e tpot chunk_gap queue_wait
               | "output_tps_p" (50|90|95|99)   per-request output tokens/s (higher is better)
               | throughput | input_throughput | rps | goodput | error_rate | cost
    THRESHOLD := [ "+" | "-" ] NUMBER [ "%" | "ms" | "s" ]

- `+` fails when the run's value is *higher* than the baseline's by more than the threshold, `-` when it
  is *lower*. Without a sign, the metric's bad direction is used: up for latencies, error_rate and
  cost; down for throughput, rps, goodput and output_tps.
- `%` is relative to the baseline value; `ms` / `s` are absolute times (latency metrics only); a bare
  number is absolute in the metric's own unit (seconds, tokens/s, requests/s, a 0..1 ratio, USD).
- Without `@TARGET` the rule applies to every target present in both runs and to `all` (every target
  together); with it, to that target only (`all` is accepted).

Examples: `ttft_p95:+10%`, `tpot_p50:+5ms`, `throughput:-15%`, `error_rate:+0.01`, `goodput@swiftinfer:-0.05`.
Figures compared are each target's `overall` figures (all measured windows of the run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tokenpulse.report.summary import ALL

LATENCY_METRICS = ("ttft", "ttfc", "ttfb", "e2e", "tpot", "chunk_gap", "queue_wait")
HIGHER_IS_BETTER = frozenset({"throughput", "input_throughput", "rps", "goodput", "output_tps"})
_RULE = re.compile(r"^(?P<metric>[a-z0-9_]+?(?:_p(?:50|90|95|99))?)(?:@(?P<target>[^:]+))?:"
                   r"(?P<sign>[+-])?(?P<num>\d+(?:\.\d+)?)(?P<unit>%|ms|s)?$")


class RuleError(ValueError):
    """A --fail-on rule that does not parse; the message says why."""


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
        return self.metric.rsplit("_p", 1)[0] if re.search(r"_p\d\d$", self.metric) else self.metric


def parse_rule(text: str) -> Rule:
    m = _RULE.match(text.strip())
    if not m:
        raise RuleError(f"--fail-on {text!r}: expected METRIC[@TARGET]:[+|-]NUMBER[%|ms|s], e.g. ttft_p95:+10%")
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
    if unit in ("ms", "s") and base not in LATENCY_METRICS:
        raise RuleError(f"--fail-on {text!r}: {unit} thresholds apply to latency metrics only")
    amount = float(m["num"]) / (1000.0 if unit == "ms" else 1.0)
    if unit == "%":
        amount /= 100.0
    default = -1 if base in HIGHER_IS_BETTER else 1
    direction = {"+": 1, "-": -1}.get(m["sign"] or "", default)
    return Rule(text=text, metric=metric, target=m["target"], direction=direction, amount=amount,
                relative=unit == "%")


def metric_value(figs: dict[str, Any], metric: str) -> float | None:
    """A metric of one `figures()` block."""
    simple = {
        "throughput": lambda f: f["throughput"]["output_tokens_per_s"],
        "input_throughput": lambda f: f["throughput"]["input_tokens_per_s"],
        "rps": lambda f: f["throughput"]["requests_per_s"],
        "goodput": lambda f: f["goodput"]["ratio"],
        "error_rate": lambda f: f["error_rate"],
        "cost": lambda f: f["cost_usd"],
    }
    if metric in simple:
        return simple[metric](figs)
    base, q = metric.rsplit("_p", 1)
    block = figs.get(base)
    return None if not block else block.get(f"p{q}")


def _groups(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = {t["name"]: t["overall"] for t in summary["targets"]}
    groups[ALL] = summary["overall"]
    return groups


@dataclass(frozen=True, slots=True)
class Verdict:
    rule: Rule
    target: str
    baseline: float | None
    value: float | None
    change: float | None  # relative (or absolute) change in the rule's terms
    failed: bool


def evaluate(rules: list[Rule], run: dict[str, Any], baseline: dict[str, Any]) -> list[Verdict]:
    ours, theirs = _groups(run), _groups(baseline)
    verdicts = []
    for rule in rules:
        names = [rule.target] if rule.target else [n for n in ours if n in theirs]
        for name in names:
            if name not in ours or name not in theirs:
                verdicts.append(Verdict(rule, name, None, None, None, True))  # asked for, not comparable
                continue
            base, value = metric_value(theirs[name], rule.metric), metric_value(ours[name], rule.metric)
            if base is None or value is None:
                verdicts.append(Verdict(rule, name, base, value, None, False))
                continue
            if rule.relative:
                change = (value - base) / base if base else (0.0 if value == base else float("inf"))
            else:
                change = value - base
            failed = change * rule.direction > rule.amount
            verdicts.append(Verdict(rule, name, base, value, change, failed))
    return verdicts


COMPARE_METRICS = ("ttft_p50", "ttft_p95", "ttft_p99", "ttfc_p50", "tpot_p50", "e2e_p50", "chunk_gap_p99",
                   "output_tps_p50", "throughput", "rps", "goodput", "error_rate", "cost")


def comparison_rows(run: dict[str, Any], baseline: dict[str, Any]) -> list[list[str]]:
    """target, metric, baseline, run, change: the side-by-side table `report --compare` prints."""
    ours, theirs = _groups(run), _groups(baseline)
    rows = []
    for name in [n for n in ours if n in theirs]:
        for metric in COMPARE_METRICS:
            b, v = metric_value(theirs[name], metric), metric_value(ours[name], metric)
            change = "-" if b in (None, 0) or v is None else f"{(v - b) / b * 100:+.1f}%"
            rows.append([name, metric, _fmt(metric, b), _fmt(metric, v), change])
    return rows


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    base = metric.rsplit("_p", 1)[0] if re.search(r"_p\d\d$", metric) else metric
    if base in LATENCY_METRICS:
        return f"{value * 1000:.1f} ms"
    if metric in ("goodput", "error_rate"):
        return f"{value * 100:.2f}%"
    if metric == "cost":
        return f"{value:.6f}"
    return f"{value:.2f}"
