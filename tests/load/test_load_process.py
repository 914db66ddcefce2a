"""The load process cannot escape or mislead (issue 12 §4): real `tokenpulse load` processes against
loopback servers they start, checked by PID and by exit code, never by elapsed time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from load_helpers import REPO, records, tokenpulse, write_config

from tokenpulse.mock import MockServerProcess
from tokenpulse.ops.stack import free_port

pytestmark = pytest.mark.slow


def _wait_for(predicate, limit_s: float) -> bool:  # type: ignore[no-untyped-def]
    """Poll `predicate` until it holds or `limit_s` passes (a bound on the test, not an assertion)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def test_sigkill_of_tokenpulse_load_leaves_no_locust_process(mock: MockServerProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer"])
    out = tmp_path / "run"
    parent = subprocess.Popen([sys.executable, "-m", "tokenpulse", "load", "--config", str(config), "--users", "4",
                               "--run-time", "120s", "--processes", "2", "--out", str(out), "--metrics-port", "0",
                               "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    locusts: list[psutil.Process] = []
    try:
        assert _wait_for(lambda: any(f.stat().st_size for f in out.glob("records-*.jsonl")), 60), "no records"
        # the Locust master and the two workers it forked
        locusts = [p for p in psutil.Process(parent.pid).children(recursive=True) if "locust" in " ".join(p.cmdline())]
        assert len(locusts) == 3, [p.cmdline() for p in locusts]
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        gone, alive = psutil.wait_procs(locusts, timeout=90)
        assert not alive, f"Locust outlived tokenpulse load: {[p.pid for p in alive]}"
    finally:
        for p in locusts:
            if p.is_running():
                p.kill()
        if parent.poll() is None:
            parent.kill()
    # It stopped as on SIGTERM: users drained, meta.json final, every line a whole record.
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["stop_reason"] == "interrupted" and "run_end" in meta
    assert records(out)


def test_sigterm_still_stops_cleanly_with_a_report(mock: MockServerProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer"])
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "load", "--config", str(config), "--users", "4",
                             "--run-time", "120s", "--out", str(out), "--metrics-port", "0", "--quiet"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: any(f.stat().st_size for f in out.glob("records-*.jsonl")), 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (out / "summary.json").exists() and (out / "report.html").exists()
    assert all(r["outcome"] in ("ok", "error", "cancelled") for r in records(out))


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "2"], "--rate does not apply to --shape fixed"),
    (["--shape", "fixed", "--levels", "1,2"], "--levels does not apply to --shape fixed"),
    (["--shape", "ramp", "--step-time", "5s"], "--step-time does not apply to --shape ramp"),
    (["--shape", "sweep", "--levels", "1,2", "--arrival", "constant"], "--arrival does not apply"),
    (["--model", "no/such-model"], "--model no/such-model: not in the config"),
])
def test_options_that_do_not_apply_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    config = write_config(tmp_path / "cfg.yaml", "http://127.0.0.1:9/api/v1", ["swiftinfer"])
    out = tmp_path / "run"
    proc = tokenpulse("load", "--config", str(config), "--out", str(out), "--metrics-port", "0", *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not out.exists()


def test_model_filter_picks_the_targets(mock: MockServerProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer"])
    data = config.read_text(encoding="utf-8").replace("endpoints:", "endpoints:", 1)
    import yaml

    cfg = yaml.safe_load(data)
    cfg["endpoints"][0]["models"].append({"id": "meta-llama/llama-3.3-70b-instruct", "providers": ["swiftinfer"]})
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = tmp_path / "run"
    tokenpulse("load", "--config", str(config), "--out", str(out), "--metrics-port", "0", "--quiet", "--users", "2",
               "--run-time", "2s", "--model", "meta-llama/llama-3.3-70b-instruct")
    assert {r["model"] for r in records(out)} == {"meta-llama/llama-3.3-70b-instruct"}


def test_a_busy_metrics_port_is_reported_before_locust_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", "http://127.0.0.1:9/api/v1", ["swiftinfer"])
    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", port))
    holder.listen()
    out = tmp_path / "run"
    try:
        proc = tokenpulse("load", "--config", str(config), "--out", str(out), "--metrics-port", str(port),
                          check=False)
    finally:
        holder.close()
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--metrics-port {port}" in lines[0], proc.stderr
    assert not out.exists()  # no half-written run folder


def test_a_run_where_every_request_failed_exits_1_with_the_classes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", f"http://127.0.0.1:{free_port()}/api/v1", ["swiftinfer"])
    out = tmp_path / "run"
    proc = tokenpulse("load", "--config", str(config), "--out", str(out), "--metrics-port", "0", "--quiet",
                      "--users", "2", "--run-time", "2s", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "every request failed" in proc.stderr and "connect_error" in proc.stderr
    assert records(out) and (out / "summary.json").exists()


def test_web_ui_counts_each_request_once_and_shows_token_latency_apart(mock: MockServerProcess,
                                                                      tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer"])
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "load", "--config", str(config), "--out",
                             str(tmp_path / "run"), "--users", "4", "--run-time", "6", "--metrics-port", "0", "--web",
                             "--web-port", str(port), "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    seen: dict[str, object] = {}

    def poll() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/requests", timeout=2) as resp:
                data = json.loads(resp.read())
        except OSError:
            return False
        tab = next((t["data"] for t in data.get("extended_stats") or [] if t["key"] == "tokenpulse-token-latency"),
                   [])
        if any(row["name"] != "Aggregated" for row in data["stats"]) and tab:
            seen.update(stats=data["stats"], tab=tab)
            return True
        return False

    try:
        assert _wait_for(poll, 60), "the web UI never showed requests and the token-latency tab"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            page = resp.read().decode()
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    kinds = {row["method"] for row in seen["stats"] if row["name"] != "Aggregated"}  # type: ignore[union-attr]
    assert kinds == {"E2E"}
    assert {row["method"] for row in seen["tab"]} <= {"TTFT", "TTFC"}  # type: ignore[union-attr]
    assert "Token latency" in page
