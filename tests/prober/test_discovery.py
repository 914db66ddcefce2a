"""Provider discovery from the endpoints listing: every provider becomes a target, bad tags are
skipped, a failed discovery is reported and retried rather than fatal. Discovery and credit requests
are bounded: a listing or /key that never answers, answers forever or answers too much fails within
its total timeout and its byte cap while the configured targets keep their schedule, and SIGTERM ends
a real `tokenpulse probe` during such a discovery."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile import HostileServer
from prober_support import (
    REASONING_MODEL,
    TEST_MODEL,
    make_config,
    probe_settings,
    read_listen_port,
    run_prober,
    sample,
    write_yaml,
)

from tokenpulse.config import Endpoint
from tokenpulse.metrics import ProberMetrics
from tokenpulse.mock import MockServerThread
from tokenpulse.prober import credits, discovery
from tokenpulse.prober.credits import CreditsPoller
from tokenpulse.prober.discovery import MAX_PROVIDERS, DiscoveryError, discover_listing, parse_endpoints
from tokenpulse.prober.once import probe_once
from tokenpulse.prober.service import Prober
from tokenpulse.transports.asyncio_loop.driver import new_async_client

#: Short total timeouts for the bounded-request tests (the defaults are 15 s).
SHORT_TIMEOUT_S = 1.0
INTERVAL = 0.5


def discover_config(base_url: str, *models: str) -> dict[str, object]:
    return {
        "endpoints": [{"name": "mock", "base_url": base_url,
                       "models": [{"id": m, "discover": True} for m in models]}],
        "profiles": {"default": {"prompt": "Hi.", "max_tokens": 8}},
        "probe": probe_settings(),
    }


def test_parse_endpoints_validates_tags(caplog: pytest.LogCaptureFixture) -> None:
    listing = {"data": {"endpoints": [{"tag": "deepinfra/fp8"}, {"tag": "bad tag"}, {"tag": "nebius"},
                                      {"tag": "nebius"}, {"no": "tag"}]}}
    assert parse_endpoints(listing, where="w") == ["deepinfra/fp8", "nebius"]
    assert "unusable tag" in caplog.text
    many = {"data": {"endpoints": [{"tag": f"p{i}"} for i in range(MAX_PROVIDERS + 10)]}}
    assert len(parse_endpoints(many, where="w")) == MAX_PROVIDERS
    for broken in ({}, {"data": {"endpoints": "x"}}, {"data": {"endpoints": []}}, []):
        with pytest.raises(DiscoveryError):
            parse_endpoints(broken, where="w")


def test_discovered_providers_are_probed(farm_server: MockServerThread) -> None:
    config = make_config(discover_config(farm_server.base_url, REASONING_MODEL))
    report = asyncio.run(probe_once(config))
    assert [(r.probe.model, r.probe.provider) for r in report.rows] == [(REASONING_MODEL, "thinker")]
    assert report.ok


def test_failed_discovery_is_pending_not_fatal(farm_server: MockServerThread,
                                               caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(discover_config(farm_server.base_url, TEST_MODEL, "nobody/unknown-model"))
    status: dict[str, object] = {}

    async def scenario() -> None:
        prober = Prober(config, interval_override=30, listen=None)
        await prober.start()
        try:
            await asyncio.wait_for(prober.discovery_tried.wait(), 20)  # discovery runs beside the probes
            status.update(prober.status())
        finally:
            await prober.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    groups = status["groups"]
    assert isinstance(groups, list) and len(groups) == 1
    providers = [t["provider"] for t in groups[0]["targets"]]
    assert providers == list(farm_server.farm.models[TEST_MODEL].providers)
    (pending,) = status["pending_discovery"]  # type: ignore[misc]
    assert pending["model"] == "nobody/unknown-model" and "HTTP 404" in pending["error"]
    assert "discovery of nobody/unknown-model on mock: HTTP 404" in caplog.text


@pytest.fixture(scope="module")
def hostile() -> Any:
    with HostileServer() as server:
        yield server


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "TIMEOUT_S", SHORT_TIMEOUT_S)
    monkeypatch.setattr(credits, "TIMEOUT_S", SHORT_TIMEOUT_S)


def hostile_endpoint(server: HostileServer, behaviour: str) -> Endpoint:
    return Endpoint(name=behaviour, base_url=server.url(behaviour) + "/api/v1",
                    models=[{"id": "hung/listing", "discover": True}])


@pytest.mark.parametrize("behaviour, error", [("silent", "no complete response within 1 s"),
                                               ("trickle", "no complete response within 1 s"),
                                               ("flood", "response body exceeds the 2097152-byte limit")])
def test_discovery_and_credits_requests_are_bounded(hostile: HostileServer, short_timeouts: None,
                                                    behaviour: str, error: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Each request ends with a clear error well inside the test's own bound, whatever the server does;
    the flood is cut at the byte cap (the server would send for ever)."""
    endpoint = hostile_endpoint(hostile, behaviour)
    metrics = ProberMetrics()

    async def scenario() -> str:
        async with new_async_client() as client:  # the prober's own client (LeanTransport)
            with pytest.raises(DiscoveryError) as failed:
                await asyncio.wait_for(discover_listing(client, endpoint, "hung/listing", api_key="sk-x"), 10)
            await asyncio.wait_for(CreditsPoller(client, metrics, endpoint, "sk-x").poll(), 10)
        return str(failed.value)

    with caplog.at_level(logging.WARNING):
        message = asyncio.run(scenario())
    assert message == f"discovery of hung/listing on {behaviour}: {error}"
    credit_error = error.replace("2097152", str(credits.MAX_BODY_BYTES))
    assert f"credits of endpoint {behaviour}: {credit_error}" in caplog.text
    assert metrics.registry.get_sample_value("tokenpulse_openrouter_credits_usage_usd",
                                             {"endpoint": behaviour}) is None
    assert "sk-x" not in caplog.text


