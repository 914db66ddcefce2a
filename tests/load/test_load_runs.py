"""Real short headless Locust runs against the mock (its own process, loopback only).

No absolute timing assertion: counts are compared with Locust's and the mock's own counts, latencies with
each other and with the farm's configured profiles (within generous factors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from load_helpers import (
    MODEL,
    REPO,
    locust_counts,
    locust_csv_counts,
    records,
    summary,
    tokenpulse,
    write_config,
)

from tokenpulse.mock import MockServerProcess, default_farm, dump_farm, load_farm
from tokenpulse.ops.stack import free_port

pytestmark = pytest.mark.slow

SIDE_BY_SIDE = ["swiftinfer", "steadystack", "tortoiselabs"]


def farm_profile(provider: str) -> Any:
    return default_farm().models[MODEL].providers[provider].profile


@pytest.fixture(scope="module")
def fixed_run(mock: MockServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three providers side by side: 12 users (4 each), 12 s, fixed 16-token answers, no reasoning."""
    tmp = tmp_path_factory.mktemp("fixed")
    config = write_config(tmp / "cfg.yaml", mock.base_url, SIDE_BY_SIDE)
    out = tmp / "run"
    tokenpulse("load", "--config", str(config), "--users", "12", "--run-time", "12s", "--out", str(out),
               "--metrics-port", "0", "--quiet")
    return out


def test_record_count_equals_locusts_count(fixed_run: Path) -> None:
    rows = records(fixed_run)
    counts = locust_counts(fixed_run)
    e2e = {name: n for (kind, name), n in counts.items() if kind == "E2E"}
    assert set(e2e) == set(SIDE_BY_SIDE)
    assert len(rows) == sum(e2e.values()) > 100
    for provider in SIDE_BY_SIDE:
        assert sum(1 for r in rows if r["target_provider"] == provider) == e2e[provider]
    # One entry per request: TTFT and TTFC live in the web UI's own tab, never in Locust's request table.
    assert {kind for kind, _ in counts} == {"E2E"}
    s = summary(fixed_run)
    assert s["run"]["records"] == s["run"]["locust_e2e_requests"] == len(rows)
    assert s["run"]["stop_reason"] == "completed"
    # Locust's CSV is a snapshot taken every second: it may miss the last second, never overcount.
    csv_e2e = sum(n for (kind, _), n in locust_csv_counts(fixed_run).items() if kind == "E2E")
    assert 0 < csv_e2e <= len(rows)


def test_records_carry_measure_fields_and_context(fixed_run: Path) -> None:
    row = records(fixed_run)[-1]
    for key in ("outcome", "error_class", "ttft_s", "ttfc_s", "e2e_s", "tpot_s", "output_tokens", "token_times_s",
                "start_time", "user_id", "step", "phase", "endpoint", "model", "target_provider", "queue_wait_s",
                "estimated_cost_usd", "input_tokens_target", "output_tokens_target"):
        assert key in row, key
    assert row["model"] == MODEL and row["endpoint"] == "mock"
    ok = [r for r in records(fixed_run) if r["outcome"] == "ok"]
    assert all(r["output_tokens"] == 16 for r in ok)  # fixed output: max_tokens + ignore_eos honoured
    assert {r["phase"] for r in records(fixed_run)} == {"warmup", "measure"}


def test_ttft_medians_follow_the_mock_profiles(fixed_run: Path) -> None:
    figures = {t["name"]: t["overall"] for t in summary(fixed_run)["targets"]}
    medians = {p: figures[p]["ttft"]["p50"] for p in SIDE_BY_SIDE}
    assert medians["swiftinfer"] < medians["steadystack"] < medians["tortoiselabs"]
    assert medians["swiftinfer"] * 4 < medians["tortoiselabs"]
    for provider in SIDE_BY_SIDE:
        configured = farm_profile(provider).ttft.median_ms / 1000
        assert configured / 2 < medians[provider] < configured * 2, (provider, medians[provider], configured)
        # 4 users x 12 s: the slowest provider (TTFT median 1.8 s, long tail) measured 7-13 requests in
        # runs on a loaded CI machine and here, fewer than before since each user's first request starts
        # within load.start_stagger_s: five suffice for a median within a factor 2.
        assert figures[provider]["ttft"]["n"] >= 5


