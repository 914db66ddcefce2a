"""`tokenpulse probe` from the command line: malformed configs, --once, SIGTERM, a busy --listen port."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prober_support import config_data, read_listen_port, write_yaml

from tokenpulse.cli.main import main
from tokenpulse.config import ConfigError, load_config
from tokenpulse.mock import MockServerThread

GOOD = """
endpoints:
  - name: mock
    base_url: http://127.0.0.1:1/api/v1
    models:
      - id: test/chat
        providers: [fast-a]
"""

#: (file text, expected field path, expected problem). A path of "" means the problem is file-level.
MALFORMED: list[tuple[str, str, str]] = [
    ("endpoints: [\n  {name: x\n", "", "invalid YAML: line 3, column 1"),
    ("- just\n- a list\n", "", "the file must hold a mapping with an `endpoints` list"),
    ("probe:\n  interval_s: 10\n", "endpoints", "required field is missing"),
    (GOOD + "probes:\n  interval_s: 10\n", "", "unknown key 'probes'"),
    (GOOD.replace("base_url:", "base-url: http://x\n    base_url:"), "endpoints.0", "unknown key 'base-url'"),
    (GOOD.replace("http://127.0.0.1:1/api/v1", "ftp://example.com"), "endpoints.0.base_url",
     "must be an http(s) URL"),
    (GOOD.replace("http://127.0.0.1:1/api/v1", "http://127.0.0.1:1/api/v1/chat/completions"),
     "endpoints.0.base_url", "give the API root"),
    (GOOD + "probe:\n  interval_s: -5\n", "probe.interval_s", "greater than or equal to 0.5"),
    (GOOD + "probe:\n  max_in_flight: lots\n", "probe.max_in_flight", "valid integer"),
    (GOOD + "probe:\n  confirm: {failures_before_down: 0}\n", "probe.confirm.failures_before_down",
     "greater than or equal to 1"),
    (GOOD.replace("[fast-a]", "[fast-a, fast-a]"), "endpoints.0.models.0.providers", "duplicate providers: fast-a"),
    (GOOD.replace("[fast-a]", "[fast a]"), "endpoints.0.models.0.providers.0", "should match pattern"),
    (GOOD.replace("providers: [fast-a]", "providers: [fast-a]\n        discover: true"), "endpoints.0.models.0",
     "set either providers or discover: true, not both"),
    (GOOD.replace("providers: [fast-a]", "providers: [fast-a]\n        profiles: [fancy]"),
     "endpoints.0.models.0.profiles.0", "unknown profile 'fancy'"),
    (GOOD.replace("    models:", "    headers: {Authorization: Bearer x}\n    models:"), "endpoints.0.headers",
     "do not put credentials in headers"),
    (GOOD.replace("http://127.0.0.1:1/api/v1", "${TP_SURELY_UNSET_VAR}"), "endpoints.0.base_url",
     "environment variable TP_SURELY_UNSET_VAR is not set"),
    (GOOD.replace("    models:", "    kind: openai\n    models:"), "endpoints.0.models.0",
     "providers/discover/routes need kind: openrouter"),
    (GOOD + "slo:\n  availability: 1.5\n", "slo.availability", "less than 1"),
]


@pytest.mark.parametrize(("text", "path", "problem"), MALFORMED)
def test_malformed_config_gives_a_precise_error_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           text: str, path: str, problem: str) -> None:
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert any(p == path and problem in m for p, m in info.value.problems), info.value.problems
    assert main(["probe", "--config", str(config_file), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    prefix = f"error: {config_file}: {path}: " if path else f"error: {config_file}: "
    assert any(line.startswith(prefix) and problem in line for line in err.splitlines()), err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["probe", "--config", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {missing}: cannot read")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokenpulse", "probe", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_once_table_and_json(farm_server: MockServerThread, tmp_path: Path) -> None:
    good = write_yaml(tmp_path / "good.yaml", config_data(farm_server.base_url, ["fast-a", "fast-b"]))
    table = run_cli("--config", str(good), "--once")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header == ["endpoint", "model", "provider", "outcome", "TTFT", "TTFC", "E2E", "tok/s", "tokens"]
    assert all(re.search(rf"test/chat\s+{p}\s+ok\s", table.stdout) for p in ("fast-a", "fast-b"))

    mixed = write_yaml(tmp_path / "mixed.yaml", config_data(farm_server.base_url, ["fast-a", "err503"]))
    as_json = run_cli("--config", str(mixed), "--once", "--format", "json")
    assert as_json.returncode == 1
    rows = json.loads(as_json.stdout)
    assert [(r["endpoint"], r["model"], r["provider"]) for r in rows] == [
        ("mock", "test/chat", "fast-a"), ("mock", "test/chat", "err503")]
    assert rows[0]["outcome"] == "ok" and rows[0]["ttft_s"] > 0 and rows[0]["reported_provider"] == "Fast-A"
    assert rows[1]["error_class"] == "server_error" and rows[1]["http_status"] == 503
    for field in ("ttfb_s", "ttfc_s", "e2e_s", "tpot_s", "output_tokens_per_s", "output_tokens",
                  "tokens_estimated", "finish_reason"):
        assert field in rows[0]


def test_sigterm_stops_a_real_prober_with_exit_0(farm_server: MockServerThread, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", config_data(farm_server.base_url, ["fast-a", "fast-b", "hang"]))
    proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "probe", "--config", str(config), "--listen",
                             "127.0.0.1:0", "--interval", "0.5", "--shutdown-grace", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = read_listen_port(proc)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        time.sleep(1.0)  # probes in flight, `hang` among them
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "SIGTERM received: stopping" in err and "prober stopped" in err


def test_busy_listen_port_exits_2(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", config_data("http://127.0.0.1:1/api/v1", ["fast-a"]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli("--config", str(config), "--listen", f"127.0.0.1:{port}")
    assert proc.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_bad_listen_argument_is_a_usage_error(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", config_data("http://127.0.0.1:1/api/v1", ["fast-a"]))
    proc = run_cli("--config", str(config), "--listen", "nonsense")
    assert proc.returncode == 2 and "expected HOST:PORT" in proc.stderr
