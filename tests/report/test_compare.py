"""`report --compare`: refusal of runs that differ (and --force), targets in one run only, --fail-on only on
significant regressions beyond the threshold, usage errors (exit 2), target names a user can type, --json
in base units. Run folders are built from known distributions (no Locust)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from synth import MODELS, closed_loop, write_run

from tokenpulse.report.compare import RuleError, evaluate, parse_rule
from tokenpulse.report.run import load_run
from tokenpulse.report.summary import summarize

REPO = Path(__file__).resolve().parents[2]
TWO_MODELS = [("swiftinfer", MODELS[0]), ("steadystack", MODELS[0]), ("swiftinfer", MODELS[1])]


def report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokenpulse", "report", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, check=False)


def run_folder(path: Path, *, seed: int, slow: float = 1.0, targets: list[tuple[str, str]] | None = None,
               users: int = 4, step_s: float = 20.0, **meta_changes: Any) -> Path:
    meta, records = closed_loop([users], step_s=step_s, seed=seed, targets=targets or TWO_MODELS, ttft=0.2 * slow)
    meta.update(meta_changes)
    return write_run(path, meta, records)


def test_two_runs_from_the_same_distribution_pass_the_documented_gate(tmp_path: Path) -> None:
    a, b = run_folder(tmp_path / "a", seed=1), run_folder(tmp_path / "b", seed=2)
    gate = ["--fail-on", "ttft_p95:+10%", "--fail-on", "throughput:-15%", "--fail-on", "error_rate:+0.01",
            "--fail-on", "tpot_p50@swiftinfer:+5ms", "--fail-on", "ttft_p50:+1%", "--fail-on", "ttft_p99:+1%"]
    proc = report(str(a), "--compare", str(b), *gate)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    # the swiftinfer rule applied to both of its models, by the name a user types
    assert proc.stdout.count("tpot_p50@swiftinfer:+5ms [") == 2


def test_a_real_regression_fails_and_a_non_significant_one_does_not(tmp_path: Path) -> None:
    base = summarize(load_run(run_folder(tmp_path / "base", seed=1)))
    slower = summarize(load_run(run_folder(tmp_path / "slow", seed=2, slow=1.5)))
    (v,) = evaluate([parse_rule("ttft_p50@steadystack:+10%")], slower, base)
    assert v.failed and v.significant and v.change == pytest.approx(0.5, abs=0.1)
    # Few samples: the same +50% point change from 3-request samples is within the noise.
    tiny_base = summarize(load_run(run_folder(tmp_path / "tb", seed=1, users=1, step_s=2.5)))
    tiny_slow = summarize(load_run(run_folder(tmp_path / "ts", seed=2, users=1, step_s=2.5, slow=1.5)))
    (t,) = evaluate([parse_rule("ttft_p50@steadystack:+10%")], tiny_slow, tiny_base)
    assert t.change is not None and t.change > 0.1
    assert not t.failed and not t.significant and t.note


def test_runs_that_differ_are_refused_unless_forced(tmp_path: Path) -> None:
    a = run_folder(tmp_path / "a", seed=1)
    other = run_folder(tmp_path / "b", seed=2, workload={"kind": "synthetic", "input_tokens_mean": 512,
                                                           "output_tokens_mean": 20, "reasoning": {"effort": "low"}})
    refused = report(str(a), "--compare", str(other))
    assert refused.returncode == 2
    assert "workload.input_tokens_mean: 64 (run) vs 512 (baseline)" in refused.stderr
    assert "reasoning" in refused.stderr and "--force" in refused.stderr
    forced = report(str(a), "--compare", str(other), "--force")
    assert forced.returncode == 0 and "differs (--force): workload.input_tokens_mean" in forced.stdout


def test_targets_in_one_run_only_are_named(tmp_path: Path) -> None:
    a = run_folder(tmp_path / "a", seed=1)
    b = run_folder(tmp_path / "b", seed=2, targets=TWO_MODELS[:2])
    refused = report(str(a), "--compare", str(b))
    assert refused.returncode == 2 and "targets only in the run: " in refused.stderr
    forced = report(str(a), "--compare", str(b), "--force")
    assert forced.returncode == 0 and "only in the run:" in forced.stdout


@pytest.mark.parametrize("rule, message", [
    ("ttft_p95:+10", "without a unit"),
    ("throughput:-15", "without a unit"),
    ("ttft_p95@nosuch:+10%", "no such target"),
    ("throughput:+5ms", "does not apply"),
])
def test_usage_errors_exit_2(tmp_path: Path, rule: str, message: str) -> None:
    a, b = run_folder(tmp_path / "a", seed=1), run_folder(tmp_path / "b", seed=2)
    proc = report(str(a), "--compare", str(b), "--fail-on", rule)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_target_in_only_one_run_is_a_usage_error(tmp_path: Path) -> None:
    base = summarize(load_run(run_folder(tmp_path / "b", seed=1, targets=TWO_MODELS[:1])))
    run = summarize(load_run(run_folder(tmp_path / "a", seed=2, targets=TWO_MODELS[:2])))
    with pytest.raises(RuleError, match="only in the run"):
        evaluate([parse_rule("ttft_p95@steadystack:+10%")], run, base)


def test_json_comparison_is_in_base_units(tmp_path: Path) -> None:
    a, b = run_folder(tmp_path / "a", seed=1), run_folder(tmp_path / "b", seed=2)
    proc = report(str(a), "--compare", str(b), "--json", "--fail-on", "ttft_p95:+10%")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    row = next(r for r in data["comparison"] if r["metric"] == "ttft_p95" and r["target"] == "all")
    assert 0.1 < row["run"]["value"] < 1.0  # seconds, not "212 ms"
    assert row["run"]["n"] > 100 and len(row["run"]["ci"]) == 2 and row["run"]["ci"][0] <= row["run"]["value"]
    tput = next(r for r in data["comparison"] if r["metric"] == "throughput" and r["target"] == "all")
    assert isinstance(tput["baseline"]["value"], float)
    assert all(isinstance(v["failed"], bool) and v["z"] is None or isinstance(v["z"], float) for v in data["rules"])
