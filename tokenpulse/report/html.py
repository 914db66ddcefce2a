"""report.html: one self-contained page (inline CSS and SVG, no script, no external resource).

Plots (svg.py; each target keeps one colour on every plot, a p95 is dashed in its p50's colour): the
TTFT distribution of each target (an empirical CDF, drawn as a step function); for runs with several
steps, TTFT p50/p95, TPOT p50 and aggregate output throughput against the load level, per-user output
speed against aggregate output throughput (one curve per target, levels labelled, Pareto-optimal
points filled: pareto.py) and TTFT p50/p95 against the rate each step achieved; with the servers' own
metrics (load.server_metrics), the client's TTFT over the run beside the servers' running and waiting
requests, KV-cache usage and generated tokens/s, on one time axis with the steps' boundaries.

A knee is drawn only on the plots of the target it belongs to: with one target, on its plots; with
several, each target gets its own throughput plot with its own knee, the all-targets throughput plot
carries the knee of all targets together, and the plots that overlay every target carry none.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any
from urllib.parse import urlsplit

from tokenpulse.core.stats import cdf_points, percentile
from tokenpulse.report import cache, prefill
from tokenpulse.report.markdown import (
    OPEN_LOOP_HEADERS,
    PROMPT_HEADERS,
    STEP_HEADERS,
    TARGET_HEADERS,
    is_open_loop,
    open_loop_rows,
    prompt_rows,
    quantile_cell,
    shape_text,
    slo_text,
    step_rows,
    target_rows,
)
from tokenpulse.report.matrix_render import lookup_note, matrix_tables
from tokenpulse.report.routing import COMPARE_HEADERS, INTRO, SERVED_HEADERS, TITLE, router_blocks
from tokenpulse.report.run import RunData
from tokenpulse.report.search import HEADERS as SEARCH_HEADERS
from tokenpulse.report.search import NOTE as SEARCH_NOTE
from tokenpulse.report.search import answer_text, client_bound_text, search_rows
from tokenpulse.report.servermetrics import SERVER_HEADERS, server_rows, source_text
from tokenpulse.report.summary import ALL, target_key
from tokenpulse.report.svg import PALETTE, Series, line_chart, target_colors
from tokenpulse.report.validity import INTRO as VALIDITY_INTRO
from tokenpulse.report.validity import validity_tables
from tokenpulse.runfolder.schedule import MEASURE

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222;
padding:0 12px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px;display:block;overflow-x:auto;max-width:100%}
th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px;margin:6px 0}
.meta{color:#555}.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart-box{flex:1 1 900px;max-width:900px}
svg.chart{display:block;width:100%;height:auto;background:#fff;font-size:13px}
svg .title{font-weight:600;font-size:15px}svg .plot{fill:#fcfcfc;stroke:#ccc}svg .legend{font-size:14px}
svg .grid{stroke:#eee}svg .label{fill:#444}svg .marker{stroke:#d62728;stroke-dasharray:4 3;stroke-width:1.5}
svg .marker-label{fill:#d62728;font-weight:600}svg .vline{stroke:#bbb;stroke-dasharray:2 3}
svg .pt-label{font-size:12px;font-weight:600}svg .optimal{stroke:#fff;stroke-width:1.5}
@media (max-width:640px){svg.chart{font-size:22px}svg .title{font-size:23px}svg .legend{font-size:22px}
svg .pt-label{font-size:21px}svg .y-label{display:none}body{margin:12px auto}}
"""


def _table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def ttft_samples(run: RunData, summary: dict[str, Any]) -> dict[str, list[float]]:
    """Measured successful TTFTs per target name (the CDF's data)."""
    names = {(t["endpoint"], t["model"], t["provider"]): t["name"] for t in summary["targets"]}
    out: dict[str, list[float]] = {name: [] for name in names.values()}
    measured = {s["index"] for s in summary["steps"] if s["measured"]}
    for r in run.records:
        if r.get("outcome") == "ok" and r.get("ttft_s") is not None and (
                not run.meta or (r.get("phase") == MEASURE and r.get("step") in measured)):
            name = names.get(target_key(r))
            if name is not None:
                out[name].append(float(r["ttft_s"]))
    return out


