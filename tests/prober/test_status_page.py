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
