"""The provider matrix: the providers of one model side by side, the comparison a team decides on.

For every (endpoint, model) of a run with two or more providers, one row per provider:
- speed: TTFT, TTFC and output speed per request (the target's overall figures: n and intervals);
- reliability: error rate by class, the wrong-provider share (requests another provider served: class
  `wrong_provider`, counted by its string so older and newer runs read alike), and availability as
  OpenRouter counts it (rate limits and caller errors left out), with a Wilson interval;
- cost: $ per million output tokens and $ per successful answer (the run's spend: `usage.cost`, else the
  configured price, plus billed failures from `/generation`), and `usage.cost` cross-checked with
  `/generation`'s `total_cost` over the requests that have both (the difference shown, never hidden);
- both ends: our TTFT beside OpenRouter's `latency` for the same requests; their paired difference
  is the network and router overhead from where the test ran;
- the listing: OpenRouter's published `latency_last_30m`, `throughput_last_30m` (its definition: output
  tokens over the generation time, TTFT included, which we compute per request the same way from E2E)
  and `uptime_last_30m`, as read when the run began (`listing-*.json`);
- a ranking under the run's SLO: by goodput (share of requests meeting every objective, with its
  interval), ties broken by TTFT p50; a provider whose goodput interval overlaps the one ranked above is
  marked as not distinguishable from it.

Only measured-phase records count, as in the rest of the report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from tokenpulse.core.stats import distribution, proportion_interval
from tokenpulse.report.run import RunData
from tokenpulse.runfolder.generations import read_listings
from tokenpulse.runfolder.schedule import MEASURE

WRONG_PROVIDER = "wrong_provider"
#: Failures OpenRouter's uptime leaves out (the caller's, not the provider's).
_NOT_PROVIDER_FAILURES = frozenset({"client_error", "rate_limited", WRONG_PROVIDER})


def _listed(entries: list[dict[str, Any]], provider: str) -> dict[str, Any] | None:
    """The listing entry of a provider slug: `tag` (`slug` or `slug/variant`) or the display name."""
    for e in entries:
        tag = str(e.get("tag") or "")
        if tag == provider or tag.split("/", 1)[0] == provider or str(e.get("provider_name", "")).lower() == provider:
            return e
    return None


def _p50(value: Any, scale: float = 1.0) -> float | None:
    """`{"p50": x, ...}` -> x * scale when x is a finite non-negative number."""
    if isinstance(value, dict):
        v = value.get("p50")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e12:
            return float(v) * scale
    return None


def _number(value: Any) -> float | None:
    usable = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e12
    return float(value) if usable else None


def _row(target: dict[str, Any], records: list[dict[str, Any]], listed: dict[str, Any] | None) -> dict[str, Any]:
    f = target["overall"]
    classes: Counter[str] = Counter(f.get("error_classes") or {})
    finished = f["requests"] - f.get("cancelled", 0)
    wrong = classes.get(WRONG_PROVIDER, 0)
    provider_failures = sum(n for c, n in classes.items() if c not in _NOT_PROVIDER_FAILURES)
    judged = f["ok"] + provider_failures
    good, goodput_n = f["goodput"]["requests"], f["goodput"]["judged"]  # the summary's goodput, its n
    output_tokens = f["tokens"]["output"]
    cost = f["cost_usd"]
    # usage.cost against /generation's total_cost, over the requests that carry both
    both = [(r["cost_usd"], r["or_total_cost_usd"]) for r in records
            if r.get("cost_usd") is not None and r.get("or_total_cost_usd") is not None]
    usage_sum = sum(a for a, _ in both)
    or_sum = sum(b for _, b in both)
    ok = [r for r in records if r.get("outcome") == "ok"]
    paired = [r["ttft_s"] - r["or_latency_s"] for r in ok
              if r.get("ttft_s") is not None and r.get("or_latency_s") is not None]
    # OpenRouter's throughput definition, per request: output tokens / (time to the last token, TTFT in)
    or_style_tps = [r["output_tokens"] / r["e2e_s"] for r in ok if r.get("output_tokens") and r.get("e2e_s")]
    served_by = Counter(str(r.get("or_provider_name")) for r in records if r.get("or_provider_name"))
    uptime = _number(listed.get("uptime_last_30m")) if listed else None
    return {
        "name": target["name"], "provider": target["provider"],
        "requests": f["requests"], "ok": f["ok"], "cancelled": f.get("cancelled", 0),
        "ttft": f["ttft"], "ttfc": f["ttfc"], "output_tps": f["output_tps"],
        "error_rate": f["error_rate"], "error_classes": dict(sorted(classes.items())),
        "wrong_provider": {"n": wrong, "share": wrong / finished if finished else None},
        "availability": {"ok": f["ok"], "judged": judged, "ratio": f["ok"] / judged if judged else None,
                         "ci": list(proportion_interval(f["ok"], judged))},
        "goodput": {"good": good, "n": goodput_n, "ratio": good / goodput_n if goodput_n else None,
                    "ci": list(proportion_interval(good, goodput_n))},
        "cost": {
            "spend_usd": cost, "unknown_requests": f.get("cost_unknown_requests", 0),
            "usd_per_million_output_tokens": cost / output_tokens * 1e6 if output_tokens else None,
            "usd_per_ok_answer": cost / f["ok"] if f["ok"] else None,
            "checked_requests": len(both), "usage_cost_usd": usage_sum, "generation_total_cost_usd": or_sum,
            "difference_usd": or_sum - usage_sum,
        },
        "openrouter": {
            "latency": distribution(r.get("or_latency_s") for r in ok),
            "generation_time": distribution(r.get("or_generation_time_s") for r in ok),
            "ttft_minus_latency": distribution(paired),
            "served_by": dict(served_by.most_common(8)),
        },
        "listing": None if listed is None else {
            "latency_p50_s": _p50(listed.get("latency_last_30m"), 1e-3),
            "throughput_p50": _p50(listed.get("throughput_last_30m")),
            "uptime_last_30m": None if uptime is None else uptime / 100.0,
        },
        "ours_or_style_tps": distribution(or_style_tps),
    }


def _rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Goodput first (higher is better), then TTFT p50 (lower); `distinct`: the goodput interval does not
    overlap that of the provider ranked just above (else the order between them is not established)."""
    def key(row: dict[str, Any]) -> tuple[float, float]:
        g = row["goodput"]["ratio"]
        t = row["ttft"].get("p50")
        return (-(g if g is not None else -1.0), t if t is not None else float("inf"))

    ranked = sorted(rows, key=key)
    out = []
    for i, row in enumerate(ranked):
        distinct = None
        if i > 0:
            above_lo = ranked[i - 1]["goodput"]["ci"][0]
            hi = row["goodput"]["ci"][1]
            distinct = above_lo is not None and hi is not None and hi < above_lo
        out.append({"rank": i + 1, "name": row["name"], "goodput": row["goodput"], "ttft_p50": row["ttft"].get("p50"),
                    "distinct_from_above": distinct})
    return out


def provider_matrix(run: RunData, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One matrix per (endpoint, model) with two or more providers in the run; [] when there is none."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in summary["targets"]:
        groups[(t["endpoint"], t["model"])].append(t)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return []
    by_target: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in run.records:
        if r.get("phase") in (None, MEASURE):
            by_target[(str(r.get("endpoint")), str(r.get("model")), str(r.get("target_provider")))].append(r)
    listings = read_listings(run.path)
    slo = summary["slo"]
    out = []
    for (endpoint, model), targets in groups.items():
        entries = listings.get((endpoint, model))
        rows = [_row(t, by_target.get((endpoint, model, t["provider"]), []),
                     _listed(entries, t["provider"]) if entries else None) for t in targets]
        out.append({"endpoint": endpoint, "model": model, "slo": slo, "listing_read": entries is not None,
                    "providers": rows, "ranking": _rank(rows), "lookups": run.generations.to_dict()})
    return out