def test_report_files_and_console_table(fixed_run: Path) -> None:
    for name in ("summary.json", "report.md", "report.html", "locust.html", "locust_stats.csv", "meta.json"):
        assert (fixed_run / name).exists(), name
    proc = tokenpulse("report", str(fixed_run))
    assert "swiftinfer" in proc.stdout and "TTFT p95" in proc.stdout
    html = (fixed_run / "report.html").read_text()
    assert "TTFT distribution" in html and "<script" not in html


def test_sweep_finds_the_knee_near_the_providers_slots(mock: MockServerProcess, tmp_path: Path) -> None:
    slots = farm_profile("steadystack").capacity
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["steadystack"], workload={"output_tokens_mean": 24})
    out = tmp_path / "sweep"
    # Levels a factor of two apart, 6 s steps (the same 24 s in all): the knee is stated only when the
    # intervals support it, and 3 s windows cannot tell 16 from 20 users apart, nor hold 20 completions
    # at twice the slots (docs/load-testing.md, "Saturation knee").
    levels = [slots // 4, slots // 2, slots, slots * 2]
    tokenpulse("load", "--config", str(config), "--shape", "sweep", "--levels", ",".join(map(str, levels)),
               "--step-time", "6s", "--warmup", "1", "--out", str(out), "--metrics-port", "0", "--quiet")
    s = summary(out)
    knee = s["knee"]["targets"]["steadystack"]["level"]
    assert knee is not None and slots * 3 / 4 <= knee <= slots * 5 / 4, s["knee"]
    steps = s["steps"]
    assert steps[-1]["all"]["ttft"]["p95"] > steps[0]["all"]["ttft"]["p95"]  # queueing past the slots
    assert "knee" in (out / "report.html").read_text()


def test_sigkill_keeps_every_completed_record(mock: MockServerProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer"])
    out = tmp_path / "killed"
    users = 8
    served_before = mock.stats()["providers"]["swiftinfer"]["served"]
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "tokenpulse/load/locustfile.py"), "--headless",
           "--only-summary", "--tp-config", str(config), "--tp-out", str(out), "--tp-users", str(users),
           "--tp-run-time", "120", "--tp-metrics-port", "0"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = list(out.glob("records-*.jsonl"))
            if files and files[0].read_bytes().count(b"\n") >= 60:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)  # let the mock see the connections drop
    served = mock.stats()["providers"]["swiftinfer"]["served"] - served_before
    (path,) = out.glob("records-*.jsonl")
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    parsed = [json.loads(line) for line in lines]  # every line is a complete record
    assert len(parsed) >= 60
    # The mock finished `served` streams; only those still being read when the kill came can be missing.
    assert served - users <= len(parsed) <= served
    report = tokenpulse("report", str(out))
    assert "did not complete" in report.stdout


