"""summary.json: a run's figures per target and per step, its knee, its generator health and warnings.

Layout (`SUMMARY_VERSION` 1):
    run        id, shape, start/end, stop reason, record counts, Locust's own count, files
    slo        the SLOs goodput was measured against
    targets    per target: name, endpoint, model, provider, `overall` figures (all measured windows)
    steps      per step: index, level, users, rate, measured window, `all` figures and per-target figures
               (each with `cancelled`; under an arrival rate also `rate`: offered and achieved per second)
    knee       sweeps and ramps (and rate sweeps): per target and for all targets, see knee.py
    pareto     runs of several steps: per target, each level's aggregate output tokens/s and median
               per-request output tokens/s, Pareto-optimal or not (pareto.py)
    server_metrics  the servers' own /metrics (load.server_metrics): per URL, per step and over the
               run, with the generated-token cross-check (servermetrics.py); null when none was scraped
    provider_matrix  per model with two or more providers: the comparison of report/matrix.py
    generator  per step and overall: CPU share per worker, client lag percentiles, `limited` flag
    prompts    per target and for all: input_tokens_target beside the server's prompt_tokens, and the
               requests that spent max_tokens on reasoning (prompts.py)
    warnings   plain sentences (generator limits, missing records, stops, estimates)
Figures are those of `figures.py`; every time is in seconds, every rate per second; every percentile
carries its `n`, p50/p95/p99 an order-statistic interval (`p95_ci`, at `ci_level`).

Arrivals never sent (open loop): each worker reports how many scheduled arrivals were still waiting
for a free user when it stopped (`arrivals_pending` in its health lines). Arrivals are taken oldest
first, so those left are the newest: they are attributed to the last measured step, and count in its
(and the overall) goodput as not good.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from tokenpulse.core.stats import distribution, finite_values, mean
from tokenpulse.report.cache import cache_summary
from tokenpulse.report.figures import Happened, Started, Window, finish
from tokenpulse.report.knee import StepPoint, find_knee
from tokenpulse.report.matrix import provider_matrix
from tokenpulse.report.pareto import pareto_summary
from tokenpulse.report.prefill import prefill_summary
from tokenpulse.report.prompts import prompt_figures, prompt_warnings
from tokenpulse.report.routing import router_choice
from tokenpulse.report.run import RunData
from tokenpulse.report.search import summarize_search
from tokenpulse.report.servermetrics import server_metrics_summary, server_warnings
from tokenpulse.report.validity import validity_summary
from tokenpulse.runfolder.health import CPU_WARN_RATIO, LAG_WARN_P99_S
from tokenpulse.runfolder.schedule import MEASURE, Schedule, Step

SUMMARY_VERSION = 2
ALL = "all"
DEFAULT_SLO = {"ttft_s": 2.0, "tpot_s": 0.05}
#: A step where more than this share of the requests sent was cancelled gets a warning: its figures
#: describe the requests that finished, which are the faster ones.
CANCELLED_WARN_RATIO = 0.05


def target_key(record: dict[str, Any]) -> tuple[str, str, str]:
    return (str(record.get("endpoint")), str(record.get("model")), str(record.get("target_provider")))


def _targets(run: RunData) -> list[dict[str, Any]]:
    """Targets from meta.json, plus any found only in records (a folder without meta)."""
    targets = [dict(t) for t in run.meta.get("targets", [])]
    known = {(t["endpoint"], t["model"], t["provider"]) for t in targets}
    for r in run.records:
        key = target_key(r)
        if key not in known:
            known.add(key)
            targets.append({"index": len(targets), "name": key[2], "endpoint": key[0], "model": key[1],
                            "provider": key[2], "price": None})
    return targets


def _steps(run: RunData) -> tuple[Schedule | None, list[Step]]:
    schedule = run.schedule
    if schedule is not None:
        return schedule, list(schedule.steps)
    span = max(run.run_end - run.run_start, 0.0)
    return None, [Step(0, 0.0, span, 0.0, 0)]


def summarize(run: RunData) -> dict[str, Any]:
    """One pass over the records: each adds to the `Started` sums of its (target, step) and to the
    `Happened` sums of every (target, window) it reaches; steps, targets and the whole run are merges of
    those, so a million records report in seconds (docs/benchmarks.md)."""
    slo = dict(run.meta.get("slo") or DEFAULT_SLO)
    schedule, steps = _steps(run)
    targets = _targets(run)
    start, end = run.run_start, run.run_end
    windows = {s.index: Window(start + s.measure_start_s, min(start + s.end_s, end)) for s in steps}
    measured_steps = [s for s in steps if windows[s.index].length > 0]
    measured_index = {s.index for s in measured_steps}
    no_schedule = schedule is None
    count_gaps = run.gap_counts is None
    keys = [(t["endpoint"], t["model"], t["provider"]) for t in targets]
    started: dict[tuple[tuple[str, str, str], int], Started] = {}
    happened: dict[tuple[tuple[str, str, str], int], Happened] = {}
    ordered = sorted(measured_steps, key=lambda s: windows[s.index].start)
    w_starts = [windows[s.index].start for s in ordered]
    for r in run.records:
        key = target_key(r)
        step: Any = r.get("step")
        if no_schedule or (r.get("phase") == MEASURE and step in measured_index):
            si: int = steps[0].index if no_schedule else step  # in measured_index: an int
            acc = started.get((key, si))
            if acc is None:
                acc = started[(key, si)] = Started(count_gaps)
            acc.add(r, [windows[si]], slo)
        # The windows this request can reach: from the last one starting before it, to its end.
        t0 = float(r["start_time"])
        t1 = t0 + float(r.get("e2e_s") or 0.0)
        for j in range(max(0, bisect_right(w_starts, t0) - 1), bisect_right(w_starts, t1)):
            w = windows[ordered[j].index]
            if t0 < w.end and t1 >= w.start:
                h = happened.get((key, ordered[j].index))
                if h is None:
                    h = happened[(key, ordered[j].index)] = Happened()
                h.add(r, [w])

    for acc in started.values():  # sorted once here, so every merge of them sorts in near-linear time
        acc.sort_values()

    def gaps(key: tuple[str, str, str] | None, step_index: int | None) -> Counter[int] | None:
        """Counted chunk gaps of a group's successful started requests (None: counted in `Started`)."""
        if run.gap_counts is None:
            return None
        total: Counter[int] = Counter()
        for (endpoint, model, provider, step, phase), counts in run.gap_counts.items():
            if key is not None and (endpoint, model, provider) != key:
                continue
            if no_schedule or (phase == MEASURE and (step == step_index if step_index is not None
                                                     else step in measured_index)):
                total.update(counts)
        return total

    def group(key_list: Sequence[tuple[str, str, str]], step_list: Sequence[int],
              never_sent: int = 0, gap_key: tuple[str, str, str] | None = None,
              gap_step: int | None = None) -> dict[str, Any]:
        acc = Started.merged([started[(k, i)] for k in key_list for i in step_list if (k, i) in started])
        hap = Happened.merged([happened[(k, i)] for k in key_list for i in step_list if (k, i) in happened])
        window_s = sum(windows[i].length for i in step_list)
        return finish(acc, hap, window_s, slo, never_sent, gaps(gap_key, gap_step))

    all_keys = sorted({k for k, _ in started} | {k for k, _ in happened} | set(keys))
    measured_list = [s.index for s in measured_steps]
    never_sent = _never_sent(run)
    last_measured = measured_steps[-1].index if measured_steps else None
    # Never-sent arrivals are not tagged with a target: they count for `all` only.
    target_out = [{**{k: t[k] for k in ("name", "endpoint", "model", "provider")},
                   "overall": group([key], measured_list, gap_key=key)} for t, key in zip(targets, keys, strict=True)]
    steps_out = []
    for s in steps:
        w = windows[s.index]
        entry: dict[str, Any] = {"index": s.index, "level": s.level, "users": s.users, "rate": s.rate,
                                 "window": [round(w.start - start, 3), round(w.end - start, 3)],
                                 "window_s": w.length, "measured": w.length > 0}
        if w.length > 0:
            entry[ALL] = group(all_keys, [s.index], never_sent if s.index == last_measured else 0,
                               gap_step=s.index)
            entry["targets"] = {t["name"]: group([key], [s.index], gap_key=key, gap_step=s.index)
                                for t, key in zip(targets, keys, strict=True)}
        steps_out.append(entry)
    overall_all = group(all_keys, measured_list, never_sent)

    def counted(r: dict[str, Any]) -> bool:
        """Started in a measured window (what the `Started` sums above take in)."""
        return no_schedule or (r.get("phase") == MEASURE and r.get("step") in measured_index)

    summary: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "run": _run_info(run, schedule),
        "slo": slo,
        "overall": overall_all,
        "targets": target_out,
        "steps": steps_out,
        "knee": _knees(schedule, steps_out, [t["name"] for t in targets]),
        "router_choice": router_choice(run, target_out),
        "chunk_gap_sample_every": run.gap_sample_every,
        "prompts": prompt_figures(run.records, counted, target_key,
                                  dict(zip(keys, (t["name"] for t in targets), strict=True)),
                                  flagged=run.gap_counts is not None),
        "generator": _generator(run, steps, windows),
        "validity": validity_summary(run.records, scheduled=not no_schedule,
                                     names={key: t["name"] for t, key in zip(targets, keys, strict=True)}),
    }
    summary["pareto"] = pareto_summary(steps_out, [t["name"] for t in targets])
    summary["server_metrics"] = server_metrics_summary(run, steps_out)
    summary["provider_matrix"] = provider_matrix(run, summary)  # report/matrix.py
    kind = (run.meta.get("workload") or {}).get("kind")
    if kind == "prefill" or (run.meta.get("options") or {}).get("input_lengths"):
        summary["prefill"] = prefill_summary(run.records, targets)  # report/prefill.py
    summary["cache"] = cache_summary(run.records, targets, always=kind == "shared_prefix")  # report/cache.py
    summary["warnings"] = _warnings(run, summary) + server_warnings(summary["server_metrics"])
    summary["search"] = summarize_search(run, summary)
    if summary["search"]:
        summary["warnings"] += summary["search"]["warnings"]
    return summary


