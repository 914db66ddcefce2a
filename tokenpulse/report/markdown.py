"""report.md and the console tables printed at the end of `tokenpulse load` / by `tokenpulse report`.

Both render the same rows (`target_rows`, `step_rows`) so the terminal and the file never disagree; only
the table syntax differs (aligned text vs Markdown pipes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tokenpulse.core.format import fmt_number, fmt_seconds, render_table
from tokenpulse.report.knee import RULE_TEXT
from tokenpulse.report.summary import ALL

TARGET_HEADERS = ("target", "requests", "errors", "TTFT p50", "TTFT p95", "TTFT p99", "TTFC p50", "TPOT p50",
                  "E2E p50", "gap p99", "tok/s/req p50", "out tok/s", "req/s", "goodput", "cost USD")
STEP_HEADERS = ("step", "level", "requests", "errors", "TTFT p50", "TTFT p95", "TPOT p50", "out tok/s",
                "in tok/s", "req/s", "goodput", "gen CPU", "lag p99", "")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _figure_cells(f: dict[str, Any]) -> list[str]:
    return [
        fmt_number(f["requests"]),
        f"{f['errors']} ({_pct(f['error_rate'])})" if f["requests"] else "0",
        fmt_seconds(f["ttft"]["p50"]), fmt_seconds(f["ttft"]["p95"]), fmt_seconds(f["ttft"]["p99"]),
        fmt_seconds(f["ttfc"]["p50"]), fmt_seconds(f["tpot"]["p50"]), fmt_seconds(f["e2e"]["p50"]),
        fmt_seconds(f["chunk_gap"]["p99"]), fmt_number(f["output_tps"]["p50"]),
        fmt_number(f["throughput"]["output_tokens_per_s"]), fmt_number(f["throughput"]["requests_per_s"], 2),
        _pct(f["goodput"]["ratio"]), _usd(f["cost_usd"]),
    ]


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
        rows.append([
            str(s["index"]), level, fmt_number(f["requests"]),
            f"{f['errors']} ({_pct(f['error_rate'])})" if f["requests"] else "0",
            fmt_seconds(f["ttft"]["p50"]), fmt_seconds(f["ttft"]["p95"]), fmt_seconds(f["tpot"]["p50"]),
            fmt_number(f["throughput"]["output_tokens_per_s"]), fmt_number(f["throughput"]["input_tokens_per_s"]),
            fmt_number(f["throughput"]["requests_per_s"], 2), _pct(f["goodput"]["ratio"]),
            _pct(g.get("cpu_mean_max")), fmt_seconds((g.get("lag") or {}).get("p99")), " ".join(mark),
        ])
    return rows


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
    knee = (summary.get("knee") or {}).get(ALL)
    if knee:
        parts.append(f"knee: {knee['level']:g} {summary['knee']['x']} ({knee['reason']})" if knee["level"] is not None
                     else f"knee: {knee['reason']}")
    parts += [f"warning: {w}" for w in summary["warnings"]]
    return "\n\n".join(parts)


def markdown_report(summary: dict[str, Any]) -> str:
    run = summary["run"]
    opts = run.get("options", {})
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(run["run_start"])) if run["run_start"] else "-"
    out = [f"# tokenpulse load test {run.get('id') or ''}".rstrip(), ""]
    out += [f"- started {started}, ran {run['duration_s']:.1f} s, stop: {run.get('stop_reason') or 'unknown'}",
            f"- shape: {run.get('shape')}, users {opts.get('users')}, levels {opts.get('levels') or '-'}, "
            f"rate {opts.get('rate') or '-'}, workers {run.get('workers')}",
            f"- records: {run['records']} ({', '.join(f'{k} {v}' for k, v in run['records_by_phase'].items())}); "
            f"Locust counted {run.get('locust_e2e_requests')}",
            f"- SLO for goodput: TTFT <= {summary['slo'].get('ttft_s')} s, TPOT <= {summary['slo'].get('tpot_s')} s",
            "- percentiles from the per-request records (successful requests, measured windows only)", ""]
    if summary["warnings"]:
        out += ["## Warnings", ""] + [f"- {w}" for w in summary["warnings"]] + [""]
    out += ["## Per target", "", _md_table(TARGET_HEADERS, target_rows(summary)), ""]
    if len(summary["steps"]) > 1:
        out += ["## Per step (all targets)", "", _md_table(STEP_HEADERS, step_rows(summary)), ""]
        for t in summary["targets"]:
            if len(summary["targets"]) > 1:
                out += [f"### {t['name']}", "", _md_table(STEP_HEADERS, step_rows(summary, t["name"])), ""]
    knee = summary.get("knee")
    if knee:
        out += ["## Saturation knee", "", f"Rule: {RULE_TEXT}.", ""]
        rows = [[ALL, _knee_text(knee[ALL])]] + [[n, _knee_text(k)] for n, k in knee["targets"].items()]
        out += [_md_table(("target", f"knee ({knee['x']})"), rows), ""]
    errors = _error_rows(summary)
    if errors:
        out += ["## Errors by class", "", _md_table(("target", "error class", "requests"), errors), ""]
    gen = summary["generator"]["overall"]
    out += ["## Load generator", "",
            f"Client lag p50 {fmt_seconds(gen['lag']['p50'])}, p99 {fmt_seconds(gen['lag']['p99'])}; "
            + ", ".join(f"worker {w}: CPU mean {v['cpu_mean'] * 100:.0f}%, max {v['cpu_max'] * 100:.0f}%"
                        for w, v in gen["workers"].items()), ""]
    return "\n".join(out) + "\n"


def _knee_text(knee: dict[str, Any]) -> str:
    if knee.get("level") is None:
        return knee.get("reason") or "-"
    per_target = knee.get("per_target_level")
    extra = f" ({per_target:g} per target)" if per_target is not None and per_target != knee["level"] else ""
    return f"{knee['level']:g}{extra}: {knee['reason']}"
