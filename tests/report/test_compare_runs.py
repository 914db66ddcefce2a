"""Two identical 20 s runs against the mock, compared with the documented gate, pass (a real `tokenpulse
load` each; no timing assertion: the verdict is the comparison's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tokenpulse.mock import MockServerProcess

REPO = Path(__file__).resolve().parents[2]
GATE = ["--fail-on", "ttft_p95:+10%", "--fail-on", "throughput:-15%", "--fail-on", "error_rate:+0.01",
        "--fail-on", "tpot_p50@swiftinfer:+5ms"]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServerProcess]:
    with MockServerProcess() as srv:
        yield srv


def tokenpulse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokenpulse", *args], capture_output=True, text=True, timeout=150,
                          cwd=REPO, env={**os.environ, **(env or {})}, check=False)


def test_two_identical_runs_pass_the_default_gate(mock: MockServerProcess, tmp_path: Path) -> None:
    # The multi-model example config (swiftinfer serves two models there), with a pinned small workload.
    config = yaml.safe_load((REPO / "examples" / "mock.yaml").read_text(encoding="utf-8"))
    config["load"] = {"workload": {"input_tokens_mean": 64, "output_tokens_mean": 24, "fixed_output": True,
                                   "reasoning": {"enabled": False}}}
    path = tmp_path / "mock.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    # Both runs at once: the same machine and mock conditions for both (run one after the other on a
    # busy machine, the second could meet another load than the first), in half the time.
    runs = [tmp_path / "baseline", tmp_path / "today"]
    procs = [subprocess.Popen([sys.executable, "-m", "tokenpulse", "load", "--config", str(path), "--provider",
                               "swiftinfer", "--users", "8", "--run-time", "20s", "--out", str(out),
                               "--metrics-port", "0", "--quiet"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "TOKENPULSE_MOCK_URL": mock.base_url}) for out in runs]
    try:
        for p in procs:
            output, _ = p.communicate(timeout=150)
            assert p.returncode == 0, output[-4000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    proc = tokenpulse("report", str(runs[1]), "--compare", str(runs[0]), *GATE, "--json")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["differences"] == [] and not any(v["failed"] for v in data["rules"])
    swift = [v for v in data["rules"] if v["rule"] == "tpot_p50@swiftinfer:+5ms"]
    assert len(swift) == 2  # both models swiftinfer serves, named as a user types it
    (ttft,) = [r for r in data["comparison"] if r["metric"] == "ttft_p95" and r["target"] == "all"]
    assert ttft["run"]["n"] > 100 and None not in ttft["run"]["ci"]