def _sweep_charts(summary: dict[str, Any], colors: dict[str, str]) -> list[str]:
    # by level: a search's steps run in the order it chose them, not along the x-axis
    steps = sorted((s for s in summary["steps"] if s["measured"]), key=lambda s: s["level"])
    knee_info = summary.get("knee") or {}
    names = [t["name"] for t in summary["targets"]]
    single = len(names) == 1
    x_label = knee_info.get("x") or "level"

    def knee_of(name: str | None) -> dict[str, Any]:
        level = ((knee_info.get("targets", {}).get(name) if name else knee_info.get(ALL)) or {}).get("level")
        return {"x_label": x_label, "marker_x": level, "marker_label": "knee" if level is not None else "",
                "markers": True}

    def series(metric: Any, label: str, dashed: bool = False) -> list[Series]:
        out = []
        for name in names:
            pts = [(s["level"], metric(s["targets"][name])) for s in steps]
            out.append(Series(f"{name} {label}".strip(), [(x, y) for x, y in pts if y is not None], dashed,
                              color=colors[name]))
        return out

    def p50_p95(metric: str) -> list[Series]:
        """p50 solid and p95 dashed, in the target's colour, side by side in the legend."""
        p50 = series(lambda f: f[metric]["p50"], "p50")
        p95 = series(lambda f: f[metric]["p95"], "p95", dashed=True)
        return [s for pair in zip(p50, p95, strict=True) for s in pair]

    common = knee_of(names[0]) if single else {**knee_of(None), "marker_x": None, "marker_label": ""}
    charts = [line_chart(p50_p95("ttft"), title="TTFT against load", y_label="TTFT", y_unit="s", **common),
              line_chart(series(lambda f: f["tpot"]["p50"], "p50"), title="TPOT against load", y_label="TPOT",
                         y_unit="s", **common)]
    if single:
        charts.append(line_chart(series(lambda f: f["throughput"]["output_tokens_per_s"], ""),
                                 title="Output throughput against load", y_label="output tokens/s", **common))
    else:
        for name in names:
            pts = [(s["level"], s["targets"][name]["throughput"]["output_tokens_per_s"]) for s in steps]
            charts.append(line_chart([Series(name, [(x, y) for x, y in pts if y is not None], color=colors[name])],
                                     title=f"Output throughput: {name}", y_label="output tokens/s",
                                     **knee_of(name)))
        total = [Series(ALL, [(s["level"], s[ALL]["throughput"]["output_tokens_per_s"] or 0.0) for s in steps],
                        color="#444")]
        charts.append(line_chart(total, title="Output throughput, all targets", y_label="output tokens/s",
                                 **knee_of(None)))
    return charts + [_pareto_chart(summary, colors), _rate_chart(summary, colors, steps)]


def _pareto_chart(summary: dict[str, Any], colors: dict[str, str]) -> str:
    """Per-user output speed against aggregate output throughput, one curve per target in level order,
    each point labelled with its level; Pareto-optimal points filled, dominated ones hollow."""
    pareto = (summary.get("pareto") or {}).get("targets") or {}
    curves = []
    for name, points in pareto.items():
        curves.append(Series(name, [(p["output_tokens_per_s"], p["per_user_output_tps_p50"]) for p in points],
                             color=colors.get(name), labels=[f"{p['level']:g}" for p in points],
                             highlight=[p["optimal"] for p in points]))
    return line_chart(curves, title="Per-user speed against total throughput (filled: Pareto-optimal)",
                      x_label="aggregate output tokens/s", y_label="output tokens/s per request (p50)")


def achieved_rate(f: dict[str, Any]) -> float | None:
    """The rate a step achieved: arrivals sent per second (open loop), else requests completed per second."""
    rate = f.get("rate")
    if rate and rate.get("achieved_per_s") is not None:
        return float(rate["achieved_per_s"])
    value = f["throughput"]["requests_per_s"]
    return None if value is None else float(value)


