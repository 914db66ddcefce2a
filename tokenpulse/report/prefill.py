"""Prefill scaling: TTFT against the prompt's length, per target, and the fitted prefill rate.

Why a fit: a provider's TTFT is a fixed overhead (routing, queueing, the first decode step) plus the
time to process the prompt, which grows with its tokens. The `prefill` workload sends prompts of
several lengths; a least-squares line TTFT = overhead + prompt_tokens / rate over every successful
request of the measured windows gives both, each with a 95 % interval (t quantiles, so a small sample
widens it), with n and the residual standard deviation (how far single requests stray from the line).
The x values are the server's `usage.prompt_tokens` (what it processed), never our estimate; requests
without usage are left out and counted (`no_usage`). Per input length the table gives TTFT p50 with
its interval and n, the points the plot shows.

A rate whose slope interval reaches 0 has no upper bound (`None`): TTFT did not measurably grow with
the prompt, which the report says rather than printing a huge rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tokenpulse.core.format import fmt_seconds
from tokenpulse.core.stats import distribution, linear_fit
from tokenpulse.report.svg import Series, line_chart

MEASURE = "measure"


def _key(record: dict[str, Any]) -> tuple[str, str, str]:
    return (str(record.get("endpoint")), str(record.get("model")), str(record.get("target_provider")))


def measured_ok(record: dict[str, Any]) -> bool:
    """A successful request of a measured window (records without a phase: a folder without a schedule)."""
    return record.get("outcome") == "ok" and record.get("phase", MEASURE) == MEASURE


def prefill_summary(records: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per target name: points per input length and the fit (see the module's docstring)."""
    names = {(t["endpoint"], t["model"], t["provider"]): t["name"] for t in targets}
    xs: dict[str, list[float]] = defaultdict(list)
    ys: dict[str, list[float]] = defaultdict(list)
    by_length: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    tokens_by_length: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    no_usage: dict[str, int] = defaultdict(int)
    for r in records:
        if not measured_ok(r):
            continue
        name = names.get(_key(r), str(r.get("target_provider")))
        ttft, tokens, target = r.get("ttft_s"), r.get("prompt_tokens"), r.get("input_tokens_target")
        if not isinstance(ttft, (int, float)):
            continue
        if r.get("tokens_estimated") or not isinstance(tokens, int):
            no_usage[name] += 1
            continue
        xs[name].append(float(tokens))
        ys[name].append(float(ttft))
        if isinstance(target, int):
            by_length[name][target].append(float(ttft))
            tokens_by_length[name][target].append(float(tokens))
    out: dict[str, Any] = {}
    present = set(xs) | set(no_usage)
    order = [t["name"] for t in targets if t["name"] in present] + sorted(present - set(names.values()))
    for name in order:
        fit = linear_fit(xs[name], ys[name])
        points = [{"input_tokens_target": length, "prompt_tokens_mean": sum(tokens_by_length[name][length])
                   / len(tokens_by_length[name][length]), "ttft": distribution(values)}
                  for length, values in sorted(by_length[name].items())]
        out[name] = {"n": len(xs[name]), "no_usage": no_usage[name], "points": points, "fit": _rate(fit)}
    return out


def _rate(fit: dict[str, Any] | None) -> dict[str, Any] | None:
    if fit is None:
        return None
    slope, (lo, hi) = fit["slope"], fit["slope_ci"]
    return {"n": fit["n"], "prefill_tokens_per_s": 1.0 / slope if slope > 0 else None,
            "prefill_tokens_per_s_ci": [1.0 / hi if hi > 0 else None, 1.0 / lo if lo > 0 else None],
            "overhead_s": fit["intercept"], "overhead_s_ci": fit["intercept_ci"],
            "residual_sd_s": fit["residual_sd"], "r2": fit["r2"], "ci_level": fit["ci_level"]}


def _tok_s(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:,.0f}"


def fit_text(fit: dict[str, Any] | None) -> str:
    """`38,900 tok/s [36,100-42,200], overhead 152 ms [140 ms-165 ms] (n=60, residual sd 21 ms)`."""
    if fit is None:
        return "no fit (needs 3 requests with usage over at least two prompt lengths)"
    lo, hi = fit["prefill_tokens_per_s_ci"]
    olo, ohi = fit["overhead_s_ci"]
    rate = fit["prefill_tokens_per_s"]
    head = ("TTFT did not grow with the prompt" if rate is None else f"{_tok_s(rate)} input tok/s")
    return (f"{head} [{_tok_s(lo)}-{_tok_s(hi)}], overhead {fmt_seconds(fit['overhead_s'])} "
            f"[{fmt_seconds(olo)}-{fmt_seconds(ohi)}] (n={fit['n']}, residual sd {fmt_seconds(fit['residual_sd_s'])})")


FIT_HEADERS = ("target", "prefill rate and overhead")
POINT_HEADERS = ("target", "input tokens (target)", "prompt tokens (server, mean)", "TTFT p50 [interval]", "n")
NOTE = ("TTFT = overhead + prompt tokens / prefill rate, least squares over every successful request "
        "(x: the server's prompt tokens); [low-high]: 95 % intervals.")


def tables(section: dict[str, Any]) -> list[tuple[tuple[str, ...], list[list[str]]]]:
    """(headers, rows) of the fit per target, then of TTFT p50 per input length."""
    fits = [[name, fit_text(t["fit"])] for name, t in section.items()]
    points = []
    for name, t in section.items():
        for p in t["points"]:
            d = p["ttft"]
            lo, hi = d["p50_ci"]
            points.append([name, str(p["input_tokens_target"]), f"{p['prompt_tokens_mean']:.0f}",
                           f"{fmt_seconds(d['p50'])} [{fmt_seconds(lo)}-{fmt_seconds(hi)}]", str(d["n"])])
        if t["no_usage"]:
            points.append([name, "(no usage: left out)", "", "", str(t["no_usage"])])
    return [(FIT_HEADERS, fits), (POINT_HEADERS, points)]


def chart(section: dict[str, Any]) -> str | None:
    """TTFT p50 against the server's prompt tokens, one line per target (log x: lengths span decades)."""
    series = [Series(name, [(p["prompt_tokens_mean"], p["ttft"]["p50"]) for p in t["points"]
                            if p["ttft"]["p50"] is not None]) for name, t in section.items()]
    series = [s for s in series if s.points]
    if not series:
        return None
    return line_chart(series, title="TTFT p50 against prompt length", x_label="prompt tokens (log scale)",
                      y_label="TTFT p50", y_unit="s", log_x=True, markers=True, width=760)
