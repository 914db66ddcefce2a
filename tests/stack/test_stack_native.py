"""`tokenpulse stack up | sink` and tokenpulse/ops/stack/__init__.py: the generated configs, the webhook sink, and the
native stack started, checked and stopped as a user would (SIGTERM, or a service dying)."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml
from stack_helpers import ROOT, prom_query

from tokenpulse.ops.stack import (
    StackError,
    WebhookSink,
    busy_ports,
    find_root,
    free_port,
    grafana_files,
    prometheus_config,
    write_yaml,
)

TOKENPULSE = [sys.executable, "-m", "tokenpulse"]


def test_find_root_from_a_subdirectory() -> None:
    assert find_root(ROOT / "dashboards" / "json") == ROOT


def test_find_root_falls_back_to_the_checkout_of_the_package(tmp_path: Path) -> None:
    assert find_root(tmp_path) == ROOT


def test_prometheus_config_rewrites_targets_and_keeps_jobs() -> None:
    committed = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    config = prometheus_config(ROOT, prober="127.0.0.1:1", alertmanager="127.0.0.1:2", prometheus="127.0.0.1:3",
                               scrape_interval="2s", evaluation_interval="3s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {j["job_name"] for j in committed["scrape_configs"]} - {"tokenpulse-locust"}
    assert jobs["tokenpulse-prober"]["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
    assert jobs["alertmanager"]["static_configs"] == [{"targets": ["127.0.0.1:2"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:2"]
    assert config["global"]["scrape_interval"] == "2s" and config["global"]["evaluation_interval"] == "3s"
    assert config["rule_files"] == [str(ROOT / "prometheus" / "rules" / "*.yml")]
    with_locust = prometheus_config(ROOT, prober="a:1", alertmanager="b:2", prometheus="c:3", locust="d:4")
    (locust,) = [j for j in with_locust["scrape_configs"] if j["job_name"] == "tokenpulse-locust"]
    assert locust["static_configs"] == [{"targets": ["d:4"]}] and locust["scrape_interval"] == "5s"


def test_generated_prometheus_config_passes_promtool(promtool: str, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "prometheus.yml", prometheus_config(
        ROOT, prober="127.0.0.1:9464", alertmanager="127.0.0.1:9093", prometheus="127.0.0.1:9090",
        locust="127.0.0.1:9465", scrape_interval="1s", evaluation_interval="1s"))
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout + result.stderr


def test_prometheus_config_refuses_an_unknown_job(tmp_path: Path) -> None:
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "alertmanager").mkdir()
    (tmp_path / "prometheus" / "prometheus.yml").write_text(
        "scrape_configs:\n  - job_name: other\n    static_configs: [{targets: ['x:1']}]\n", encoding="utf-8")
    with pytest.raises(StackError, match="other"):
        prometheus_config(tmp_path, prober="a:1", alertmanager="b:2", prometheus="c:3")


def test_grafana_files_provision_local_urls_and_the_committed_dashboards(tmp_path: Path) -> None:
    ini = grafana_files(ROOT, tmp_path, host="127.0.0.1", port=3123, prometheus_url="http://127.0.0.1:9999",
                        alertmanager_url="http://127.0.0.1:9998", admin_password="s3cret")
    text = ini.read_text(encoding="utf-8")
    assert "http_port = 3123" in text and "admin_password = s3cret" in text
    assert f"provisioning = {tmp_path / 'provisioning'}" in text
    datasources = yaml.safe_load((tmp_path / "provisioning" / "datasources" / "tokenpulse.yml").read_text())
    urls = {ds["uid"]: ds["url"] for ds in datasources["datasources"]}
    assert urls == {"tokenpulse-prometheus": "http://127.0.0.1:9999", "tokenpulse-alertmanager": "http://127.0.0.1:9998"}
    providers = yaml.safe_load((tmp_path / "provisioning" / "dashboards" / "tokenpulse.yml").read_text())
    path = Path(providers["providers"][0]["options"]["path"])
    assert path.is_absolute() and sorted(p.name for p in path.glob("*.json")) == [
        "load-test.json", "prober-health.json", "provider-detail.json", "provider-overview.json"]


def test_busy_ports_names_the_service() -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert busy_ports("127.0.0.1", {"prometheus": port, "mock": 0, "prober": free_port()}) == [f"prometheus {port}"]


def test_free_port_stays_out_of_the_ephemeral_range() -> None:
    """Outgoing connections take their source ports from the ephemeral range, so a port picked there can
    be gone by the time the service binds it; picks are also never handed out twice."""
    from tokenpulse.ops.stack import ports as stack

    low = stack._ephemeral_low()
    if low - stack._LISTEN_PORTS_FROM < 1000:
        pytest.skip("no room below the ephemeral range on this machine")
    picks = [free_port() for _ in range(50)]
    assert len(set(picks)) == len(picks)
    assert all(stack._LISTEN_PORTS_FROM <= port < low for port in picks)
    assert all(stack.port_free("127.0.0.1", port) for port in picks)


def test_free_port_without_a_known_range_asks_the_kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tokenpulse.ops.stack import ports as stack

    monkeypatch.setattr(stack, "_EPHEMERAL_RANGE", tmp_path / "missing")
    picks = {free_port() for _ in range(5)}
    assert len(picks) == 5 and all(stack.port_free("127.0.0.1", port) for port in picks)


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_webhook_sink_keeps_notifications_and_serves_them(tmp_path: Path) -> None:
    log = tmp_path / "alerts.jsonl"
    sink = WebhookSink(log_path=log).start()
    try:
        payload = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "X", "provider": "p"}}]}
        assert post(sink.url + "/alerts/page", json.dumps(payload).encode()) == 200
        assert post(sink.url + "/alerts/page", b"not json") == 400
        alert = sink.wait_for(lambda note, a: note.path == "/alerts/page" and a["labels"]["provider"] == "p", 5)
        assert alert["status"] == "firing"
        with pytest.raises(TimeoutError):
            sink.wait_for(lambda note, a: a["labels"]["provider"] == "q", 0.3)
        with urllib.request.urlopen(sink.url + "/", timeout=5) as response:
            served = json.loads(response.read())
        assert [n["payload"] for n in served] == [payload]
        assert [json.loads(line)["payload"] for line in log.read_text(encoding="utf-8").splitlines()] == [payload]
    finally:
        sink.stop()


# ------------------------------------------------------------------------------ the CLI, live
def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> list[str]:
    """Lines of proc's stdout up to and including the one containing `marker` (reads the pipe directly:
    a buffered readline would hide lines from select)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                lines.append(raw.decode(errors="replace"))
                if marker in lines[-1]:
                    return lines
    raise AssertionError(f"{marker!r} not seen within {timeout} s; output so far:\n" + "\n".join(lines))