def _rate_chart(summary: dict[str, Any], colors: dict[str, str], steps: list[dict[str, Any]]) -> str:
    """TTFT p50 (solid) and p95 (dashed, same colour) against the rate each step achieved."""
    curves = []
    for t in summary["targets"]:
        name = t["name"]
        for q, dashed in (("p50", False), ("p95", True)):
            pts = [(achieved_rate(s["targets"][name]), s["targets"][name]["ttft"][q]) for s in steps]
            curves.append(Series(f"{name} {q}", [(x, y) for x, y in pts if x is not None and y is not None],
                                 dashed, color=colors[name], labels=None if dashed else
                                 [f"{s['level']:g}" for s, (x, y) in zip(steps, pts, strict=True)
                                  if x is not None and y is not None]))
    return line_chart(curves, title="TTFT against achieved rate (labels: level)", x_label="achieved requests/s",
                      y_label="TTFT", y_unit="s", markers=True)


TIMELINE_BINS = 60
TIMELINE_P95_MIN = 5


def ttft_timeline(run: RunData, summary: dict[str, Any]) -> dict[str, list[tuple[float, float, float | None]]]:
    """Per target: (bin middle in seconds since the start, TTFT p50, p95) of the successful requests sent
    in each bin (~TIMELINE_BINS bins over the run, at least one second; p95 only for a bin of at least
    TIMELINE_P95_MIN requests), for the plot beside the server's metrics."""
    duration = max(summary["run"]["duration_s"], 1.0)
    raw = duration / TIMELINE_BINS
    mag = 10 ** math.floor(math.log10(raw))
    width = max(1.0, next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))
    names = {(t["endpoint"], t["model"], t["provider"]): t["name"] for t in summary["targets"]}
    bins: dict[str, dict[int, list[float]]] = {n: {} for n in names.values()}
    start = run.run_start
    for r in run.records:
        if r.get("outcome") == "ok" and r.get("ttft_s") is not None:
            name = names.get(target_key(r))
            if name is not None:
                bins[name].setdefault(int((float(r["start_time"]) - start) // width), []).append(float(r["ttft_s"]))
    out: dict[str, list[tuple[float, float, float | None]]] = {}
    for name, by_bin in bins.items():
        rows: list[tuple[float, float, float | None]] = []
        for b in sorted(by_bin):
            values = sorted(by_bin[b])
            p50 = percentile(values, 50)
            if p50 is not None:
                rows.append(((b + 0.5) * width, p50,
                             percentile(values, 95) if len(values) >= TIMELINE_P95_MIN else None))
        out[name] = rows
    return out


def _server_charts(summary: dict[str, Any], colors: dict[str, str],
                   timeline: dict[str, list[tuple[float, float, float | None]]],
                   series: dict[str, list[tuple[float, dict[str, float]]]]) -> list[str]:
    """The client's TTFT and the server's own figures on one time axis (seconds since the start), with
    the steps' boundaries dotted."""
    x_range = (0.0, max(summary["run"]["duration_s"], 1.0))
    bounds = [float(s["window"][0]) for s in summary["steps"] if s["measured"]] if len(summary["steps"]) > 1 else []
    axis: dict[str, Any] = {"x_label": "seconds since the run start", "x_range": x_range, "vlines": bounds}
    client = []
    for name, rows in timeline.items():
        client.append(Series(f"{name} p50", [(t, p50) for t, p50, _ in rows], color=colors.get(name)))
        client.append(Series(f"{name} p95", [(t, p95) for t, _, p95 in rows if p95 is not None], dashed=True,
                             color=colors.get(name)))
    charts = [line_chart(client, title="Client: TTFT over the run (by send time)",
                         y_label="TTFT", y_unit="s", **axis)]
    queue, kv, tokens = [], [], []
    for i, (url, samples) in enumerate(series.items()):
        color = PALETTE[(len(colors) + i) % len(PALETTE)] if len(series) > 1 else "#333"
        short = f" {urlsplit(url).netloc}" if len(series) > 1 else ""
        queue.append(Series(f"running{short}", [(t, v["running"]) for t, v in samples if "running" in v],
                            color=color, step=True))
        queue.append(Series(f"waiting{short}", [(t, v["waiting"]) for t, v in samples if "waiting" in v],
                            dashed=True, color=color, step=True))
        kv.append(Series(f"KV cache{short}", [(t, v["kv_cache_usage"]) for t, v in samples if "kv_cache_usage" in v],
                         color=color, step=True))
        counted = [(t, v["generated_tokens"]) for t, v in samples if "generated_tokens" in v]
        tokens.append(Series(f"generated{short}", [((t0 + t1) / 2, max(0.0, v1 - v0) / (t1 - t0))
                                              for (t0, v0), (t1, v1) in zip(counted, counted[1:], strict=False)
                                              if t1 > t0], color=color))
    charts.append(line_chart(queue, title="Server: requests running (solid) and waiting (dashed)",
                             y_label="requests", **axis))
    if any(s.points for s in kv):
        charts.append(line_chart(kv, title="Server: KV-cache usage", y_label="usage", y_unit="%", y_max=1.0, **axis))
    if any(s.points for s in tokens):
        charts.append(line_chart(tokens, title="Server: generated tokens/s (between scrapes)",
                                 y_label="tokens/s", **axis))
    return charts


def _server_section(summary: dict[str, Any]) -> list[str]:
    block = summary.get("server_metrics")
    if not block:
        return []
    out = ["<h2>The server's own metrics</h2>",
           "<p class='meta'>Scraped once a second on the records' clock; gauges: mean and max of the samples in "
           "each step's measured window (samples = n); counters: rate over the window.</p>"]
    for src in block["sources"]:
        out.append(f"<p>{escape(source_text(src))}</p>")
        if src["ok"]:
            out.append(_table(SERVER_HEADERS, server_rows(summary, src)))
    return out


def render_html(summary: dict[str, Any], ttfts: dict[str, list[float]] | None = None,
                timeline: dict[str, list[tuple[float, float, float | None]]] | None = None,
                server: dict[str, list[tuple[float, dict[str, float]]]] | None = None) -> str:
    """The page; `ttfts` (ttft_samples) feed the CDF, `timeline` (ttft_timeline) and `server`
    (servermetrics.server_series) the plots on the run's time axis."""
    colors = target_colors([t["name"] for t in summary["targets"]])
    run = summary["run"]
    title = f"tokenpulse load test {run.get('id') or ''}".strip()
    body = [f"<h1>{escape(title)}</h1>",
            f"<p class='meta'>{escape(shape_text(summary))} &middot; ran {run['duration_s']:.1f} s"
            f" &middot; stop: {escape(str(run.get('stop_reason') or 'unknown'))} &middot; {run['records']} records"
            f" (Locust counted {escape(str(run.get('locust_e2e_requests')))}) &middot; goodput SLO: "
            f"{escape(slo_text(summary['slo']))}</p>"]
    body += [f"<div class='warn'>{escape(w)}</div>" for w in summary["warnings"]]
    body += ["<h2>Per target</h2>", _table(TARGET_HEADERS, target_rows(summary)),
             "<p class='meta'>Percentiles from every successful request's record in the measured windows "
             "(warm-up excluded), with the order-statistic confidence interval [low-high] (? where the sample "
             "is too small for a bound) and the sample size (the n ok column, or n= in the cell); "
             "throughput over the measured windows, ± the interval's half-width.</p>"]
    for i, block in enumerate(router_blocks(summary.get("router_choice") or [], quantile_cell)):
        body += ([f"<h2>{escape(TITLE)}</h2>", f"<p class='meta'>{escape(INTRO)}</p>"] if i == 0 else [])
        body += [f"<h3>{escape(block['title'])}</h3>", f"<p>{escape(block['line'])}</p>",
                 _table(SERVED_HEADERS, block["served"]), _table(COMPARE_HEADERS, block["compare"]),
                 f"<p>{escape(block['verdict'])}</p>"]
    prompts = prompt_rows(summary)
    if prompts:
        body += ["<h2>Prompt length and reasoning budget</h2>", _table(PROMPT_HEADERS, prompts),
                 "<p class='meta'>Input tokens target: what the workload asked for; prompt tokens counted: the "
                 "server's usage (means over the n requests that have both). Reasoning exhausted: successful "
                 "requests that spent all of max_tokens on reasoning and gave no answer.</p>"]
    if is_open_loop(summary):
        body += ["<h2>Open loop: what an arriving user waited</h2>", _table(OPEN_LOOP_HEADERS, open_loop_rows(summary)),
                 "<p class='meta'>Queue wait: from the scheduled arrival to the send. TTFT from arrival = queue "
                 "wait + TTFT; the service TTFT counts from the send. Goodput counts arrivals never sent and "
                 "arrivals that waited past the TTFT objective as not good.</p>"]
    charts = []
    if ttfts:
        cdf = [Series(name, cdf_points(values), color=colors.get(name), step=True)
               for name, values in ttfts.items() if values]
        charts.append(line_chart(cdf, title="TTFT distribution (CDF)", x_label="TTFT (log scale)", x_unit="s",
                                 y_label="share of requests", y_unit="%", log_x=True, y_max=1.0))
    if len(summary["steps"]) > 1:
        charts += _sweep_charts(summary, colors)
    prefill_chart = prefill.chart(summary.get("prefill") or {})
    if prefill_chart:
        charts.append(prefill_chart)
    if charts:
        body += ["<h2>Plots</h2>", _charts(charts)]
    if server:
        body += _server_section(summary)
        body += ["<h3>Client latency and the server's state on one time axis</h3>",
                 "<p class='meta'>Seconds since the run start; a dotted line marks where a step's measured "
                 "window starts.</p>",
                 _charts(_server_charts(summary, colors, timeline or {}, server))]
    elif summary.get("server_metrics"):
        body += _server_section(summary)
    if summary.get("prefill"):
        body += ["<h2>Prefill scaling</h2>", f"<p class='meta'>{escape(prefill.NOTE)}</p>"]
        body += [_table(headers, rows) for headers, rows in prefill.tables(summary["prefill"])]
    if summary.get("cache"):
        body += ["<h2>Prompt caching</h2>", f"<p class='meta'>{escape(cache.NOTE)}</p>",
                 _table(cache.HEADERS, cache.rows(summary["cache"]))]
    if len(summary["steps"]) > 1:
        body += ["<h2>Per step (all targets)</h2>", _table(STEP_HEADERS, step_rows(summary))]
        knee = summary.get("knee")
        if knee:
            body.append(f"<p class='meta'>Knee rule: {escape(knee[ALL]['rule'])}.</p>")
    search = summary.get("search")
    if search:
        body += ["<h2>Capacity search</h2>", f"<p>{escape(answer_text(search))}</p>",
                 _table(SEARCH_HEADERS, search_rows(search)), f"<p class='meta'>{escape(SEARCH_NOTE)}</p>"]
    structured = validity_tables(summary.get("validity"))
    if structured:
        body += ["<h2>Structured answers</h2>", f"<p class='meta'>{escape(VALIDITY_INTRO)}</p>"]
        for text, headers, rows in structured:
            body += [f"<p>{escape(text)}</p>", _table(headers, rows)]
    errors = [[t["name"], cls, str(n)] for t in summary["targets"] for cls, n in t["overall"]["error_classes"].items()]
    if errors:
        body += ["<h2>Errors by class</h2>", _table(("target", "error class", "requests"), errors)]
    for matrix in summary.get("provider_matrix") or ():  # report/matrix.py
        body += [f"<h2>Provider matrix: {escape(matrix['model'])} on {escape(matrix['endpoint'])}</h2>"]
        body += [f"<h3>{escape(title)}</h3>" + _table(headers, rows) for title, headers, rows in matrix_tables(matrix)]
        body += [f"<p class='meta'>{escape(lookup_note(matrix))}</p>"]
    gen = summary["generator"]["overall"]
    rows = [[w, f"{v['cpu_mean'] * 100:.0f}%", f"{v['cpu_max'] * 100:.0f}%"] for w, v in gen["workers"].items()]
    body += ["<h2>Load generator</h2>",
             f"<p>client lag p50 {_ms(gen['lag']['p50'])}, p99 {_ms(gen['lag']['p99'])} "
             f"(warning above {summary['generator']['thresholds']['lag_p99_s'] * 1000:g} ms or "
             f"{summary['generator']['thresholds']['cpu_ratio']:.0%} CPU)</p>",
             _table(("worker", "CPU mean", "CPU max"), rows)]
    if search:
        body.append(f"<p>{escape(client_bound_text(search))}</p>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _charts(charts: list[str]) -> str:
    """Each chart in its own box; on a narrow screen the chart scales to the width and its text grows in
    the SVG's units (the CSS media query) so that it stays readable."""
    return "<div class='charts'>" + "".join(f"<div class='chart-box'>{c}</div>" for c in charts) + "</div>"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f} ms"