def test_max_cost_stops_before_the_cap(mock: MockServerProcess, tmp_path: Path) -> None:
    cap = 0.0005
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer"])
    out = tmp_path / "capped"
    spent_before = mock.stats()["spent_usd"]
    tokenpulse("load", "--config", str(config), "--users", "8", "--run-time", "120s", "--max-cost", str(cap),
               "--out", str(out), "--metrics-port", "0", "--quiet")
    s = summary(out)
    assert s["run"]["stop_reason"] == "max_cost"
    spent_by_mock = mock.stats()["spent_usd"] - spent_before
    spent_by_records = sum(r["estimated_cost_usd"] or 0.0 for r in records(out))
    assert 0 < spent_by_records <= cap
    assert spent_by_mock <= cap + 1e-12
    assert s["run"]["duration_s"] < 120
    assert any("--max-cost" in w for w in s["warnings"])


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_master_and_two_workers_aggregate(mock: MockServerProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer", "steadystack"])
    master_out, master_port, metrics_port = tmp_path / "run", free_port(), free_port()
    workers = [tmp_path / "worker-a", tmp_path / "worker-b"]  # as if on two other machines
    master = subprocess.Popen(
        [sys.executable, "-m", "tokenpulse", "load", "--config", str(config), "--master", "--expect-workers", "2",
         "--master-port", str(master_port), "--users", "8", "--run-time", "10s", "--out", str(master_out),
         "--metrics-port", str(metrics_port), "--quiet"], cwd=REPO)
    procs = [subprocess.Popen([sys.executable, "-m", "tokenpulse", "load", "--worker",
                               "--master-port", str(master_port), "--out", str(w), "--quiet"], cwd=REPO)
             for w in workers]
    scraped = ""
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and master.poll() is None:
            try:
                text = _metrics(metrics_port)
            except OSError:
                text = ""
            if 'worker="1"' in text and 'tokenpulse_requests_total{' in text and "outcome=\"ok\"" in text:
                scraped = text
                break
            time.sleep(0.5)
        assert master.wait(90) == 0
        assert all(p.wait(30) == 0 for p in procs)
    finally:
        for p in (master, *procs):
            if p.poll() is None:
                p.kill()
    assert "tokenpulse_load_generator_cpu_ratio{worker=\"0\"}" in scraped
    assert any(line.startswith("tokenpulse_requests_total{") and not line.endswith(" 0.0")
               for line in scraped.splitlines())
    per_worker = [len(records(w)) for w in workers]
    assert all(n > 0 for n in per_worker)
    assert not records(master_out)  # the master runs no users
    for w in workers:  # collect the workers' files into the run folder, as docs/load-testing.md says
        for f in list(w.glob("records-*.jsonl")) + list(w.glob("health-*.jsonl")):
            (master_out / f.name).write_bytes(f.read_bytes())
    tokenpulse("report", str(master_out))
    s = summary(master_out)
    e2e = sum(n for (kind, _), n in locust_counts(master_out).items() if kind == "E2E")
    assert s["run"]["records"] == sum(per_worker) == e2e == s["run"]["locust_e2e_requests"]
    assert s["run"]["workers"] == 2
    assert {"0", "1"} <= set(s["generator"]["overall"]["workers"])
    by_worker = {(r["worker"], r["target_provider"]) for r in records(master_out)}
    assert by_worker == {(w, p) for w in ("0", "1") for p in ("swiftinfer", "steadystack")}


def test_compare_flags_a_regression_and_passes_an_identical_run(fixed_run: Path, mock: MockServerProcess,
                                                               tmp_path: Path) -> None:
    farm = default_farm()
    slow_yaml = dump_farm(farm).replace("median_ms: 150.0", "median_ms: 450.0").replace("p99_ms: 600.0",
                                                                                        "p99_ms: 1800.0")
    (tmp_path / "slow.yaml").write_text(slow_yaml, encoding="utf-8")
    assert load_farm(tmp_path / "slow.yaml").models[MODEL].providers["swiftinfer"].profile.ttft.median_ms == 450
    args = ["--provider", "swiftinfer", "--users", "4", "--run-time", "8s", "--metrics-port", "0", "--quiet"]
    same = tmp_path / "same"
    tokenpulse("load", "--config", str(write_config(tmp_path / "a.yaml", mock.base_url, SIDE_BY_SIDE)),
               "--out", str(same), *args)
    with MockServerProcess(config_path=tmp_path / "slow.yaml") as slow:
        regressed = tmp_path / "regressed"
        tokenpulse("load", "--config", str(write_config(tmp_path / "b.yaml", slow.base_url, SIDE_BY_SIDE)),
                   "--out", str(regressed), *args)
    # --force: the baseline ran three targets at 12 users, these runs one at 4 (report --compare refuses
    # runs that differ unless forced); the rules name the target both have.
    rules = ["--force", "--fail-on", "ttft_p50@swiftinfer:+50%", "--fail-on", "e2e_p50@swiftinfer:+50%"]
    ok = tokenpulse("report", str(same), "--compare", str(fixed_run), *rules, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tokenpulse("report", str(regressed), "--compare", str(fixed_run), *rules, check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL ttft_p50@swiftinfer:+50%" in bad.stdout
    usage = tokenpulse("report", str(same), "--compare", str(fixed_run), "--fail-on", "ttft:+5%", check=False)
    assert usage.returncode == 2 and "unknown metric" in usage.stderr