@pytest.mark.parametrize("behaviour", ["silent", "trickle"])
def test_explicit_targets_keep_their_schedule_while_discovery_and_credits_hang(
        farm_server: MockServerThread, hostile: HostileServer, short_timeouts: None, behaviour: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The configured target is probed on every slot from the start; the hung listing's discovery is
    retried later, pending (with its error) on /api/status, and logged; /key fails the same way."""
    data = {
        "endpoints": [
            {"name": "mock", "base_url": farm_server.base_url, "kind": "openrouter",
             "models": [{"id": TEST_MODEL, "providers": ["fast-a"]}]},
            {"name": "broken", "base_url": hostile.url(behaviour) + "/api/v1", "kind": "openrouter",
             "models": [{"id": "hung/listing", "discover": True}]},
        ],
        "profiles": {"default": {"prompt": "Say something short.", "max_tokens": 16}},
        "probe": probe_settings(credits_interval_s=60),
    }
    config = make_config(data)
    seen: dict[str, Any] = {}

    async def during(prober: Prober) -> None:
        seen["status"] = prober.status()
        seen["ready"] = prober.ready

    with caplog.at_level(logging.WARNING):
        prober, elapsed = asyncio.run(run_prober(config, 3.0, interval=INTERVAL, during=during))
    (target,) = prober.runner.tracked.values()
    assert abs(target.history.probes - elapsed / INTERVAL) <= 1, (target.history.probes, elapsed)
    assert sample(prober, "tokenpulse_requests_total", endpoint="mock", model=TEST_MODEL, provider="fast-a",
                  outcome="ok", error_class="none") == target.history.probes
    (pending,) = seen["status"]["pending_discovery"]
    assert pending["model"] == "hung/listing"
    assert pending["error"] == "discovery of hung/listing on broken: no complete response within 1 s"
    assert seen["ready"]  # the one discovery was tried (and failed): readiness does not wait for it
    assert "discovery of hung/listing on broken: no complete response within 1 s (retrying in 60 s)" \
        in caplog.text
    assert "credits of endpoint broken: no complete response within 1 s" in caplog.text
    assert hostile.requests(behaviour) >= 2  # the listing and /key both reached the server


def test_sigterm_ends_the_prober_during_a_hung_discovery(farm_server: MockServerThread, hostile: HostileServer,
                                                         tmp_path: Path) -> None:
    """`tokenpulse probe` with its default 15 s discovery timeout, a listing that never answers, and one
    configured target: the target is probed, and SIGTERM ends the process with exit code 0 while the
    listing request is still open (before, `start()` awaited the discovery: it never returned)."""
    before = hostile.requests("silent")
    config = write_yaml(tmp_path / "probe.yaml", {
        "endpoints": [
            {"name": "mock", "base_url": farm_server.base_url, "kind": "openrouter",
             "models": [{"id": TEST_MODEL, "providers": ["fast-a"]}]},
            {"name": "hung", "base_url": hostile.url("silent") + "/api/v1", "kind": "openrouter",
             "models": [{"id": "hung/listing", "discover": True}]},
        ],
        "profiles": {"default": {"prompt": "Say something short.", "max_tokens": 16}},
        "probe": probe_settings(interval_s=0.5),
    })
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                      os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "probe", "--config", str(config),
                             "--listen", "127.0.0.1:0", "--log-level", "info"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = read_listen_port(proc)
        assert hostile.wait_for("silent", before + 1), "the discovery request never reached the listing"
        probed = False
        end = time.monotonic() + 20
        while time.monotonic() < end and not probed:
            status = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
            probed = any(t["provider"] == "fast-a" and t.get("last_probe_at") for g in status["groups"]
                         for t in g["targets"])
            time.sleep(0.1)
        assert probed, "the configured target was not probed during the hung discovery"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        took = time.monotonic() - sent
        print(f"SIGTERM -> exit in {took:.2f} s")
        assert code == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_once_reports_a_hung_discovery_and_probes_the_rest(farm_server: MockServerThread, hostile: HostileServer,
                                                           short_timeouts: None) -> None:
    data = {
        "endpoints": [
            {"name": "mock", "base_url": farm_server.base_url, "kind": "openrouter",
             "models": [{"id": TEST_MODEL, "providers": ["fast-a"]}]},
            {"name": "broken", "base_url": hostile.url("trickle") + "/api/v1", "kind": "openrouter",
             "models": [{"id": "hung/listing", "discover": True}]},
        ],
        "profiles": {"default": {"prompt": "Say something short.", "max_tokens": 16}},
        "probe": probe_settings(),
    }
    report = asyncio.run(asyncio.wait_for(probe_once(make_config(data)), 20))
    assert [(r.probe.provider, r.result.ok) for r in report.rows] == [("fast-a", True)]
    assert report.discovery_errors == ["discovery of hung/listing on broken: no complete response within 1 s"]
    assert not report.ok


def _renamed_farm() -> dict[str, Any]:
    """A provider whose display name neither equals nor contains its slug (`zeta` is "Acme Inference"):
    only the listing's `provider_name` tells the prober that its streams come from the pinned provider."""
    from prober_support import FAST, farm_data

    data = farm_data()
    data["models"][REASONING_MODEL]["providers"] = {"zeta": {"name": "Acme Inference", "profile": dict(FAST)}}
    return data


def test_a_discovered_provider_is_judged_by_the_listings_name() -> None:
    from prober_support import make_farm

    from tokenpulse.core.outcomes import ErrorClass
    from tokenpulse.core.request import ChatRequest, prepare
    from tokenpulse.core.served import ProviderPin

    # Without the listing's name the slug rule would call every answer another provider's.
    pin = prepare("http://127.0.0.1:1/api/v1", ChatRequest(model="m", messages=[], provider="zeta")).pin
    assert pin == ProviderPin("zeta")
    with MockServerThread(make_farm(_renamed_farm())) as server:
        config = make_config(discover_config(server.base_url, REASONING_MODEL))
        report = asyncio.run(probe_once(config))  # `tokenpulse probe --once`
        (row,) = report.rows
        assert row.probe.provider == "zeta" and row.probe.request.pin == ProviderPin("zeta", ("Acme Inference",))
        assert row.result is not None and row.result.ok, (row.result and row.result.error_class)

        async def scheduled() -> Prober:  # the scheduled prober's discovery gives its probes the name too
            prober, _ = await run_prober(config, 2.0, interval=INTERVAL)
            return prober

        prober = asyncio.run(scheduled())
        labels = {"endpoint": "mock", "model": REASONING_MODEL, "provider": "zeta"}
        assert sample(prober, "tokenpulse_requests_total", **labels, outcome="ok", error_class="none") >= 1
        assert sample(prober, "tokenpulse_requests_total", **labels, outcome="error",
                      error_class=ErrorClass.WRONG_PROVIDER.value) == 0
