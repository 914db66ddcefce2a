"""`tokenpulse demo --quick`: the main job runs end to end, reports every provider, writes its report and
leaves no process behind (also when interrupted)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tokenpulse.mock import default_farm

PROVIDERS = list(next(iter(default_farm().models.values())).providers)


def _port_closed(url: str) -> bool:
    match = re.search(r"http://127\.0\.0\.1:(\d+)", url)
    assert match, url
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", int(match.group(1)))) != 0


def test_quick_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "tokenpulse", "demo", "--quick", "--out", str(out),
                           "--status-port", "0"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    table = text[text.index("Providers of"):text.index("knee:")]
    for provider in PROVIDERS:
        assert re.search(rf"^{re.escape(provider)}\s", table, re.MULTILINE), f"{provider} missing:\n{table}"
    for heading in ("avail", "TTFT p50", "TTFC p95", "TPOT p50", "tok/s p50", "errors", "$/Mtok", "knee"):
        assert heading in table
    assert "status page" in text and "next:" in text and "stopped every process" in text

    summary = json.loads((out / "load" / "summary.json").read_text())
    assert {t["provider"] for t in summary["targets"]} == set(PROVIDERS)
    assert summary["run"]["records"] > 0
    html = (out / "load" / "report.html").read_text()
    assert "<svg" in html and "swiftinfer" in html
    for name in ("probe.yaml", "load.yaml"):
        assert (out / name).is_file()
    # Everything it started is gone: the mock's and the prober's ports are closed.
    mock_url = re.search(r"mock farm: (\S+)", text).group(1)  # type: ignore[union-attr]
    status_url = re.search(r"status page: (\S+)", text).group(1)  # type: ignore[union-attr]
    assert _port_closed(mock_url) and _port_closed(status_url)


def test_interrupted_demo_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "demo", "--out", str(out), "--status-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("status page:"):
            break
    time.sleep(2)  # the load sweep is running now
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    text = "".join(lines) + rest
    assert proc.returncode == 130, text
    assert "interrupted" in text
    mock_url = re.search(r"mock farm: (\S+)", text).group(1)  # type: ignore[union-attr]
    status_url = re.search(r"status page: (\S+)", text).group(1)  # type: ignore[union-attr]
    assert _port_closed(mock_url) and _port_closed(status_url)
    leftovers = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", leftovers.stdout
