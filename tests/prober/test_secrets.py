"""A canary API key never leaves the process: not in /metrics, logs, the status page, /api/status or
the --once JSON, even when a provider echoes the key back in its error messages."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import EchoKeyServer
from prober_support import TEST_MODEL, make_config, probe_settings, write_yaml

from tokenpulse.mock import MockServerThread
from tokenpulse.prober.service import Prober

CANARY = "sk-or-v1-canary-4f2b9c7e1d3a5b6c8e0f2a4b6c8d0e1f"
KEY_ENV = "TP_CANARY_API_KEY"


def canary_config(mock_url: str, echo_url: str) -> dict[str, Any]:
    return {
        "endpoints": [
            {"name": "mock", "base_url": mock_url, "kind": "openrouter", "api_key_env": KEY_ENV,
             "models": [{"id": TEST_MODEL, "providers": ["fast-a", "err502", "midstream"]}]},
            {"name": "echo", "base_url": echo_url, "kind": "openrouter", "api_key_env": KEY_ENV,
             "models": [{"id": "echo/http", "providers": ["careless"]},
                        {"id": "echo/stream", "providers": ["careless"]},
                        {"id": "echo/discover", "discover": True}]},
        ],
        "profiles": {"default": {"prompt": "Say something short.", "max_tokens": 16}},
        "probe": probe_settings(credits_interval_s=1),
    }


def test_canary_key_never_leaks(farm_server: MockServerThread, monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_ENV, CANARY)
    caplog.set_level(logging.DEBUG)
    pages: dict[str, str] = {}
    with EchoKeyServer() as echo:
        data = canary_config(farm_server.base_url, echo.base_url)
        data["probe"]["state_dir"] = str(tmp_path / "state")  # the history store is an output too
        config = make_config(data)

        async def scenario() -> None:
            prober = Prober(config, interval_override=0.5, listen=("127.0.0.1", 0), summary_interval_s=1.0)
            await prober.start()
            try:
                await asyncio.sleep(2.5)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{prober.http.port}") as client:  # type: ignore[union-attr]
                    for path in ("/metrics", "/", "/api/status", "/readyz", "/healthz"):
                        pages[path] = (await client.get(path)).text
            finally:
                await prober.stop()

        asyncio.run(scenario())
        seen = list(echo.seen_auth)

    # the key was really sent (so the server could echo it) ...
    assert f"Bearer {CANARY}" in seen
    # ... and the echoes were caught
    status = json.loads(pages["/api/status"])
    messages = [f["message"] for g in status["groups"] for t in g["targets"] for f in t["recent_failures"]]
    assert any("[REDACTED]" in m for m in messages)
    assert "[REDACTED]" in status["pending_discovery"][0]["error"]
    for path, body in pages.items():
        assert CANARY not in body, path
    assert CANARY not in caplog.text
    assert all(CANARY not in r.getMessage() for r in caplog.records)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir())
    assert b"[REDACTED]" in stored and CANARY.encode() not in stored
    assert any("probe failed" in r.getMessage() and "echo" in r.getMessage() for r in caplog.records)
    assert any(r.getMessage().startswith("summary:") for r in caplog.records)


def test_canary_key_not_in_once_json_nor_its_logs(farm_server: MockServerThread, tmp_path: Path) -> None:
    with EchoKeyServer() as echo:
        data = canary_config(farm_server.base_url, echo.base_url)
        path = write_yaml(tmp_path / "canary.yaml", data)
        env = {**os.environ, KEY_ENV: CANARY}
        proc = subprocess.run([sys.executable, "-m", "tokenpulse", "probe", "--config", str(path), "--once",
                               "--format", "json", "--log-level", "debug"],
                              capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr  # the echo endpoint fails on purpose
    assert CANARY not in proc.stdout and CANARY not in proc.stderr
    rows = json.loads(proc.stdout)
    by_model = {(r["endpoint"], r["model"]): r for r in rows}
    assert "[REDACTED]" in by_model[("echo", "echo/http")]["error_message"]
    assert by_model[("echo", "echo/stream")]["error_class"] == "mid_stream_error"
    assert "[REDACTED]" in by_model[("echo", "echo/stream")]["error_message"]
    assert "discovery of echo/discover on echo: HTTP 500" in proc.stderr  # logged, redacted (checked above)
