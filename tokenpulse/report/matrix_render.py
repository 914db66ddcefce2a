"""The provider matrix (report/matrix.py) as tables: Markdown for report.md and a pull-request comment
(`tokenpulse report RUN --markdown`), the same rows for report.html.

Every percentile cell carries its interval and, when it differs from the row's `n ok`, its sample size
(`quantile_cell`, as the rest of the report); every share carries its interval and its n.
"""

from __future__ import annotations

from typing import Any

from tokenpulse.core.format import fmt_number, fmt_seconds
from tokenpulse.report.markdown import quantile_cell

Table = tuple[str, tuple[str, ...], list[list[str]]]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _share(ratio: float | None, ci: list[float | None], n: int) -> str:
    if ratio is None:
        return f"- (n={n})"
    lo, hi = ci
    bounds = "" if lo is None or hi is None else f" [{lo * 100:.1f}-{hi * 100:.1f}]"
    return f"{ratio * 100:.1f}%{bounds} (n={n})"


def _usd(value: float | None, digits: int = 6) -> str:
    return "-" if value is None else f"${value:.{digits}f}"


def _classes(classes: dict[str, int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in classes.items()) or "-"


def _against_above(distinct: bool | None) -> str:
    if distinct is None:
        return "-"
    return "below it" if distinct else "not distinguishable: intervals overlap"


def matrix_tables(matrix: dict[str, Any]) -> list[Table]:
    """The tables of one model's matrix, in reading order."""
    rows = matrix["providers"]
    speed = [[r["name"], fmt_number(r["ok"]), quantile_cell(r["ttft"], 50, r["ok"]),
              quantile_cell(r["ttft"], 95, r["ok"]), quantile_cell(r["ttfc"], 50, r["ok"]),
              quantile_cell(r["output_tps"], 50, r["ok"], seconds=False),
              _share(r["goodput"]["ratio"], r["goodput"]["ci"], r["goodput"]["n"])] for r in rows]
    errors = [[r["name"], fmt_number(r["requests"]), _pct(r["error_rate"]), _classes(r["error_classes"]),
               f"{r['wrong_provider']['n']} ({_pct(r['wrong_provider']['share'])})",
               _share(r["availability"]["ratio"], r["availability"]["ci"], r["availability"]["judged"])] for r in rows]
    cost = []
    for r in rows:
        c = r["cost"]
        check = "-" if not c["checked_requests"] else (
            f"{_usd(c['usage_cost_usd'])} vs {_usd(c['generation_total_cost_usd'])} "
            f"({'+' if c['difference_usd'] >= 0 else '-'}{_usd(abs(c['difference_usd']))}, n={c['checked_requests']})")
        cost.append([r["name"], _usd(c["usd_per_million_output_tokens"], 4), _usd(c["usd_per_ok_answer"]),
                     _usd(c["spend_usd"]) + (f" ({c['unknown_requests']} unknown)" if c["unknown_requests"] else ""),
                     check])
    ends = [[r["name"], quantile_cell(r["ttft"], 50, r["ok"]), quantile_cell(r["openrouter"]["latency"], 50, r["ok"]),
             quantile_cell(r["openrouter"]["ttft_minus_latency"], 50, r["ok"]),
             quantile_cell(r["openrouter"]["generation_time"], 50, r["ok"]),
             ", ".join(f"{k} {v}" for k, v in r["openrouter"]["served_by"].items()) or "-"] for r in rows]
    listing = []
    for r in rows:
        li = r["listing"] or {}
        listing.append([r["name"], fmt_seconds(li.get("latency_p50_s")), quantile_cell(r["ttft"], 50, r["ok"]),
                        fmt_number(li.get("throughput_p50")),
                        quantile_cell(r["ours_or_style_tps"], 50, r["ok"], seconds=False),
                        _pct(li.get("uptime_last_30m")),
                        _share(r["availability"]["ratio"], r["availability"]["ci"], r["availability"]["judged"])])
    ranking = [[str(x["rank"]), x["name"], _share(x["goodput"]["ratio"], x["goodput"]["ci"], x["goodput"]["n"]),
                fmt_seconds(x["ttft_p50"]), _against_above(x["distinct_from_above"])] for x in matrix["ranking"]]
    slo = matrix["slo"]
    return [
        (f"Ranking under the SLO (TTFT <= {slo.get('ttft_s')} s, TPOT <= {slo.get('tpot_s')} s)",
         ("rank", "provider", "goodput [CI] (n)", "TTFT p50", "against the one above"), ranking),
        ("Speed", ("provider", "n ok", "TTFT p50", "TTFT p95", "TTFC p50", "tok/s/req p50", "goodput [CI] (n)"), speed),
        ("Errors", ("provider", "requests", "error rate", "by class", "wrong provider",
                    "availability, OpenRouter's way [CI] (n)"), errors),
        ("Cost", ("provider", "$ / M output tok", "$ / ok answer", "spend",
                  "usage.cost vs /generation total_cost"), cost),
        ("Our TTFT against what OpenRouter measured", ("provider", "our TTFT p50", "OpenRouter latency p50",
                                                        "TTFT - latency p50 (network + router)",
                                                        "OpenRouter generation time p50", "served by (/generation)"),
         ends),
        ("Our figures against the listing at the run's start", ("provider", "listed latency p50", "our TTFT p50",
                                                                 "listed tok/s p50", "our tok/s p50 (its way)",
                                                                 "listed uptime 30m", "our availability [CI] (n)"),
         listing),
    ]


def lookup_note(matrix: dict[str, Any]) -> str:
    """How the /generation lookups went: what was found and what was not looked up (never silent)."""
    lk = matrix["lookups"]
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(lk["statuses"].items())) or "none"
    text = (f"/generation lookups: {statuses}; joined to records: {lk['joined']}; not looked up: skipped (above "
            f"load.generations.max_rate_per_s) {lk['skipped']}, dropped (queue full) {lk['dropped']}, abandoned "
            f"(run ended) {lk['abandoned']}")
    if lk["billed_failures"]:
        text += (f"; billed failed requests counted in spend: {lk['billed_failures']} "
                 f"({_usd(lk['billed_failures_usd'])})")
    if not matrix["listing_read"]:
        text += "; no endpoints listing in the run folder (published figures: -)"
    return text + "."


def _md_table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def matrix_markdown(matrices: list[dict[str, Any]]) -> str:
    """The matrices as Markdown sections (empty when the run has no model with two providers)."""
    out: list[str] = []
    for m in matrices:
        out += [f"## Provider matrix: {m['model']} on {m['endpoint']}", "",
                "Percentiles of successful requests with their interval [low-high] and n; shares with their "
                "Wilson interval and n. OpenRouter's columns come from its `/generation` records of the same "
                "requests and its endpoints listing read when the run began.", ""]
        for title, headers, rows in matrix_tables(m):
            out += [f"### {title}", "", _md_table(headers, rows), ""]
        out += [lookup_note(m), ""]
    return "\n".join(out)