def _never_sent(run: RunData) -> int:
    pending = _last_per_worker(run.health, "arrivals_pending")
    return sum(v for v in pending.values() if type(v) is int and v > 0)


def _shape(schedule: Schedule | None, options: dict[str, Any]) -> dict[str, Any] | None:
    """The shape as it ran, with the parameters that apply to it (not unused option defaults)."""
    if schedule is None:
        return None
    out: dict[str, Any] = {"kind": schedule.kind, "steps": len(schedule.steps)}
    if schedule.steps:
        out["step_s"] = schedule.steps[0].duration_s
    if schedule.kind == "rate":
        out["rates_per_s"] = [s.rate for s in schedule.steps]
        out["users"] = schedule.max_users
        if options.get("arrivals") is not None:
            out["arrivals"] = options.get("arrivals")
        if options.get("seed") is not None:
            out["seed"] = options.get("seed")
    elif schedule.kind == "search":
        out["levels"] = [s.level for s in schedule.steps]
        out["varies"] = "rate" if schedule.steps and schedule.steps[0].rate is not None else "users"
    elif schedule.kind == "fixed":
        out["users"] = schedule.max_users
    else:
        out["levels"] = [s.users for s in schedule.steps]
        out["max_users"] = schedule.max_users
    return out


def _run_info(run: RunData, schedule: Schedule | None) -> dict[str, Any]:
    meta = run.meta
    locust = meta.get("locust") or {}
    phases: defaultdict[str, int] = defaultdict(int)
    for r in run.records:
        phases[str(r.get("phase"))] += 1
    pending = _last_per_worker(run.health, "arrivals_pending")
    return {
        "id": meta.get("run_id"),
        "path": str(run.path),
        "shape": schedule.kind if schedule else None,
        "shape_params": _shape(schedule, meta.get("options") or {}),
        "options": meta.get("options", {}),
        "workload": meta.get("workload", {}),
        "run_start": run.run_start,
        "run_end": run.run_end,
        "duration_s": max(0.0, run.run_end - run.run_start),
        "stop_reason": meta.get("stop_reason"),
        "workers": meta.get("workers"),
        "records": len(run.records),
        "records_by_phase": dict(phases),
        "record_files": run.record_files,
        "locust_e2e_requests": locust.get("e2e_requests"),
        "arrivals_never_sent": sum(v for v in pending.values() if type(v) is int and v > 0) if pending else None,
        "tokenpulse_version": meta.get("tokenpulse_version"),
        "locust_version": meta.get("locust_version"),
    }