def start_stack(tmp_path: Path, *extra: str, env: dict[str, str] | None = None,
                grafana: bool = False) -> subprocess.Popen[bytes]:
    ports = [f"--{name}-port=0" for name in ("mock", "prober", "prometheus", "alertmanager", "sink", "grafana")]
    return subprocess.Popen([*TOKENPULSE, "stack", "up", "--root", str(ROOT), "--run-dir", str(tmp_path / "run"),
                             *([] if grafana else ["--no-grafana"]), *ports, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)


def urls(lines: list[str]) -> dict[str, str]:
    """name -> URL from the table `stack up` prints ("  prometheus    http://127.0.0.1:9090/  (note)")."""
    out = {}
    for line in lines:
        if line.startswith("  ") and "http://" in line:
            name, _, rest = line.partition("http://")
            out[name.strip()] = "http://" + rest.split()[0]
    return out


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> str:
    """Signal proc (if still running) and return the rest of its output."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return out.decode(errors="replace")


@pytest.mark.slow
def test_stack_up_serves_the_prober_through_prometheus_and_stops_cleanly(
        tmp_path: Path, prometheus_bin: str, alertmanager_bin: str) -> None:
    proc = start_stack(tmp_path, "--interval", "1", "--scrape-interval", "1s", "--evaluation-interval", "1s")
    try:
        lines = read_until(proc, "Ctrl-C stops everything", 90)
        found = urls(lines)
        assert {"alert sink", "alertmanager", "mock", "prober", "prometheus"} <= set(found), lines
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4
        prometheus = found["prometheus"].rstrip("/")
        deadline = time.monotonic() + 30
        while not prom_query(prometheus, 'tokenpulse_target_up{job="tokenpulse-prober"} == 1'):
            assert time.monotonic() < deadline, "the prober's targets never reached Prometheus"
            time.sleep(0.5)
        with urllib.request.urlopen(found["alertmanager"] + "-/ready", timeout=5) as response:
            assert response.status == 200
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "tokenpulse stack: stopped" in out
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {alive}"
    run = tmp_path / "run"
    assert {"prometheus.yml", "alertmanager.yml", "prober.log", "prometheus.log"} <= {p.name for p in run.iterdir()}


@pytest.mark.slow
def test_stack_up_stops_everything_when_a_service_dies(tmp_path: Path, prometheus_bin: str,
                                                      alertmanager_bin: str) -> None:
    proc = start_stack(tmp_path, grafana=True)
    try:
        lines = read_until(proc, "Ctrl-C stops everything", 90)
        grafana = shutil.which("grafana") or shutil.which("grafana-server")
        assert ("grafana" in urls(lines)) if grafana else any("Grafana is not installed" in line for line in lines)
        children = psutil.Process(proc.pid).children(recursive=True)
        prober = [c for c in children if "probe" in c.cmdline()]
        assert len(prober) == 1
        prober[0].kill()
        proc.wait(60)
    finally:
        out = stop(proc)
    assert proc.returncode == 1, out
    assert "prober exited" in out
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {alive}"


def test_stack_up_without_prometheus_says_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    proc = start_stack(tmp_path, env=env)
    out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 1
    assert "not installed: prometheus, alertmanager" in out and "apt-get install prometheus" in out


def test_stack_sink_command_prints_alerts(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*TOKENPULSE, "stack", "sink", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        read_until(proc, "listening", 30)
        payload = {"alerts": [{"status": "firing", "labels": {"alertname": "TokenpulseProviderDown", "endpoint": "mock",
                                                               "model": "m", "provider": "p"},
                               "annotations": {"summary": "p is down"}}]}
        assert post(f"http://127.0.0.1:{port}/alerts/page", json.dumps(payload).encode()) == 200
        line = read_until(proc, "TokenpulseProviderDown", 10)[-1]
        assert "FIRING" in line and "provider=p" in line and "p is down" in line and "/alerts/page" in line
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out


def test_stack_up_refuses_a_busy_port_before_starting_anything(tmp_path: Path) -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_stack(tmp_path, f"--prometheus-port={port}")
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 1
    assert f"ports in use on 127.0.0.1: prometheus {port}" in out
    assert not (tmp_path / "run" / "prober.log").exists()
