"""report.html: one self-contained page (inline CSS and SVG, no script, no external resource).

Plots: the TTFT distribution (CDF) of each target; for runs with several steps, TTFT p50/p95, TPOT p50
and aggregate output throughput against the load level. A knee is drawn only on the plots of the target
it belongs to: with one target, on its plots; with several, each target gets its own throughput plot
with its own knee, the all-targets throughput plot carries the knee of all targets together, and the
plots that overlay every target carry none.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tokenpulse.core.stats import cdf_points
from tokenpulse.report.markdown import (
    OPEN_LOOP_HEADERS,
    PROMPT_HEADERS,
    STEP_HEADERS,
    TARGET_HEADERS,
    is_open_loop,
    open_loop_rows,
    prompt_rows,
    shape_text,
    step_rows,
    target_rows,
)
from tokenpulse.report.run import RunData
from tokenpulse.report.summary import ALL, target_key
from tokenpulse.report.svg import Series, line_chart
from tokenpulse.runfolder.schedule import MEASURE

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px;margin:6px 0}
.meta{color:#555}.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;font-size:11px}svg .title{font-weight:600;font-size:13px}svg .plot{fill:#fcfcfc;stroke:#ccc}
svg .grid{stroke:#eee}svg .label{fill:#444}svg .marker{stroke:#d62728;stroke-dasharray:4 3;stroke-width:1.5}
svg .marker-label{fill:#d62728;font-weight:600}
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


def _sweep_charts(summary: dict[str, Any]) -> list[str]:
    steps = [s for s in summary["steps"] if s["measured"]]
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
            out.append(Series(f"{name} {label}".strip(), [(x, y) for x, y in pts if y is not None], dashed))
        return out

    common = knee_of(names[0]) if single else {**knee_of(None), "marker_x": None, "marker_label": ""}
    ttft = series(lambda f: f["ttft"]["p50"], "p50") + series(lambda f: f["ttft"]["p95"], "p95", dashed=True)
    charts = [line_chart(ttft, title="TTFT against load", y_label="TTFT", y_unit="s", **common),
              line_chart(series(lambda f: f["tpot"]["p50"], "p50"), title="TPOT against load", y_label="TPOT",
                         y_unit="s", **common)]
    if single:
        charts.append(line_chart(series(lambda f: f["throughput"]["output_tokens_per_s"], ""),
                                 title="Output throughput against load", y_label="output tokens/s", **common))
        return charts
    for name in names:
        pts = [(s["level"], s["targets"][name]["throughput"]["output_tokens_per_s"]) for s in steps]
        charts.append(line_chart([Series(name, [(x, y) for x, y in pts if y is not None])],
                                 title=f"Output throughput: {name}", y_label="output tokens/s", **knee_of(name)))
    total = [Series(ALL, [(s["level"], s[ALL]["throughput"]["output_tokens_per_s"] or 0.0) for s in steps])]
    charts.append(line_chart(total, title="Output throughput, all targets", y_label="output tokens/s",
                             **knee_of(None)))
    return charts


def render_html(summary: dict[str, Any], ttfts: dict[str, list[float]] | None = None) -> str:
    run = summary["run"]
    title = f"tokenpulse load test {run.get('id') or ''}".strip()
    body = [f"<h1>{escape(title)}</h1>",
            f"<p class='meta'>{escape(shape_text(summary))} &middot; ran {run['duration_s']:.1f} s"
            f" &middot; stop: {escape(str(run.get('stop_reason') or 'unknown'))} &middot; {run['records']} records"
            f" (Locust counted {escape(str(run.get('locust_e2e_requests')))}) &middot; goodput SLO: TTFT &le; "
            f"{escape(str(summary['slo'].get('ttft_s')))} s, TPOT &le; "
            f"{escape(str(summary['slo'].get('tpot_s')))} s</p>"]
    body += [f"<div class='warn'>{escape(w)}</div>" for w in summary["warnings"]]
    body += ["<h2>Per target</h2>", _table(TARGET_HEADERS, target_rows(summary)),
             "<p class='meta'>Percentiles from every successful request's record in the measured windows "
             "(warm-up excluded), with the order-statistic confidence interval [low-high] (? where the sample "
             "is too small for a bound) and the sample size (the n ok column, or n= in the cell); "
             "throughput over the measured windows, ± the interval's half-width.</p>"]
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
        cdf = [Series(name, cdf_points(values)) for name, values in ttfts.items() if values]
        charts.append(line_chart(cdf, title="TTFT distribution (CDF)", x_label="TTFT (log scale)", x_unit="s",
                                 y_label="share of requests", y_unit="%", log_x=True, y_max=1.0, width=760))
    if len(summary["steps"]) > 1:
        charts += _sweep_charts(summary)
    if charts:
        body += ["<h2>Plots</h2>", "<div class='charts'>" + "".join(charts) + "</div>"]
    if len(summary["steps"]) > 1:
        body += ["<h2>Per step (all targets)</h2>", _table(STEP_HEADERS, step_rows(summary))]
        knee = summary.get("knee")
        if knee:
            body.append(f"<p class='meta'>Knee rule: {escape(knee[ALL]['rule'])}.</p>")
    errors = [[t["name"], cls, str(n)] for t in summary["targets"] for cls, n in t["overall"]["error_classes"].items()]
    if errors:
        body += ["<h2>Errors by class</h2>", _table(("target", "error class", "requests"), errors)]
    gen = summary["generator"]["overall"]
    rows = [[w, f"{v['cpu_mean'] * 100:.0f}%", f"{v['cpu_max'] * 100:.0f}%"] for w, v in gen["workers"].items()]
    body += ["<h2>Load generator</h2>",
             f"<p>client lag p50 {_ms(gen['lag']['p50'])}, p99 {_ms(gen['lag']['p99'])} "
             f"(warning above {summary['generator']['thresholds']['lag_p99_s'] * 1000:g} ms or "
             f"{summary['generator']['thresholds']['cpu_ratio']:.0%} CPU)</p>",
             _table(("worker", "CPU mean", "CPU max"), rows)]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f} ms"
