"""The report side of open-loop (rate) runs and of cancelled requests: queue wait and TTFT from the
scheduled arrival next to service TTFT, goodput that counts never-sent arrivals and waits past the SLO,
offered and achieved rates per step, the shape with its parameters in the header; cancelled counts per
step and their warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth import SLO, T0, closed_loop, record, write_run

from tokenpulse.report.build import write_report
from tokenpulse.report.figures import Happened, Started, Window, finish
from tokenpulse.report.markdown import console_report
from tokenpulse.runfolder.schedule import build_schedule


def rate_run(folder: Path) -> dict[str, Any]:
    """Two 10 s steps at 2 and 4 arrivals/s, 2 users: the second step queues (0.5 s more per arrival)."""
    schedule = build_schedule("rate", users=2, spawn_rate=100, run_time_s=0, levels=[2.0, 4.0], step_s=10,
                              warmup_s=0.5)
    records = []
    for step in schedule.steps:
        assert step.rate is not None
        wait = 0.0 if step.index == 0 else 0.9
        n = int(step.duration_s * step.rate)
        for i in range(n):
            scheduled = step.start_s + i / step.rate
            sent = scheduled + wait
            phase = "warmup" if scheduled < step.measure_start_s else "measure"
            records.append(record(sent, ttft=0.2, step=step.index, phase=phase, queue_wait=wait))
    meta = {"run_id": "rate", "run_start": T0, "run_end": T0 + schedule.total_s, "schedule": schedule.to_dict(),
            "targets": [{"index": 0, "name": "swiftinfer", "endpoint": "mock",
                         "model": records[0]["model"], "provider": "swiftinfer", "price": None}],
            "slo": SLO, "stop_reason": "completed", "workers": 1,
            "options": {"shape": "rate", "users": 2, "levels": [2.0, 4.0], "rate": None, "arrival": "poisson"},
            "workload": {}, "locust": {"e2e_requests": len(records)}}
    write_run(folder, meta, records)
    (folder / "health-local.jsonl").write_text(
        '{"time": %f, "worker": "local", "cpu": 0.1, "lags_s": [0.001], "arrivals_pending": 6}\n' % (T0 + 19.5))
    return write_report(folder)


def test_rate_report_shows_queue_wait_and_ttft_from_the_arrival(tmp_path: Path) -> None:
    summary = rate_run(tmp_path)
    first, second = (s["all"] for s in summary["steps"])
    assert first["queue_wait"]["p50"] == 0.0 and second["queue_wait"]["p95"] == 0.9
    assert second["ttft_from_schedule"]["p50"] == 1.1 and second["ttft"]["p50"] == 0.2
    md = (tmp_path / "report.md").read_text()
    assert "## Open loop: what an arriving user waited" in md and "TTFT p95 from arrival" in md
    assert "| 1 | 4/s |" in md
    html = (tmp_path / "report.html").read_text()
    assert "queue wait p95" in html and "TTFT p50 service" in html
    assert "shape rate: 2, 4 arrivals/s, 2 users, 10 s per step" in html  # not unused defaults
    assert "levels -" not in html
    assert "queue wait p50" in console_report(summary)


def test_goodput_counts_never_sent_and_waits_past_the_slo(tmp_path: Path) -> None:
    summary = rate_run(tmp_path)
    first, second = (s["all"] for s in summary["steps"])
    assert first["goodput"]["ratio"] == 1.0
    # Step 2: every request waited 0.9 s + TTFT 0.2 s > the 1 s objective, and 6 arrivals were never sent.
    assert second["goodput"]["requests"] == 0 and second["goodput"]["never_sent"] == 6
    assert second["goodput"]["judged"] == second["requests"] + 6
    assert summary["overall"]["goodput"]["judged"] == summary["overall"]["requests"] + 6


def test_offered_and_achieved_rates_per_step(tmp_path: Path) -> None:
    summary = rate_run(tmp_path)
    first, second = (s["all"]["rate"] for s in summary["steps"])
    window = summary["steps"][0]["window_s"]
    assert first["offered_per_s"] * window == first["scheduled"]
    assert abs(first["offered_per_s"] - 2.0) < 0.25 and abs(first["achieved_per_s"] - 2.0) < 0.25
    assert second["never_sent"] == 6 and second["offered_per_s"] > second["achieved_per_s"]


def test_cancelled_requests_are_counted_per_step_and_warned(tmp_path: Path) -> None:
    meta, records = closed_loop([4, 8], step_s=10)
    for r in records[::5]:  # a fifth of the requests cut off
        r.update(outcome="cancelled", error_class="cancelled", tpot_s=None, output_tokens_per_s=None)
    summary = write_report(write_run(tmp_path, meta, records))
    for step in summary["steps"]:
        f = step["all"]
        assert f["cancelled"] > 0 and f["errors"] == 0 and f["error_rate"] == 0.0
        assert f["ok"] + f["cancelled"] == f["requests"]
        assert f["ttft"]["n"] == f["ok"]  # latencies from the requests that finished
    assert sum("were cancelled" in w for w in summary["warnings"]) == 2
    assert "| cancelled |" in (tmp_path / "report.md").read_text().replace(" cancelled |", " cancelled |")


def test_a_cancelled_request_that_already_broke_the_slo_is_not_good() -> None:
    window = [Window(T0, T0 + 10)]
    slow = record(1.0, ttft=1.5, outcome="cancelled")  # waited past the 1 s TTFT objective
    quick = record(2.0, ttft=0.1, outcome="cancelled")  # cut off early: unknown, left out
    fine = record(3.0, ttft=0.1)
    acc = Started()
    for r in (slow, quick, fine):
        acc.add(r, window, SLO)
    f = finish(acc, Happened(), 10.0, SLO)
    assert f["goodput"]["judged"] == 2 and f["goodput"]["requests"] == 1 and f["cancelled"] == 2
