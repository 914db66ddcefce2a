"""The prober's /generation lookups against the mock: histograms of OpenRouter's latency and generation
time per target, the native-token ratio, the lookup results, and billed failed probes in the spend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prober_support import config_data as base_config
from prober_support import farm_data, make_config, make_farm, run_prober, sample

from tokenpulse.mock import MockServerThread
from tokenpulse.prober.service import Prober


@pytest.fixture(scope="module")
def quick_server() -> Iterator[MockServerThread]:
    """The prober test farm, its generations readable 0.2 s after they end."""
    data = farm_data()
    data["generation_ready_s"] = [0.2, 0.2]
    with MockServerThread(make_farm(data)) as server:
        yield server


async def _until_looked_up(prober: Prober) -> None:
    """Until a generation of each provider was found (bounded: a lookup takes ~0.5 s, the first ask)."""
    for _ in range(200):
        if all(sample(prober, "tokenpulse_openrouter_generation_lookups_total", endpoint="mock", model="test/chat",
                      provider=p, status="found") for p in ("fast-a", "midstream")):
            return
        await asyncio.sleep(0.05)


def test_prober_records_what_openrouter_measured(quick_server: MockServerThread) -> None:
    data = base_config(quick_server.base_url, ["fast-a", "midstream"], interval_s=0.5)
    data["probe"]["generations"] = {"max_rate_per_s": 50}
    prober, _ = asyncio.run(run_prober(make_config(data), 1.2, during=_until_looked_up))
    fast = {"endpoint": "mock", "model": "test/chat", "provider": "fast-a"}
    mid = {**fast, "provider": "midstream"}
    found = sample(prober, "tokenpulse_openrouter_generation_lookups_total", **fast, status="found")
    probes = sample(prober, "tokenpulse_requests_total", **fast, outcome="ok", error_class="none")
    assert found >= 1 and found <= probes
    assert sample(prober, "tokenpulse_openrouter_generation_latency_seconds_count", **fast) == found
    assert sample(prober, "tokenpulse_openrouter_generation_time_seconds_count", **fast) == found
    # the mock's native and normalized counts agree: every ratio falls in the 1.0 bucket
    assert sample(prober, "tokenpulse_openrouter_native_token_factor_bucket", **fast, le="1.0") == found
    assert sample(prober, "tokenpulse_openrouter_native_token_factor_bucket", **fast, le="0.98") == 0
    # TTFT on loopback vs OpenRouter's latency: the sums differ by the network only (well under 50 ms each)
    ttft_sum = sample(prober, "tokenpulse_ttft_seconds_sum", **fast)
    ttft_n = sample(prober, "tokenpulse_ttft_seconds_count", **fast)
    or_sum = sample(prober, "tokenpulse_openrouter_generation_latency_seconds_sum", **fast)
    assert abs(ttft_sum / ttft_n - or_sum / found) < 0.05
    # mid-stream failures carry no usage.cost; their billed cost arrives through /generation
    assert sample(prober, "tokenpulse_requests_total", **mid, outcome="error", error_class="mid_stream_error") >= 1
    assert sample(prober, "tokenpulse_openrouter_generation_lookups_total", **mid, status="found") >= 1
    assert sample(prober, "tokenpulse_cost_usd_total", **mid) > 0


def test_lookups_off(quick_server: MockServerThread) -> None:
    data = base_config(quick_server.base_url, ["fast-a"], interval_s=0.5)
    data["probe"]["generations"] = {"max_rate_per_s": 0}
    prober, _ = asyncio.run(run_prober(make_config(data), 0.6))
    fast = {"endpoint": "mock", "model": "test/chat", "provider": "fast-a"}
    assert sample(prober, "tokenpulse_requests_total", **fast, outcome="ok", error_class="none") >= 1
    assert sample(prober, "tokenpulse_openrouter_generation_lookups_total", **fast, status="found") == 0
