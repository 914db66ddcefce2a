"""Prompt caching: per target, how often the provider served the prompt from its cache and what it saved.

Why from `cached_tokens`: OpenAI and OpenRouter report the prompt tokens read from the provider's
cache as `usage.prompt_tokens_details.cached_tokens`; the recorder keeps it per request. A request is
a *hit* when it is > 0, a *miss* when it is 0, and *unknown* when the server did not say (those are
counted, never guessed). Per target: the hit rate with its Wilson 95 % interval and n, the mean cached
tokens of a hit, TTFT of hits and of misses (each with n and its p50 interval), and the saving, p50 of
misses minus p50 of hits. The saving's interval is [miss low - hit high, miss high - hit low] from the
two 95 % order-statistic intervals: conservative (it covers the difference whenever both cover their
median, at least 90 % of the time), and `None` where a sample is too small for a bound.

The comparison means something when hits and misses have prompts of the same length: the
`shared_prefix` workload builds them so (load/prompts.py). The section appears when any request
reported cached tokens, or when the workload is `shared_prefix` (a provider that never hits is a
finding too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tokenpulse.core.format import fmt_seconds
from tokenpulse.core.stats import distribution, proportion_interval
from tokenpulse.report.prefill import measured_ok


def _key(record: dict[str, Any]) -> tuple[str, str, str]:
    return (str(record.get("endpoint")), str(record.get("model")), str(record.get("target_provider")))


def cache_summary(records: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]],
                  *, always: bool = False) -> dict[str, Any]:
    """Per target name: hit rate, cached tokens and TTFT by hit/miss (module docstring); {} when no
    request reported a cache hit and `always` is not set."""
    names = {(t["endpoint"], t["model"], t["provider"]): t["name"] for t in targets}
    hit_ttft: dict[str, list[float]] = defaultdict(list)
    miss_ttft: dict[str, list[float]] = defaultdict(list)
    cached: dict[str, list[int]] = defaultdict(list)
    prompt: dict[str, list[int]] = defaultdict(list)
    unknown: dict[str, int] = defaultdict(int)
    known: dict[str, int] = defaultdict(int)  # requests whose usage said how many tokens were cached
    for r in records:
        if not measured_ok(r):
            continue
        name = names.get(_key(r), str(r.get("target_provider")))
        tokens, ttft = r.get("cached_tokens"), r.get("ttft_s")
        if not isinstance(tokens, int) or r.get("tokens_estimated"):
            unknown[name] += 1
            continue
        known[name] += 1
        if isinstance(r.get("prompt_tokens"), int):
            prompt[name].append(r["prompt_tokens"])
        if tokens > 0:
            cached[name].append(tokens)
        if isinstance(ttft, (int, float)):
            (hit_ttft if tokens > 0 else miss_ttft)[name].append(float(ttft))
    if not always and not any(cached.values()):
        return {}
    present = set(known) | set(unknown)
    order = [t["name"] for t in targets if t["name"] in present] + sorted(present - set(names.values()))
    out: dict[str, Any] = {}
    for name in order:
        hits, n = len(cached[name]), known[name]
        hit, miss = distribution(hit_ttft[name]), distribution(miss_ttft[name])
        out[name] = {
            "requests": n, "hits": hits, "unknown": unknown[name],
            "hit_rate": hits / n if n else None, "hit_rate_ci": list(proportion_interval(hits, n)),
            "cached_tokens_mean": sum(cached[name]) / hits if hits else None,
            "prompt_tokens_mean": sum(prompt[name]) / len(prompt[name]) if prompt[name] else None,
            "ttft_hit": hit, "ttft_miss": miss, "ttft_saving_p50_s": _difference(miss, hit),
        }
    return out


def _difference(miss: dict[str, Any], hit: dict[str, Any]) -> dict[str, Any]:
    if miss["p50"] is None or hit["p50"] is None:
        return {"value": None, "ci": [None, None]}
    (mlo, mhi), (hlo, hhi) = miss["p50_ci"], hit["p50_ci"]
    return {"value": miss["p50"] - hit["p50"],
            "ci": [None if mlo is None or hhi is None else mlo - hhi,
                   None if mhi is None or hlo is None else mhi - hlo]}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _p50(d: dict[str, Any]) -> str:
    if not d["n"]:
        return "- (n=0)"
    lo, hi = d["p50_ci"]
    return f"{fmt_seconds(d['p50'])} [{fmt_seconds(lo)}-{fmt_seconds(hi)}] n={d['n']}"


HEADERS = ("target", "hit rate [interval] (hits / n)", "cached tokens per hit", "TTFT hit p50", "TTFT miss p50",
           "TTFT saving p50 [interval]")
NOTE = ("Hit: the server reported cached_tokens > 0. Hit rate with its 95 % Wilson interval; TTFT p50 with its "
        "95 % interval and n; saving = miss p50 - hit p50, its interval from the two intervals.")


def rows(section: dict[str, Any]) -> list[list[str]]:
    out = []
    for name, t in section.items():
        lo, hi = t["hit_rate_ci"]
        saving = t["ttft_saving_p50_s"]
        slo, shi = saving["ci"]
        saved = "-" if saving["value"] is None else (f"{fmt_seconds(saving['value'])} "
                                                     f"[{fmt_seconds(slo)}-{fmt_seconds(shi)}]")
        cached = "-" if t["cached_tokens_mean"] is None else f"{t['cached_tokens_mean']:.0f}"
        unknown = f"; {t['unknown']} without usage" if t["unknown"] else ""
        out.append([name, f"{_pct(t['hit_rate'])} [{_pct(lo)}-{_pct(hi)}] ({t['hits']} / {t['requests']}{unknown})",
                    cached, _p50(t["ttft_hit"]), _p50(t["ttft_miss"]), saved])
    return out
