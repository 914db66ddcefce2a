"""Report maths on synthetic records: percentiles, windows, goodput, knee, generator warning, compare rules,
and the self-contained HTML."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tokenpulse.core.stats import cdf_points, distribution, percentile
from tokenpulse.report.build import write_report
from tokenpulse.report.compare import RuleError, evaluate, parse_rule
from tokenpulse.report.figures import Window, figures, tokens_in_windows
from tokenpulse.report.knee import StepPoint, find_knee
from tokenpulse.report.run import RunData
from tokenpulse.report.summary import summarize
from tokenpulse.runfolder.schedule import build_schedule

SLO = {"ttft_s": 1.0, "tpot_s": 0.05}
T0 = 1_800_000_000.0


def rec(start: float, *, ttft: float = 0.2, gap: float = 0.02, tokens: int = 10, outcome: str = "ok",
        error: str | None = None, step: int = 0, phase: str = "measure", provider: str = "fast",
        queue_wait: float | None = None, cost: float | None = 0.001) -> dict[str, Any]:
    times = [ttft + i * gap for i in range(tokens)]
    return {"outcome": outcome, "error_class": error, "ttfb_s": 0.01, "ttft_s": ttft, "ttfc_s": ttft,
            "e2e_s": times[-1] + 0.001, "tpot_s": gap, "output_tokens_per_s": tokens / (times[-1] - times[0]),
            "prompt_tokens": 100, "output_tokens": tokens, "reasoning_tokens": 0, "tokens_estimated": False,
            "token_times_s": times, "start_time": T0 + start, "t_s": start, "step": step, "phase": phase,
            "endpoint": "mock", "model": "m", "target_provider": provider, "queue_wait_s": queue_wait,
            "estimated_cost_usd": cost}


def test_percentile_is_linear_interpolation() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert percentile(data, 50) == 2.5 and percentile(data, 0) == 1.0 and percentile(data, 100) == 4.0
    assert percentile(data, 90) == pytest.approx(3.7) and percentile([], 50) is None
    d = distribution([3.0, None, 1.0, 2.0])
    assert d["n"] == 3 and d["p50"] == 2.0 and d["mean"] == 2.0 and d["max"] == 3.0
    points = cdf_points(range(1000), max_points=100)
    assert len(points) <= 101 and points[-1] == (999, 1.0)


def test_tokens_count_only_inside_the_window() -> None:
    r = rec(0.0, ttft=0.0, gap=0.1, tokens=10)  # token events at 0.0 .. 0.9 s
    assert tokens_in_windows(r, [Window(T0 + 0.25, T0 + 0.65)]) == 4  # 0.3 0.4 0.5 0.6
    assert tokens_in_windows(r, [Window(T0, T0 + 0.15), Window(T0 + 0.85, T0 + 5)]) == 3


def test_figures_errors_goodput_and_throughput() -> None:
    started = [rec(i * 0.1) for i in range(8)]
    started.append(rec(0.9, ttft=1.5))  # slow: not good
    started.append(rec(1.0, outcome="error", error="server_error"))
    window = [Window(T0, T0 + 10)]
    f = figures(started, started, window, SLO)
    assert f["requests"] == 10 and f["ok"] == 9 and f["error_classes"] == {"server_error": 1}
    assert f["error_rate"] == pytest.approx(0.1)
    assert f["goodput"]["requests"] == 8 and f["goodput"]["ratio"] == pytest.approx(0.8)
    assert f["ttft"]["n"] == 9  # latency over successful requests only
    assert f["throughput"]["output_tokens_per_s"] == pytest.approx(100 / 10)
    assert f["throughput"]["requests_per_s"] == pytest.approx(1.0)
    assert f["chunk_gap"]["p50"] == pytest.approx(0.02)
    assert f["cost_usd"] == pytest.approx(0.01)


def test_open_loop_figures_add_queue_wait_to_ttft() -> None:
    started = [rec(i, ttft=0.2, queue_wait=0.5) for i in range(5)]
    f = figures(started, started, [Window(T0, T0 + 10)], SLO)
    assert f["queue_wait"]["p50"] == 0.5 and f["ttft_from_schedule"]["p50"] == pytest.approx(0.7)


def test_knee_rule() -> None:
    scaling = [StepPoint(4, 100, 0.4, 50, 5.0), StepPoint(8, 200, 0.4, 50, 7.0),
               StepPoint(16, 390, 0.45, 50, 10.0), StepPoint(24, 400, 0.9, 50, 10.0)]
    knee = find_knee(scaling)
    assert knee["level"] == 16 and "significantly below 50% of linear" in knee["reason"]
    # Throughput flat within the noise (not significantly below linear either), TTFT p95 clearly 2.5x.
    latency = [StepPoint(1, 10, 0.2, 40, 1.0, (0.19, 0.21)), StepPoint(2, 20, 0.25, 40, 1.0, (0.24, 0.26)),
               StepPoint(4, 24, 0.5, 40, 6.0, (0.48, 0.52))]
    assert find_knee(latency)["level"] == 2 and "TTFT p95" in find_knee(latency)["reason"]
    few = [StepPoint(1, 10, 0.2, 5), StepPoint(2, 20, 0.25, 5), StepPoint(4, 39, 0.5, 5)]
    assert find_knee(few)["level"] is None  # steps of 5 requests do not take part
    assert "no knee within the tested levels" in find_knee(few)["reason"]
    assert find_knee([StepPoint(1, 10, 0.2, 40)])["level"] is None


def sweep_run(tmp_path: Path, *, cpu: float = 0.2, lag: float = 0.001, locust: int | None = None) -> RunData:
    """A sweep 4/8/16/24 against a target with 16 slots: throughput grows to 16, then every request
    queues for a slot (it takes users/16 times as long), so throughput stays flat and TTFT grows."""
    schedule = build_schedule("sweep", users=1, spawn_rate=100, run_time_s=0, levels=[4, 8, 16, 24], step_s=10,
                              warmup_s=1)
    rng = random.Random(3)
    records, health = [], []
    for step in schedule.steps:
        queue = 0.6 * max(0.0, step.users / 16 - 1)  # 0.6 s: a request's own duration
        for u in range(step.users):
            t = step.start_s + 0.05 * u
            while t < step.end_s - 0.5:
                ttft = 0.2 + rng.random() * 0.05 + queue
                r = rec(t, ttft=ttft, gap=0.02, tokens=20, step=step.index,
                        phase="warmup" if t < step.measure_start_s else "measure")
                records.append(r)
                t += r["e2e_s"]
        for s in range(int(step.start_s), int(step.end_s)):
            health.append({"time": T0 + s + 1, "worker": "local", "cpu": cpu, "lags_s": [lag] * 50})
    meta = {"run_id": "synthetic", "run_start": T0, "run_end": T0 + schedule.total_s, "schedule": schedule.to_dict(),
            "targets": [{"index": 0, "name": "fast", "endpoint": "mock", "model": "m", "provider": "fast"}],
            "slo": SLO, "stop_reason": "completed", "workers": 1,
            "locust": {"e2e_requests": len(records) if locust is None else locust}}
    return RunData(path=tmp_path, meta=meta, records=records, health=health)


def test_summary_of_a_sweep_finds_the_knee_and_keeps_warmup_out(tmp_path: Path) -> None:
    summary = summarize(sweep_run(tmp_path))
    knee = summary["knee"]
    assert knee["all"]["level"] == 16 and knee["targets"]["fast"]["level"] == 16
    steps = summary["steps"]
    assert [s["level"] for s in steps] == [4, 8, 16, 24]
    warm = sum(1 for r in sweep_run(tmp_path).records if r["phase"] == "warmup")
    assert sum(s["all"]["requests"] for s in steps) == summary["run"]["records"] - warm
    assert steps[3]["all"]["ttft"]["p95"] > 2 * steps[0]["all"]["ttft"]["p95"]
    assert summary["warnings"] == []


def test_generator_limits_and_missing_records_are_warned(tmp_path: Path) -> None:
    busy = summarize(sweep_run(tmp_path, cpu=0.9))
    assert busy["generator"]["overall"]["limited"]
    assert any("load generator limited" in w for w in busy["warnings"])
    laggy = summarize(sweep_run(tmp_path, lag=0.02))
    assert any("client lag p99 20.0 ms" in w for w in laggy["warnings"])
    missing = summarize(sweep_run(tmp_path, locust=10**6))
    assert any("Locust counted 1000000" in w for w in missing["warnings"])


def test_report_files_are_self_contained(tmp_path: Path) -> None:
    run = sweep_run(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps(run.meta))
    with open(tmp_path / "records-local.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in run.records)
    summary = write_report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    # TTFT CDF, TTFT / TPOT / throughput against load, per-user speed against throughput, TTFT against rate
    assert html.count("<svg") == 6
    assert "knee" in html and "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    md = (tmp_path / "report.md").read_text()
    assert "| fast |" in md and "Saturation knee" in md
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["knee"]["all"]["level"] == summary["knee"]["all"]["level"]


@pytest.mark.parametrize("text, metric, target, direction, amount, relative", [
    ("ttft_p95:+10%", "ttft_p95", None, 1, 0.10, True),
    ("tpot_p50@swiftinfer:5ms", "tpot_p50", "swiftinfer", 1, 0.005, False),
    ("throughput:15%", "throughput", None, -1, 0.15, True),
    ("throughput:+15%", "throughput", None, 1, 0.15, True),
    ("error_rate:+0.01", "error_rate", None, 1, 0.01, False),
    ("goodput@all:-0.05", "goodput", "all", -1, 0.05, False),
    ("output_tps_p50:-10%", "output_tps_p50", None, -1, 0.10, True),
    ("e2e_p99:+1.5s", "e2e_p99", None, 1, 1.5, False),
])
def test_fail_on_grammar(text: str, metric: str, target: str | None, direction: int, amount: float,
                         relative: bool) -> None:
    rule = parse_rule(text)
    assert (rule.metric, rule.target, rule.direction, rule.relative) == (metric, target, direction, relative)
    assert rule.amount == pytest.approx(amount)


@pytest.mark.parametrize("text", ["ttft:+10%", "latency_p95:+1%", "throughput:+5ms", "ttft_p95", "ttft_p95:+x%",
                                  "ttft_p42:+1%"])
def test_fail_on_rejects_bad_rules(text: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(text)


def test_evaluate_flags_regressions_per_target_and_all(tmp_path: Path) -> None:
    base = summarize(sweep_run(tmp_path))
    slower = sweep_run(tmp_path)
    for r in slower.records:
        r["ttft_s"] *= 1.3
    worse = summarize(slower)
    rules = [parse_rule("ttft_p95:+10%"), parse_rule("throughput:-50%")]
    verdicts = evaluate(rules, worse, base)
    failed = {(v.rule.metric, v.target) for v in verdicts if v.failed}
    assert failed == {("ttft_p95", "fast"), ("ttft_p95", "all")}
    assert not any(v.failed for v in evaluate(rules, base, base))
    with pytest.raises(RuleError, match="no such target"):  # a usage error, never a pass or a regression
        evaluate([parse_rule("ttft_p95@nosuch:+10%")], base, base)


def test_knee_ignores_steps_with_too_few_completions() -> None:
    # One completion per step says nothing about throughput: no knee rather than a knee found by noise.
    sparse = [StepPoint(1, 10, 0.2, 1), StepPoint(2, 11, 0.2, 1), StepPoint(4, 11, 0.2, 2)]
    result = find_knee(sparse)
    assert result["level"] is None and "at least two distinct levels" in result["reason"]