def _last_per_worker(health: list[dict[str, Any]], key: str) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for h in health:
        if key in h and h[key] is not None:
            last[str(h.get("worker"))] = h[key]
    return last


def _knees(schedule: Schedule | None, steps: list[dict[str, Any]], names: list[str]) -> dict[str, Any] | None:
    if schedule is None or len(schedule.steps) < 2 or schedule.kind == "fixed":
        return None
    measured = [s for s in steps if s["measured"]]
    open_loop = schedule.steps[0].rate is not None  # rate, or a rate search
    per_target_share = 1.0 / len(names) if names and not open_loop else 1.0

    def points(pick: Any) -> list[StepPoint]:
        out = []
        for s in measured:
            f = pick(s)
            tp = f["throughput"]
            key = "output_tokens_per_s" if f["tokens"]["output"] else "requests_per_s"
            ci = f["ttft"].get("p95_ci") or [None, None]
            out.append(StepPoint(level=s["level"], throughput=tp[key], ttft_p95=f["ttft"]["p95"], ok=f["ok"],
                                 throughput_se=tp.get(f"{key}_se") or 0.0, ttft_p95_ci=(ci[0], ci[1])))
        return out

    result: dict[str, Any] = {"x": "arrival rate (requests/s)" if open_loop else "users",
                              ALL: find_knee(points(lambda s: s[ALL])), "targets": {}}
    for name in names:
        knee = find_knee(points(lambda s, n=name: s["targets"][n]))
        if knee["level"] is not None and not open_loop:
            knee["per_target_level"] = knee["level"] * per_target_share
        result["targets"][name] = knee
    return result


