"""The router's own choice, in a load report: which providers served each router's-choice target, and
how its TTFT compares with the best pinned provider of the same model.

Why: a team that does not pin gets whatever OpenRouter's router picks (`~default`, `~sort:throughput`,
`~nitro`, ...: config.RouteChoice). Its records keep the provider that served each request (`provider`,
the stream's name), so the report can say what share each provider got, and whether routing is better
or worse than pinning the fastest provider, with sample sizes and intervals (DESIGN.md §6). Pinned
targets of the model are matched to served names by `core.served.served_matches_pin`, the one rule.

The figures are those of the summary's targets (`overall`: successful requests of the measured
windows); shares count every measured request of the router's target, whatever its outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tokenpulse.config import NO_PROVIDER, ROUTE_PREFIX
from tokenpulse.core.redact import clip
from tokenpulse.core.served import ProviderPin, served_matches_pin
from tokenpulse.report.run import RunData
from tokenpulse.runfolder.generations import listed_names, read_listings
from tokenpulse.runfolder.schedule import MEASURE

#: A record whose stream named no provider.
UNKNOWN_SERVED = "(not said)"
#: Served names shown per router target; the rest are summed into one row (a hostile server could
#: name a new provider in every response).
MAX_SERVED_ROWS = 12
OTHERS = "(others)"


def is_route(provider: object) -> bool:
    return isinstance(provider, str) and provider.startswith(ROUTE_PREFIX)


def router_choice(run: RunData, targets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per router's-choice target: served shares and the comparison with the best pinned provider.
    `targets` are the summary's (`name`, `endpoint`, `model`, `provider`, `overall`). Empty when the run
    has no router's-choice target."""
    routes = [t for t in targets if is_route(t["provider"])]
    if not routes:
        return []
    served: dict[tuple[str, str, str], Counter[str]] = {}
    served_ok: dict[tuple[str, str, str], Counter[str]] = {}
    for r in run.records:
        provider = r.get("target_provider")
        if not is_route(provider) or r.get("phase") not in (None, MEASURE):
            continue
        key = (str(r.get("endpoint")), str(r.get("model")), str(provider))
        name = r.get("provider")
        name = clip(name, 80) if isinstance(name, str) and name else UNKNOWN_SERVED
        served.setdefault(key, Counter())[name] += 1
        if r.get("outcome") == "ok":
            served_ok.setdefault(key, Counter())[name] += 1
    listings = read_listings(run.path)  # the listing's display names decide, as during the run
    out = []
    for t in routes:
        key = (t["endpoint"], t["model"], t["provider"])
        pinned = [p for p in targets if (p["endpoint"], p["model"]) == (t["endpoint"], t["model"])
                  and not is_route(p["provider"]) and p["provider"] != NO_PROVIDER]
        entries = listings.get((t["endpoint"], t["model"]), [])
        pins = [(p["provider"], ProviderPin.of(p["provider"], listed_names(entries, p["provider"])))
                for p in pinned]
        counts = served.get(key, Counter())
        total = sum(counts.values())
        rows: list[dict[str, Any]] = []
        for name, n in counts.most_common():
            if len(rows) == MAX_SERVED_ROWS - 1 and len(counts) > MAX_SERVED_ROWS:
                rest = total - sum(row["requests"] for row in rows)
                rows.append({"provider": OTHERS, "pinned_target": None, "requests": rest,
                             "ok": None, "share": rest / total})
                break
            match = next((slug for slug, pin in pins if served_matches_pin(pin, name)), None)
            rows.append({"provider": name, "pinned_target": match, "requests": n,
                         "ok": served_ok.get(key, Counter())[name], "share": n / total if total else None})
        best = _best_pinned(pinned)
        out.append({"name": t["name"], "endpoint": t["endpoint"], "model": t["model"], "route": t["provider"],
                    "requests": total, "served": rows, "ttft": t["overall"]["ttft"],
                    "best_pinned": None if best is None else {"name": best["name"], "provider": best["provider"],
                                                              "ttft": best["overall"]["ttft"]},
                    "verdict": _verdict(t["overall"]["ttft"], best["overall"]["ttft"] if best else None)})
    return out


def _best_pinned(pinned: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The pinned target with the lowest TTFT p50 (among those with a measured p50)."""
    measured = [p for p in pinned if p["overall"]["ttft"].get("p50") is not None]
    return min(measured, key=lambda p: p["overall"]["ttft"]["p50"], default=None)


def _verdict(route: dict[str, Any], best: dict[str, Any] | None) -> str:
    """What the p50 intervals support: the router's choice faster, slower, or no difference shown."""
    if best is None:
        return "no pinned provider of this model measured"
    a, b = route.get("p50_ci") or [None, None], best.get("p50_ci") or [None, None]
    if route.get("p50") is None:
        return "no successful request of the router's choice"
    if a[1] is not None and b[0] is not None and a[1] < b[0]:
        return "router's choice faster (TTFT p50 intervals apart)"
    if a[0] is not None and b[1] is not None and a[0] > b[1]:
        return "router's choice slower (TTFT p50 intervals apart)"
    return "no difference shown (TTFT p50 intervals overlap or too few requests)"


#: The section's heading and its first paragraph (report.md and report.html).
TITLE = "The router's own choice"
INTRO = ("Router's-choice targets (`~...`: unpinned, or with a routing preference) against the best pinned "
         "provider of the same model. Shares count every measured request; TTFT of successful requests.")
SERVED_HEADERS = ("served by", "pinned target", "requests", "share", "n ok")
COMPARE_HEADERS = ("target", "TTFT p50", "TTFT p95")


def router_blocks(sections: Sequence[dict[str, Any]], cell: Callable[..., str]) -> list[dict[str, Any]]:
    """Per router's-choice target: its title, a line, the served table, the comparison table and the
    verdict, as text cells (`cell` renders a percentile with its interval and n: markdown.py's
    `quantile_cell`), for report.md and report.html alike."""
    blocks = []
    for s in sections:
        served = [[row["provider"], row["pinned_target"] or "-", str(row["requests"]),
                   "-" if row["share"] is None else f"{row['share'] * 100:.1f}%",
                   "-" if row["ok"] is None else str(row["ok"])] for row in s["served"]]
        best = s["best_pinned"]
        compare = [[s["name"], cell(s["ttft"], 50), cell(s["ttft"], 95)]]
        if best is not None:
            compare.append([f"best pinned: {best['name']}", cell(best["ttft"], 50), cell(best["ttft"], 95)])
        blocks.append({"title": s["name"], "line": f"{s['requests']} requests.", "served": served,
                       "compare": compare, "verdict": f"Verdict: {s['verdict']}."})
    return blocks


def router_markdown(sections: Sequence[dict[str, Any]], cell: Callable[..., str],
                    table: Callable[[Sequence[str], Sequence[Sequence[str]]], str]) -> list[str]:
    """The report.md section (`table`: markdown.py's table renderer, so every table reads the same)."""
    if not sections:
        return []
    out = [f"## {TITLE}", "", INTRO, ""]
    for b in router_blocks(sections, cell):
        out += [f"### {b['title']}", "", b["line"], "", table(SERVED_HEADERS, b["served"]), "",
                table(COMPARE_HEADERS, b["compare"]), "", b["verdict"], ""]
    return out
