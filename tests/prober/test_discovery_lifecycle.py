"""Discovery follows the listing: providers that leave it are retired after the grace (every series of
theirs removed), the number probed is capped across refreshes, a failing discovery shows as a metric,
and OpenRouter's own figures of a provider are exported beside ours (units converted, labels bounded)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from prober_support import TEST_MODEL, make_config, probe_settings

from tokenpulse.metrics import ProberMetrics
from tokenpulse.mock import MockServerThread
from tokenpulse.prober.credits import CreditsPoller
from tokenpulse.prober.discovery import parse_listing
from tokenpulse.prober.service import Prober
from tokenpulse.transports.asyncio_loop.driver import new_async_client

LABELS = {"endpoint": "mock", "model": TEST_MODEL}


def _listed(server: MockServerThread, provider: str, listed: bool) -> None:
    response = httpx.post(f"{server.base_url.removesuffix('/api/v1')}/_mock/listing",
                          json={"provider": provider, "listed": listed}, timeout=5)
    assert response.status_code == 200, response.text


@pytest.fixture
def relisted(farm_server: MockServerThread) -> Iterator[MockServerThread]:
    yield farm_server
    for provider in ("fast-a", "fast-b", "fast-c"):
        _listed(farm_server, provider, True)


def _config(base_url: str, **probe: object) -> object:
    return make_config({
        "endpoints": [{"name": "mock", "base_url": base_url, "models": [{"id": TEST_MODEL, "discover": True}]}],
        "profiles": {"default": {"prompt": "Hi.", "max_tokens": 8}},
        "probe": probe_settings(**probe),
    })


def _series_of(prober: Prober, provider: str) -> list[str]:
    text = prober._exposition.render().decode()
    return [line for line in text.splitlines() if f'provider="{provider}"' in line]


def test_providers_leaving_the_listing_are_retired_and_the_cap_holds(relisted: MockServerThread) -> None:
    config = _config(relisted.base_url, discovery_max_targets=2, retire_after_s=0)

    async def scenario() -> dict[str, object]:
        prober = Prober(config, listen=None)  # type: ignore[arg-type]
        out: dict[str, object] = {}
        await prober.start()
        try:
            await prober.discovery_tried.wait()
            await asyncio.sleep(1.2)
            out["first"] = sorted(prober.scheduler.probes)
            out["count_first"] = prober.metrics.registry.get_sample_value("tokenpulse_discovered_targets", LABELS)
            out["fast_a_before"] = len(_series_of(prober, "fast-a"))
            _listed(relisted, "fast-a", False)
            for d in prober._discovered:
                d.due_at = 0.0
            await prober._refresh_discovery()
            out["second"] = sorted(prober.scheduler.probes)
            out["fast_a_after"] = _series_of(prober, "fast-a")
            out["tracked"] = sorted(prober.runner.tracked)
            get = prober.metrics.registry.get_sample_value
            fast_b = {**LABELS, "provider": "fast-b"}
            out["listing"] = (get("tokenpulse_openrouter_uptime_ratio", {**fast_b, "window": "30m"}),
                              get("tokenpulse_openrouter_quantization_info", {**fast_b, "quantization": "fp8"}),
                              get("tokenpulse_openrouter_price_usd_per_token", {**fast_b, "kind": "prompt"}),
                              get("tokenpulse_openrouter_uptime_ratio", {**LABELS, "provider": "fast-a",
                                                                          "window": "30m"}))
            out["success"] = prober.metrics.registry.get_sample_value("tokenpulse_discovery_success", LABELS)
            # a failing listing is visible, and keeps probing what it has
            prober._discovered[0].endpoint = prober._discovered[0].endpoint.model_copy(
                update={"base_url": relisted.base_url + "/nowhere"})
            prober._discovered[0].due_at = 0.0
            await prober._refresh_discovery()
            out["failed"] = prober.metrics.registry.get_sample_value("tokenpulse_discovery_success", LABELS)
            out["status"] = prober.status()
            out["third"] = sorted(prober.scheduler.probes)
        finally:
            await prober.stop()
        return out

    out = asyncio.run(scenario())
    key = f"mock/{TEST_MODEL}/{{}}/default"
    assert out["first"] == [key.format("fast-a"), key.format("fast-b")]  # capped at 2 of 13 listed
    assert out["count_first"] == 2 and out["fast_a_before"] > 50
    # fast-a left the listing: retired at once (grace 0); fast-c takes the free place
    assert out["second"] == [key.format("fast-b"), key.format("fast-c")]
    assert out["fast_a_after"] == [] and key.format("fast-a") not in out["tracked"]
    assert out["success"] == 1 and out["failed"] == 0
    uptime, quantization, price, retired_uptime = out["listing"]  # type: ignore[misc]
    assert uptime is not None and 0 <= uptime <= 1 and quantization == 1
    assert price == pytest.approx(0.1e-6)  # the test model's 0.1 USD per M prompt tokens
    assert retired_uptime is None
    assert out["third"] == out["second"]
    status = out["status"]
    assert isinstance(status, dict) and status["failed_discovery"][0]["model"] == TEST_MODEL


def test_a_grace_period_keeps_a_provider_that_leaves_the_listing(relisted: MockServerThread) -> None:
    config = _config(relisted.base_url, discovery_max_targets=1, retire_after_s=3600)

    async def scenario() -> list[str]:
        prober = Prober(config, listen=None)  # type: ignore[arg-type]
        await prober.start()
        try:
            await prober.discovery_tried.wait()
            _listed(relisted, "fast-a", False)
            prober._discovered[0].due_at = 0.0
            await prober._refresh_discovery()
            return sorted(prober.scheduler.probes)
        finally:
            await prober.stop()

    assert asyncio.run(scenario()) == [f"mock/{TEST_MODEL}/fast-a/default"]  # within the grace, and capped


def test_listing_figures_are_converted_and_bounded() -> None:
    listing = {"data": {"endpoints": [
        {"tag": "deepinfra/fp8", "quantization": "fp8", "pricing": {"prompt": "0.00000009", "completion": "0.00000045"},
         "uptime_last_5m": 100, "uptime_last_30m": 99.5, "uptime_last_1d": None,
         "latency_last_30m": {"p50": 250.0, "p75": 350.0, "p90": 480.0, "p99": 850.0},
         "throughput_last_30m": {"p50": 45.2, "p75": 38.5, "p90": 28.3, "p99": 15.1}},
        {"tag": "nebius", "quantization": "q5_k_m_weird", "latency_last_30m": None, "uptime_last_30m": "n/a"},
    ]}}
    first, second = parse_listing(listing, where="w")
    assert first.uptime == {"5m": 1.0, "30m": 0.995}
    assert first.latency_s == {"0.5": 0.25, "0.75": 0.35, "0.9": 0.48, "0.99": 0.85}  # ms -> s
    assert first.throughput["0.5"] == 45.2 and first.quantization == "fp8"
    assert first.price_prompt == pytest.approx(9e-8) and first.price_completion == pytest.approx(4.5e-7)
    assert second.quantization == "other" and second.uptime == {} and second.latency_s == {}


def test_credits_read_failure_is_visible_and_no_stale_value_remains() -> None:
    metrics = ProberMetrics()
    endpoint = make_config({"endpoints": [{"name": "or", "base_url": "http://127.0.0.1:9/api/v1",
                                           "models": [{"id": "m"}]}]}).endpoints[0]
    poller = CreditsPoller(None, metrics, endpoint, None)  # type: ignore[arg-type]
    get = metrics.registry.get_sample_value
    assert poller.apply({"limit": 10.0, "usage": 2.5, "limit_remaining": 7.5})
    assert (get("tokenpulse_openrouter_credits_remaining_usd", {"endpoint": "or"}),
            get("tokenpulse_openrouter_credits_limit_usd", {"endpoint": "or"}),
            get("tokenpulse_openrouter_credits_read_success", {"endpoint": "or"})) == (7.5, 10.0, 1.0)
    assert poller.apply({"limit": None, "usage": 3.0})  # a key without a limit still reports usage
    assert get("tokenpulse_openrouter_credits_usage_usd", {"endpoint": "or"}) == 3.0
    assert get("tokenpulse_openrouter_credits_remaining_usd", {"endpoint": "or"}) is None
    assert get("tokenpulse_openrouter_credits_limit_usd", {"endpoint": "or"}) is None

    async def failed_read() -> None:
        client = new_async_client(max_connections=2)
        try:
            await CreditsPoller(client, metrics, endpoint, None).poll()  # nothing listens on port 9
        finally:
            await client.aclose()

    asyncio.run(failed_read())
    assert get("tokenpulse_openrouter_credits_read_success", {"endpoint": "or"}) == 0
    assert get("tokenpulse_openrouter_credits_usage_usd", {"endpoint": "or"}) is None
