"""The status page: escaping, and in headless Chromium (Debian's `chromium`) it lists every provider."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from prober_support import read_listen_port

from tokenpulse.mock import MockServerThread, default_farm
from tokenpulse.prober.status_page import render_status_page

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def document(message: str, provider: str = "p1") -> dict[str, Any]:
    target = {
        "provider": provider, "profile": "default", "state": "degraded", "consecutive_failures": 1,
        "uptime_1h": 0.5, "uptime_1d": None, "last_ttft_s": 0.25, "median_ttft_s": 0.3,
        "last_tokens_per_s": 80.0, "median_tokens_per_s": None, "last_probe_at": "2030-01-01T00:00:00+00:00",
        "last_probe_age_s": 12.0, "last_outcome": "error", "last_error_class": "server_error", "probes": 2,
        "interval_s": 60.0,
        "recent_failures": [{"at": "2030-01-01T00:00:00+00:00", "error_class": "server_error",
                             "http_status": 502, "message": message, "counts_against_availability": True}],
    }
    return {"generated_at": "2030-01-01T00:00:05+00:00", "version": "0", "ready": True,
            "prober": {"targets": 1, "states": {"up": 0, "degraded": 1, "down": 0, "unknown": 0},
                       "in_flight": 0, "misfires": 0, "scheduler_lag_p50_s": 0.001, "scheduler_lag_p99_s": 0.002},
            "groups": [{"endpoint": "e<1>", "model": "m/\"x\"", "targets": [target]}],
            "pending_discovery": []}


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_everything_is_escaped() -> None:
    page = render_status_page(document("<script>alert('x')</script> & more", provider="p<b>1"))
    parser = _Collect()
    parser.feed(page)
    assert "script" not in parser.tags and "b" not in parser.tags
    assert "&lt;script&gt;" in page and "e&lt;1&gt;" in page and "m/&quot;x&quot;" in page
    assert 'http-equiv="refresh"' in page and "<script" not in page


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def dump_dom(chromium: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_status_page_in_headless_chromium_lists_every_provider() -> None:
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (Debian package `chromium`)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); CI runs this test")
    farm = default_farm()
    with MockServerThread() as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenpulse", "probe", "--config", str(EXAMPLES / "mock.yaml"), "--listen",
             "127.0.0.1:0", "--interval", "1", "--shutdown-grace", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TOKENPULSE_MOCK_URL": server.base_url})
        try:
            port = read_listen_port(proc)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the fast providers have a result on the page
                states = httpx.get(f"{base}/api/status", timeout=10).json()["prober"]["states"]
                if states["up"] >= 2:
                    break
                time.sleep(0.3)
            dom = dump_dom(chromium, f"{base}/")
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    assert "tokenpulse provider status" in dom
    sections = re.findall(r"<section>(.*?)</section>", dom, re.S)
    assert len(sections) == len(farm.models)
    for model_id, model in farm.models.items():
        (section,) = [s for s in sections if f"<h2>{model_id} " in s]
        listed = re.findall(r'data-provider="([^"]+)"', section)
        assert listed == list(model.providers), (model_id, listed)
    assert re.search(r'class="badge up"', dom)
    assert re.search(r'<p class="banner (up|degraded|down|blind|unknown)">', dom)
    assert dom.count('<div class="bars"') == sum(len(m.providers) for m in farm.models.values())


def test_story_elements_bars_incidents_collapsed_failures_and_partial_uptime() -> None:
    doc = document("HTTP 502 <upstream>")
    target = doc["groups"][0]["targets"][0]
    target.update(uptime_1h_covers_s=720.0, uptime_1d_covers_s=720.0, uptime_1d=0.5, quantization="fp8",
                  price={"prompt_per_mtok": 0.09, "completion_per_mtok": 0.45, "source": "listing"},
                  history_bars={"first_start": "2030-01-01T00:00:00+00:00", "width_s": 900.0,
                                "ok": [0, 9, 0, 10], "failed": [0, 1, 0, 0], "caller_side": [0, 0, 4, 0]})
    target["recent_failures"][0].update(count=12, first_at="2030-01-01T20:46:00+00:00",
                                        at="2030-01-01T20:58:00+00:00")
    doc["banner"] = {"level": "down", "text": "Outage: 1 down"}
    doc["incidents"] = [
        {"endpoint": "e<1>", "model": "m", "provider": "glitch<grid>", "profile": "default", "state": "down",
         "reason": None, "since": "2030-01-01T20:46:00+00:00", "until": None, "ongoing": True,
         "duration_s": 180.0},
        {"endpoint": "e", "model": "m", "provider": "p1", "profile": "default", "state": "blind",
         "reason": "no_credits", "since": "2030-01-01T18:00:00+00:00", "until": "2030-01-01T18:30:00+00:00",
         "ongoing": False, "duration_s": 1800.0}]
    page = render_status_page(doc)
    assert "glitch&lt;grid&gt; down since 20:46 UTC, 3 min" in page
    assert "p1 was blind (no_credits) 18:00–18:30 UTC (30 min)" in page
    assert "<b>×12</b>" in page and "20:46–20:58 UTC" in page and "HTTP 502 &lt;upstream&gt;" in page
    assert page.count("over 12 min") == 2  # both uptimes cover 12 minutes of their window
    assert 'class="banner down">Outage: 1 down' in page
    assert "fp8 · $0.09 / $0.45 per M tokens" in page
    classes = re.findall(r'<span class="(b[0-9c])" title="([^"]*)"', page)
    assert [c for c, _ in classes] == ["b0", "b3", "bc", "b1"]  # none, 90 %, caller-side only, 100 %
    assert classes[1][1] == "00:15 UTC: 9/10 ok" and classes[2][1] == "00:30 UTC: 0/0 ok, 4 caller-side"
