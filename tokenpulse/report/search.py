"""The answer of a `--shape search` run: the capacity bracket, each level's goodput with its interval and
n, the verdicts, and whether the client rather than the server bounded a step.

Why the report judges the steps again instead of copying the master's verdicts from meta.json: the
master decided live, from the requests reported by then (those still unreported after its wait were
counted as not good); the records are complete. Both apply the same rule (core/search.py), so they
agree unless a step's last requests came late, and then the report says where they differ. The
bracket is stated from the records' verdicts (`core.search.bracket`); the search's own status (found,
above its cap, below its lowest level, stopped by `--max-steps` / `--max-cost`) comes from meta.json.

A step is bounded by the client when the generator was limited in it (CPU or client lag past the
thresholds of the generator section, DESIGN.md §6) and it failed: its latencies include client-side
delay, so the failure may be the generator's and the capacity may be higher than stated.
"""

from __future__ import annotations

from typing import Any

from tokenpulse.core.format import fmt_seconds
from tokenpulse.core.search import DEFAULT_GOODPUT, PASS, Criteria, StepTally, Verdict, bracket, judge
from tokenpulse.report.run import RunData
from tokenpulse.runfolder.schedule import MEASURE

NOTE = ("Each level's goodput is the share of its measured requests that met every per-request objective "
        "(TTFT, TPOT, E2E), with its Wilson 95% interval and n; a check passes when its whole interval is on the "
        "right side of its target, fails when it is wholly on the wrong side, and is undecided otherwise (the "
        "level is then re-run with the requests pooled, up to twice, then counted as failing). `live verdict`: "
        "what the master decided during the run; `generator`: the client's CPU and lag in the step "
        "(client-bound: limited and failed, so the server may not be the bound).")
HEADERS = ("step", "level", "n judged", "goodput [95% CI]", "errors", "other checks", "verdict", "live verdict",
           "generator")


def summarize_search(run: RunData, summary: dict[str, Any]) -> dict[str, Any] | None:
    """summary.json's `search` (None unless the run was a search)."""
    if (summary["run"].get("shape") or "") != "search":
        return None
    live = run.meta.get("search") or {}
    criteria_meta = live.get("criteria") or {}
    criteria = Criteria.from_slo(summary["slo"], float(criteria_meta.get("goodput") or DEFAULT_GOODPUT))
    tallies: dict[int, StepTally] = {}
    for r in run.records:
        step = r.get("step")
        if r.get("phase") == MEASURE and type(step) is int:
            tallies.setdefault(step, StepTally()).add(r, criteria)
    live_steps = {s.get("index"): s for s in live.get("steps") or []}
    generator = summary["generator"]["steps"]
    steps: list[dict[str, Any]] = []
    warnings: list[str] = []
    pooled: list[int] = []
    for s in summary["steps"]:
        index = s["index"]
        live_step = live_steps.get(index)
        if live_step is None and index not in tallies:
            continue  # never judged nor measured (the run stopped in its warm-up)
        # a level re-run because it was undecided: its consecutive steps are judged together, as live
        pooled = (pooled if steps and steps[-1]["level"] == s["level"] else []) + [index]
        total = StepTally()
        for i in pooled:
            total = total.merged(tallies.get(i, StepTally()))
        result = judge(total, criteria)
        gen = generator.get(str(index)) or {}
        limited = bool(gen.get("limited"))
        entry = {"index": index, "level": s["level"], "pooled_steps": list(pooled), **result,
                 "live_verdict": live_step.get("verdict") if live_step else None,
                 "judged_live": live_step is not None,
                 "generator_limited": limited, "bounded_by_client": limited and result["verdict"] != PASS,
                 "generator": {"cpu_mean_max": gen.get("cpu_mean_max"), "lag_p99_s": (gen.get("lag") or {}).get("p99")}}
        steps.append(entry)
        if live_step is not None and live_step.get("verdict") != result["verdict"]:
            unresolved = (live_step.get("tally") or {}).get("unresolved", 0)
            warnings.append(f"search step {index} (level {s['level']:g}): judged {live_step.get('verdict')} live "
                            f"but {result['verdict']} from the complete records ({unresolved} requests were "
                            "unreported when the master decided): longer steps or drain would settle it")
        if entry["bounded_by_client"]:
            warnings.append(f"search step {index} (level {s['level']:g}) did not pass while the load generator was "
                            "limited: the client, not the server, may have bounded it; the capacity may be higher "
                            "(add --processes or workers, docs/scaling.md)")
    results: list[tuple[float, Verdict]] = [(e["level"], e["verdict"]) for e in steps
                                            if e["judged_live"] or not live_steps]
    lo, hi = bracket(results)
    answer = live.get("answer") or {}
    final: dict[float, str] = {lvl: v for lvl, v in results}
    undecided = [lvl for lvl, v in final.items() if v == "undecided"]
    if undecided:
        warnings.append(f"search levels {', '.join(f'{v:g}' for v in undecided)} stayed undecided (an interval "
                        "straddles its target after the re-runs): counted as failing; a longer --step-time "
                        "would decide")
    first = summary["steps"][0] if summary["steps"] else {}
    return {"varies": live.get("varies") or ("rate" if first.get("rate") is not None else "users"),
            "criteria": criteria.to_dict(), "resolution": live.get("resolution"),
            "status": answer.get("status"), "stopped_by": answer.get("stopped_by"),
            "answer": lo, "bracket": [lo, hi], "live_answer": answer.get("level"),
            "undecided": "re-run (requests pooled), then counted as failing", "steps": steps,
            "warnings": warnings}


