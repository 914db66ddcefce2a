"""The mock's vLLM-style /metrics: its slots, queue and token counters, read back through tokenpulse's own
vocabulary (so `load.server_metrics: auto` is tested offline against what the mock really did)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from mock_helpers import chat_body, make_farm, stream_chat

from tokenpulse.mock.metrics_page import render_metrics
from tokenpulse.mock.state import FarmState
from tokenpulse.runfolder.servermetrics import parse_scrape


def test_gauges_are_the_pools_and_counters_the_tokens_sent() -> None:
    farm = make_farm()
    state = FarmState(farm, 0.0)
    pools = list(state.pools.values())
    pools[0].active, pools[0].capacity = 3, 4
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        pools[0]._waiters.extend(loop.create_future() for _ in range(2))
        slug = next(iter(state.counters))
        state.record_tokens_sent(slug, 120)
        got = parse_scrape(render_metrics(state))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    assert got["server"] == "vllm"
    values = got["values"]
    assert values["running"] == 3 and values["waiting"] == 2 and values["generated_tokens"] == 120
    total = sum(p.capacity for p in pools)
    assert values["kv_cache_usage"] == pytest.approx(3 / total)  # one farm-wide figure: slots in use / all slots


def test_metrics_endpoint_counts_what_a_stream_sent(client: httpx.Client) -> None:
    before = parse_scrape(client.get("/metrics").content)["values"]["generated_tokens"]
    result = stream_chat(client, chat_body(max_tokens=12))
    sent = (result.usage() or {}).get("completion_tokens")
    assert sent
    after = client.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    assert parse_scrape(after.content)["values"]["generated_tokens"] - before == sent
