"""Provider discovery from the endpoints listing: every provider becomes a target, bad tags are
skipped, a failed discovery is reported and retried rather than fatal."""

from __future__ import annotations

import asyncio
import logging

import pytest

from monitor.mock import MockServerThread
from monitor.prober.discovery import MAX_PROVIDERS, DiscoveryError, parse_endpoints
from monitor.prober.once import probe_once
from monitor.prober.service import Prober

from prober_support import REASONING_MODEL, TEST_MODEL, make_config, probe_settings


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