def _check_cell(check: dict[str, Any]) -> str:
    lo, hi = check["ci"]
    share = check["share"]
    if share is None:
        return f"{check['name']} - (n=0)"
    ci = f"[{lo:.1%}-{hi:.1%}]" if lo is not None and hi is not None else ""
    op = ">=" if check["at_least"] else "<="
    return f"{check['name']} {share:.1%} {ci} {op} {check['target']:.0%} (n={check['n']})"


def _gen_cell(step: dict[str, Any]) -> str:
    g = step["generator"]
    cpu = g.get("cpu_mean_max")
    text = f"CPU {cpu * 100:.0f}%, lag p99 {fmt_seconds(g.get('lag_p99_s'))}" if cpu is not None else "-"
    if step["bounded_by_client"]:
        return f"client-bound: {text}"
    return f"limited: {text}" if step["generator_limited"] else text


def search_rows(search: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in search["steps"]:
        checks = {c["name"]: c for c in s["checks"]}
        good = checks["goodput"]
        others = "; ".join(_check_cell(c) for c in s["checks"] if c["name"] != "goodput") or "-"
        tally = s["tally"]
        lo, hi = good["ci"]
        gp = "-" if good["share"] is None else (f"{good['share']:.1%} [{lo:.1%}-{hi:.1%}]")
        level = f"{s['level']:g}" + (f" (steps {'+'.join(str(i) for i in s['pooled_steps'])})"
                                     if len(s["pooled_steps"]) > 1 else "")
        rows.append([str(s["index"]), level, str(tally["judged"]), gp, str(tally["errors"]),
                     others, s["verdict"], s["live_verdict"] or "-", _gen_cell(s)])
    return rows


def answer_text(search: dict[str, Any]) -> str:
    """One sentence: the capacity with its bracket and how the search ended."""
    unit = "requests/s" if search["varies"] == "rate" else "users"
    lo, hi = search["bracket"]
    c = search["criteria"]
    what = f"goodput >= {c['goodput']:.0%}"
    if c.get("error_rate") is not None:
        what += f", error rate <= {c['error_rate']:.1%}"
    what += "".join(f", {k} <= {fmt_seconds(v)}" for k, v in (c.get("percentiles") or {}).items())
    status = search.get("status") or "unknown"
    how = {"found": f"bracket narrowed to the resolution ({search.get('resolution')})",
           "above_max": "the cap itself passed: the capacity is at least that (raise --users)",
           "below_min": "even the lowest level failed",
           "stopped": f"stopped by {search.get('stopped_by')} before the bracket was narrow enough"}.get(status, status)
    if lo is None:
        return f"search ({what}): no level passed; lowest failing {hi if hi is None else f'{hi:g}'} {unit} ({how})"
    upper = "not reached" if hi is None else f"{hi:g}"
    return (f"search ({what}): capacity {lo:g} {unit}, bracket [{lo:g}, {upper}] ({how}); "
            "undecided levels re-run, then count as failing")


def client_bound_text(search: dict[str, Any]) -> str:
    """The generator section's sentence for a search: which steps the client, not the server, bounded."""
    bound = [s for s in search["steps"] if s["bounded_by_client"]]
    limited = [s for s in search["steps"] if s["generator_limited"] and not s["bounded_by_client"]]
    if not bound and not limited:
        return ("Per search step: the generator stayed within its CPU and lag limits in every step, so each "
                "verdict is the server's.")
    out = []
    if bound:
        out.append("the client, not the server, may have bounded step(s) "
                   + ", ".join(f"{s['index']} (level {s['level']:g})" for s in bound)
                   + ": they did not pass while the generator was limited")
    if limited:
        out.append("the generator was limited in passing step(s) "
                   + ", ".join(f"{s['index']} (level {s['level']:g})" for s in limited)
                   + " (their latencies include client delay, so the server did at least as well)")
    return "Per search step: " + "; ".join(out) + " (docs/scaling.md: processes per rate)."