def _generator(run: RunData, steps: list[Step], windows: dict[int, Window]) -> dict[str, Any]:
    """Per step and overall: CPU of each worker (mean, max) and client lag percentiles, with the flag
    `limited` when CPU mean > CPU_WARN_RATIO or lag p99 > LAG_WARN_P99_S (DESIGN.md §6)."""

    def block(window_list: list[Window]) -> dict[str, Any]:
        # Health lines are read as they are: only finite numbers count (a torn or foreign file must not
        # fail the report).
        cpu: dict[str, list[float]] = defaultdict(list)
        lags: list[float] = []
        for h in run.health:
            t = finite_values((h.get("time"),))
            if t and any(w.start <= t[0] <= w.end + 1.0 for w in window_list):
                worker = h.get("worker")
                cpu[worker if type(worker) is str else "-"].extend(finite_values((h.get("cpu"),)))
                samples = h.get("lags_s")
                if type(samples) is list:
                    lags.extend(samples)
        per_worker = {w: {"cpu_mean": mean(v) or 0.0, "cpu_max": max(v)} for w, v in cpu.items() if v}
        lag = distribution(lags)
        cpu_worst = max((v["cpu_mean"] for v in per_worker.values()), default=None)
        limited = bool((cpu_worst is not None and cpu_worst > CPU_WARN_RATIO)
                       or (lag["p99"] is not None and lag["p99"] > LAG_WARN_P99_S))
        return {"workers": per_worker, "cpu_mean_max": cpu_worst, "lag": lag, "limited": limited}

    measured = [windows[s.index] for s in steps if windows[s.index].length > 0]
    return {"thresholds": {"cpu_ratio": CPU_WARN_RATIO, "lag_p99_s": LAG_WARN_P99_S},
            "overall": block(measured),
            "steps": {str(s.index): block([windows[s.index]]) for s in steps if windows[s.index].length > 0}}


def _warnings(run: RunData, summary: dict[str, Any]) -> list[str]:
    out: list[str] = []
    info = summary["run"]
    gen = summary["generator"]
    for step in summary["steps"]:
        g = gen["steps"].get(str(step["index"]))
        if g and g["limited"]:
            cpu = g["cpu_mean_max"]
            lag = g["lag"]["p99"]
            out.append(f"load generator limited step {step['index']} (level {step['level']:g}): CPU "
                       f"{(cpu or 0) * 100:.0f}% of a core, client lag p99 {(lag or 0) * 1000:.1f} ms (limits "
                       f"{CPU_WARN_RATIO:.0%}, {LAG_WARN_P99_S * 1000:g} ms): its latencies include client-side "
                       "delay; add workers (--processes) or lower the load")
        if not step["measured"]:
            out.append(f"step {step['index']} (level {step['level']:g}) was not measured: the run stopped "
                       "before its warm-up ended")
            continue
        f = step[ALL]
        if f["requests"] and f["cancelled"] / f["requests"] > CANCELLED_WARN_RATIO:
            out.append(f"step {step['index']} (level {step['level']:g}): {f['cancelled']} of {f['requests']} "
                       f"requests ({f['cancelled'] / f['requests']:.0%}) were cancelled (in flight at a "
                       "step change or the run's end): its latencies describe the requests that finished, "
                       "the faster ones; lengthen the step or the drain (load.drain_s)")
    locust = info.get("locust_e2e_requests")
    if locust is not None and locust != info["records"]:
        out.append(f"{info['records']} records but Locust counted {locust} requests: "
                   + ("copy every worker's records-*.jsonl into this folder" if info["records"] < locust
                      else "Locust's final worker reports were lost"))
    if info.get("stop_reason") == "max_cost":
        out.append(f"stopped early: --max-cost {info['options'].get('max_cost_usd')} USD reached "
                   f"(estimated spend {summary['overall']['cost_usd']:.6f} USD)")
    elif info.get("stop_reason") in (None, "interrupted") and run.meta:
        out.append("the run did not complete its schedule (interrupted or killed): figures cover what ran")
    est = summary["overall"]["tokens"]["estimated_requests"]
    if est:
        out.append(f"{est} requests had no usage from the server: their token counts are estimates "
                   "(4 characters per token)")
    out += prompt_warnings(summary["prompts"])
    dropped = info.get("arrivals_never_sent")
    if dropped:
        out.append(f"{dropped} scheduled arrivals were never sent (all users busy until the end): the target "
                   "could not keep up with the offered rate")
    return out
