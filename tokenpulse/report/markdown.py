"""report.md and the console tables printed at the end of `tokenpulse load` / by `tokenpulse report`.

Both render the same rows (`target_rows`, `step_rows`, `open_loop_rows`) so the terminal and the file
never disagree; only the table syntax differs (aligned text vs Markdown pipes).

Every percentile cell shows its interval (`212 ms [205-220]`, the order-statistic interval at the
summary's `ci_level`; `?` for a bound the sample is too small to give) and its sample size: the row's
`n ok` column, or `n=` in the cell when the percentile has a different one (TTFC of reasoning-only
answers, TPOT of one-token answers, chunk gaps).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tokenpulse.core.format import fmt_number, fmt_seconds, render_table
from tokenpulse.core.stats import CONFIDENCE, z_value
from tokenpulse.report import cache, prefill
from tokenpulse.report.knee import RULE_TEXT
from tokenpulse.report.routing import router_markdown
from tokenpulse.report.search import HEADERS as SEARCH_HEADERS
from tokenpulse.report.search import NOTE as SEARCH_NOTE
from tokenpulse.report.search import answer_text, client_bound_text, search_rows
from tokenpulse.report.servermetrics import server_markdown
from tokenpulse.report.summary import ALL
from tokenpulse.report.validity import validity_markdown, validity_tables

TARGET_HEADERS = ("target", "requests", "n ok", "errors", "cancelled", "TTFT p50", "TTFT p95", "TTFT p99",
                  "TTFC p50", "TPOT p50", "E2E p50", "gap p99", "tok/s/req p50", "out tok/s", "req/s", "goodput",
                  "cost USD")
STEP_HEADERS = ("step", "level", "requests", "n ok", "errors", "cancelled", "TTFT p50", "TTFT p95", "TPOT p50",
                "out tok/s", "in tok/s", "req/s", "goodput", "gen CPU", "lag p99", "")
PROMPT_HEADERS = ("target", "requests", "n", "input tokens target", "prompt tokens counted", "counted / target",
                  "reasoning exhausted")
OPEN_LOOP_HEADERS = ("step", "rate", "offered/s", "achieved/s", "never sent", "queue wait p50", "queue wait p95",
                     "TTFT p50 from arrival", "TTFT p95 from arrival", "TTFT p50 service", "TTFT p95 service",
                     "goodput")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def quantile_cell(dist: dict[str, Any] | None, q: int, row_n: int | None = None, seconds: bool = True) -> str:
    """`212 ms [205-220]`: a percentile, its interval (p50/p95/p99) and, when it differs from the row's,
    its sample size."""
    if not dist or dist.get(f"p{q}") is None:
        return "-" if not dist or not dist.get("n") else f"- (n={dist['n']})"
    fmt = fmt_seconds if seconds else fmt_number
    text = fmt(dist[f"p{q}"])
    ci = dist.get(f"p{q}_ci")
    if ci is not None:
        lo, hi = ci
        lo_text, hi_text = ("?" if lo is None else fmt(lo)), ("?" if hi is None else fmt(hi))
        if lo_text.endswith(" ms") and hi_text.endswith(" ms"):
            lo_text = lo_text.removesuffix(" ms")
        text += f" [{lo_text}-{hi_text}]"
    if row_n is None or dist.get("n") != row_n:
        text += f" (n={fmt_number(dist.get('n'))})"
    return text


def _rate_cell(tp: dict[str, Any], key: str, digits: int = 1) -> str:
    value, se = tp.get(key), tp.get(f"{key}_se")
    if value is None:
        return "-"
    return fmt_number(value, digits) + ("" if se is None else f" ±{fmt_number(z_value(CONFIDENCE) * se, digits)}")


def _errors_cell(f: dict[str, Any]) -> str:
    return f"{f['errors']} ({_pct(f['error_rate'])})" if f["requests"] else "0"


def _figure_cells(f: dict[str, Any]) -> list[str]:
    n = f["ok"]
    return [
        fmt_number(f["requests"]), fmt_number(n), _errors_cell(f), fmt_number(f.get("cancelled", 0)),
        quantile_cell(f["ttft"], 50, n), quantile_cell(f["ttft"], 95, n), quantile_cell(f["ttft"], 99, n),
        quantile_cell(f["ttfc"], 50, n), quantile_cell(f["tpot"], 50, n), quantile_cell(f["e2e"], 50, n),
        quantile_cell(f["chunk_gap"], 99, n), quantile_cell(f["output_tps"], 50, n, seconds=False),
        _rate_cell(f["throughput"], "output_tokens_per_s"), _rate_cell(f["throughput"], "requests_per_s", 2),
        _goodput_cell(f), _usd(f["cost_usd"]),
    ]


def _goodput_cell(f: dict[str, Any]) -> str:
    g = f["goodput"]
    if g.get("ratio") is None:
        return "-"
    return f"{_pct(g['ratio'])} ({g['requests']}/{g.get('judged', f['requests'])})"


def target_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = [[t["name"], *_figure_cells(t["overall"])] for t in summary["targets"]]
    if len(summary["targets"]) > 1:
        rows.append([ALL, *_figure_cells(summary["overall"])])
    return rows


def step_rows(summary: dict[str, Any], target: str | None = None) -> list[list[str]]:
    """One row per step (all targets, or one target's figures); the knee's row is marked."""
    knee = summary.get("knee") or {}
    knee_level = (knee.get("targets", {}).get(target) if target else knee.get(ALL) or {}) or {}
    gen = summary["generator"]["steps"]
    rows = []
    for s in summary["steps"]:
        level = f"{s['level']:g}"
        if not s["measured"]:
            rows.append([str(s["index"]), level, "not measured", *([""] * (len(STEP_HEADERS) - 3))])
            continue
        f = s["targets"][target] if target else s[ALL]
        g = gen.get(str(s["index"]), {})
        mark = []
        if knee_level.get("level") == s["level"]:
            mark.append("<- knee")
        if g.get("limited"):
            mark.append("generator-limited")
        n = f["ok"]
        rows.append([
            str(s["index"]), level, fmt_number(f["requests"]), fmt_number(n), _errors_cell(f),
            fmt_number(f.get("cancelled", 0)),
            quantile_cell(f["ttft"], 50, n), quantile_cell(f["ttft"], 95, n), quantile_cell(f["tpot"], 50, n),
            _rate_cell(f["throughput"], "output_tokens_per_s"), _rate_cell(f["throughput"], "input_tokens_per_s"),
            _rate_cell(f["throughput"], "requests_per_s", 2), _goodput_cell(f),
            _pct(g.get("cpu_mean_max")), quantile_cell(g.get("lag"), 99), " ".join(mark),
        ])
    return rows


def prompt_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Per target: the prompt length asked for and the server's count (mean per request, over the
    requests that have both: n), and the successful requests that spent max_tokens on reasoning."""
    prompts = summary.get("prompts")
    if not prompts:
        return []
    named = list(prompts["targets"].items())
    if len(named) > 1:
        named.append((ALL, prompts["all"]))
    rows = []
    for name, f in named:
        tokens, ex = f["input_tokens"], f["reasoning_exhausted"]
        ratio = tokens["ratio"]
        rows.append([name, fmt_number(f["requests"]), fmt_number(tokens["n"]), fmt_number(tokens["target_mean"], 1),
                     fmt_number(tokens["prompt_tokens_mean"], 1), "-" if ratio is None else f"{ratio:.3f}",
                     f"{ex['requests']} of {ex['of_ok']} ok"])
    return rows


def is_open_loop(summary: dict[str, Any]) -> bool:
    return summary["run"].get("shape") == "rate" or "queue_wait" in summary["overall"]


def open_loop_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Per step of an arrival-rate run: offered and achieved rates, the wait for a free user, and TTFT
    from the scheduled arrival next to the service's own TTFT."""
    rows = []
    for s in summary["steps"]:
        if not s["measured"]:
            continue
        f = s[ALL]
        rate = f.get("rate") or {}
        n = f["ok"]
        rows.append([
            str(s["index"]), "-" if s.get("rate") is None else f"{s['rate']:g}/s",
            fmt_number(rate.get("offered_per_s"), 2), fmt_number(rate.get("achieved_per_s"), 2),
            fmt_number(rate.get("never_sent", 0)),
            quantile_cell(f.get("queue_wait"), 50), quantile_cell(f.get("queue_wait"), 95),
            quantile_cell(f.get("ttft_from_schedule"), 50, n), quantile_cell(f.get("ttft_from_schedule"), 95, n),
            quantile_cell(f["ttft"], 50, n), quantile_cell(f["ttft"], 95, n), _goodput_cell(f),
        ])
    return rows


def shape_text(summary: dict[str, Any]) -> str:
    """The shape with the parameters it ran with (`rate 2, 4/s, 64 users, 30 s steps`)."""
    run = summary["run"]
    p = run.get("shape_params")
    if not p:
        return f"shape {run.get('shape') or 'unknown (no schedule)'}"
    kind = p["kind"]
    step = f", {p['step_s']:g} s per step" if p.get("steps", 1) > 1 and p.get("step_s") else ""
    traffic = traffic_text(run.get("options") or {})
    if kind == "rate":
        rates = ", ".join(f"{r:g}" for r in p.get("rates_per_s") or [])
        extra = "".join(f", {k} {p[k]}" for k in ("arrivals", "seed") if p.get(k) is not None)
        return f"shape rate: {rates} arrivals/s, {p.get('users')} users{step}{extra}{traffic}"
    if kind == "fixed":
        return f"shape fixed: {p.get('users')} users, {p.get('step_s', 0):g} s{traffic}"
    levels = ", ".join(f"{v:g}" for v in p.get("levels") or [])
    unit = "requests/s" if p.get("varies") == "rate" else "users"
    return f"shape {kind}: levels {levels} {unit}{step}{traffic}"


def traffic_text(options: dict[str, Any]) -> str:
    """The traffic options a run used (`; trace replay of t.jsonl at speed 2; at most 100 requests`)."""
    parts = []
    if options.get("trace"):
        name = str(options["trace"]).rsplit("/", 1)[-1]
        parts.append(f"trace replay of {name} at speed {options.get('speed') or 1:g}")
    if options.get("burstiness"):
        parts.append(f"gamma arrivals, burstiness {options['burstiness']:g}")
    if options.get("input_lengths"):
        parts.append("input lengths " + ", ".join(str(n) for n in options["input_lengths"]))
    if options.get("max_requests"):
        parts.append(f"at most {options['max_requests']} requests")
    return "".join(f"; {part}" for part in parts)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _error_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in summary["targets"]:
        for cls, n in t["overall"]["error_classes"].items():
            rows.append([t["name"], cls, str(n)])
    return rows


def console_report(summary: dict[str, Any]) -> str:
    """What the terminal shows at the end of a run."""
    parts = [render_table(TARGET_HEADERS, target_rows(summary))]
    if len(summary["steps"]) > 1:
        parts.append(render_table(STEP_HEADERS, step_rows(summary)))
    if is_open_loop(summary):
        parts.append(render_table(OPEN_LOOP_HEADERS, open_loop_rows(summary)))
    if summary.get("prefill"):
        parts += [render_table(headers, rows) for headers, rows in prefill.tables(summary["prefill"])]
    if summary.get("cache"):
        parts.append(render_table(cache.HEADERS, cache.rows(summary["cache"])))
    parts += [render_table(headers, rows) for _, headers, rows in validity_tables(summary.get("validity"))]
    knee = (summary.get("knee") or {}).get(ALL)
    if knee:
        parts.append(f"knee: {knee['level']:g} {summary['knee']['x']} ({knee['reason']})" if knee["level"] is not None
                     else f"knee: {knee['reason']}")
    search = summary.get("search")
    if search:
        parts.append(render_table(SEARCH_HEADERS, search_rows(search)))
        parts.append(answer_text(search))
    parts += [f"warning: {w}" for w in summary["warnings"]]
    return "\n\n".join(parts)


def markdown_report(summary: dict[str, Any]) -> str:
    run = summary["run"]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(run["run_start"])) if run["run_start"] else "-"
    out = [f"# tokenpulse load test {run.get('id') or ''}".rstrip(), ""]
    out += [f"- started {started}, ran {run['duration_s']:.1f} s, stop: {run.get('stop_reason') or 'unknown'}",
            f"- {shape_text(summary)}; workers {run.get('workers')}",
            f"- records: {run['records']} ({', '.join(f'{k} {v}' for k, v in run['records_by_phase'].items())}); "
            f"Locust counted {run.get('locust_e2e_requests')}",
            f"- SLO for goodput: {slo_text(summary['slo'])}",
            "- percentiles from the per-request records (successful requests, measured windows only); "
            f"[low-high]: {_ci_level(summary):.0%} order-statistic interval, `?` where the sample is too small; "
            f"rates ± {z_value(CONFIDENCE):.2f} standard errors", ""]
    if summary["warnings"]:
        out += ["## Warnings", ""] + [f"- {w}" for w in summary["warnings"]] + [""]
    out += ["## Per target", "", _md_table(TARGET_HEADERS, target_rows(summary)), ""]
    out += router_markdown(summary.get("router_choice") or [], quantile_cell, _md_table)
    if is_open_loop(summary):
        out += ["## Open loop: what an arriving user waited", "",
                "Queue wait: from the scheduled arrival to the send (all users busy). TTFT from arrival = "
                "queue wait + TTFT; the service's TTFT counts from the send.", "",
                _md_table(OPEN_LOOP_HEADERS, open_loop_rows(summary)), ""]
    prompts = prompt_rows(summary)
    if prompts:
        out += ["## Prompt length and reasoning budget", "",
                "Input tokens target: what the workload asked for (calibrated to the server's tokenizer); "
                "prompt tokens counted: the server's usage (means over the n requests that have both). "
                "Reasoning exhausted: successful requests that spent all of max_tokens on reasoning (no TTFC).",
                "", _md_table(PROMPT_HEADERS, prompts), ""]
    if len(summary["steps"]) > 1:
        out += ["## Per step (all targets)", "", _md_table(STEP_HEADERS, step_rows(summary)), ""]
        for t in summary["targets"]:
            if len(summary["targets"]) > 1:
                out += [f"### {t['name']}", "", _md_table(STEP_HEADERS, step_rows(summary, t["name"])), ""]
    if summary.get("prefill"):
        out += ["## Prefill scaling", "", prefill.NOTE, ""]
        for headers, rows in prefill.tables(summary["prefill"]):
            out += [_md_table(headers, rows), ""]
    if summary.get("cache"):
        out += ["## Prompt caching", "", cache.NOTE, "", _md_table(cache.HEADERS, cache.rows(summary["cache"])), ""]
    knee = summary.get("knee")
    if knee:
        out += ["## Saturation knee", "", f"Rule: {RULE_TEXT}.", ""]
        rows = [[ALL, _knee_text(knee[ALL])]] + [[n, _knee_text(k)] for n, k in knee["targets"].items()]
        out += [_md_table(("target", f"knee ({knee['x']})"), rows), ""]
    out += server_markdown(summary, _md_table)
    if summary.get("provider_matrix"):
        from tokenpulse.report.matrix_render import matrix_markdown  # it renders with this module's cells

        out += [matrix_markdown(summary["provider_matrix"])]
    search = summary.get("search")
    if search:
        out += ["## Capacity search", "", answer_text(search), "", SEARCH_NOTE, "",
                _md_table(SEARCH_HEADERS, search_rows(search)), ""]
    out += validity_markdown(summary.get("validity"))
    errors = _error_rows(summary)
    if errors:
        out += ["## Errors by class", "", _md_table(("target", "error class", "requests"), errors), ""]
    gen = summary["generator"]["overall"]
    out += ["## Load generator", "",
            f"Client lag p50 {fmt_seconds(gen['lag']['p50'])}, p99 {fmt_seconds(gen['lag']['p99'])}; "
            + ", ".join(f"worker {w}: CPU mean {v['cpu_mean'] * 100:.0f}%, max {v['cpu_max'] * 100:.0f}%"
                        for w, v in gen["workers"].items()), ""]
    if search:
        out += [client_bound_text(search), ""]
    return "\n".join(out) + "\n"


def slo_text(slo: dict[str, Any]) -> str:
    """The per-request objectives goodput judges (E2E only when set)."""
    parts = [f"TTFT <= {slo.get('ttft_s')} s", f"TPOT <= {slo.get('tpot_s')} s"]
    if slo.get("e2e_s") is not None:
        parts.append(f"E2E <= {slo['e2e_s']} s")
    return ", ".join(parts)


def _ci_level(summary: dict[str, Any]) -> float:
    return float(summary["overall"]["ttft"].get("ci_level") or 0.95)


def _knee_text(knee: dict[str, Any]) -> str:
    if knee.get("level") is None:
        return knee.get("reason") or "-"
    per_target = knee.get("per_target_level")
    extra = f" ({per_target:g} per target)" if per_target is not None and per_target != knee["level"] else ""
    return f"{knee['level']:g}{extra}: {knee['reason']}"
