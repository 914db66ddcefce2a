"""The prober's HTTP endpoints: /metrics parses and holds only config and enum label values, /healthz,
/readyz before and after the first round, the status JSON, and the small server's error paths."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prober_support import config_data, make_config, sample
from prometheus_client.parser import text_string_to_metric_families

from tokenpulse.core.outcomes import ALL_ERROR_CLASSES, ALL_ERROR_ORIGINS, Outcome
from tokenpulse.metrics import BLIND_REASONS, NO_ERROR, TARGET_STATES
from tokenpulse.mock import MockServerThread
from tokenpulse.prober.http import HttpServer, Response
from tokenpulse.prober.service import Prober

PROVIDERS = ["fast-a", "fast-b", "err502", "ratelimit"]
#: Label names the prober may export, and where each one's values come from.
ALLOWED_LABELS = {"endpoint", "model", "provider", "outcome", "error_class", "state", "le", "version", "phase",
                  "reason", "origin", "kind", "verdict", "status"}


def config_for(server: MockServerThread) -> dict[str, Any]:
    data = config_data(server.base_url, PROVIDERS)
    data["probe"]["credits_interval_s"] = 60
    return data


def test_endpoints_and_metrics(farm_server: MockServerThread) -> None:
    config = make_config(config_for(farm_server))
    seen: dict[str, Any] = {}

    async def scenario() -> Prober:
        prober = Prober(config, interval_override=0.5, listen=("127.0.0.1", 0))
        await prober.start()
        base = f"http://127.0.0.1:{prober.http.port}"  # type: ignore[union-attr]
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                seen["ready_at_start"] = (await client.get("/readyz")).status_code
                await asyncio.sleep(2.0)
                for path in ("/metrics", "/healthz", "/readyz", "/api/status", "/", "/nope"):
                    seen[path] = await client.get(path)
                seen["head"] = await client.head("/metrics")
                seen["post"] = await client.post("/metrics")
                seen["query"] = await client.get("/healthz?verbose=1")
        finally:
            await prober.stop()
        return prober

    prober = asyncio.run(scenario())
    assert seen["ready_at_start"] == 503
    assert seen["/readyz"].status_code == 200
    assert seen["/healthz"].status_code == 200 and seen["query"].status_code == 200
    assert seen["/nope"].status_code == 404
    assert seen["post"].status_code == 405
    assert seen["head"].status_code == 200 and seen["head"].content == b""

    metrics = seen["/metrics"]
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(metrics.text))
    names = {f.name for f in families}
    for expected in ("tokenpulse_requests", "tokenpulse_ttft_seconds", "tokenpulse_target_state",
                     "tokenpulse_scheduler_lag_seconds", "tokenpulse_probes_in_flight",
                     "tokenpulse_probe_misfires", "tokenpulse_openrouter_credits_remaining_usd"):
        assert expected in names, expected
    allowed_values = {
        "endpoint": {"mock"}, "model": {"test/chat"}, "provider": set(PROVIDERS),
        "outcome": {o.value for o in Outcome}, "error_class": {NO_ERROR, *ALL_ERROR_CLASSES},
        "state": set(TARGET_STATES), "reason": set(BLIND_REASONS), "origin": set(ALL_ERROR_ORIGINS),
    }
    for family in families:
        assert family.name.startswith("tokenpulse_"), family.name
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
            for name, value in s.labels.items():
                if name in allowed_values:
                    assert value in allowed_values[name], (s.name, name, value)
    # the figures behind the text agree with the registry
    labels = {"endpoint": "mock", "model": "test/chat"}
    assert sample(prober, "tokenpulse_requests_total", **labels, provider="err502", outcome="error",
                  error_class="server_error") >= 2
    assert sample(prober, "tokenpulse_target_state", **labels, provider="err502", state="down") == 1
    assert sample(prober, "tokenpulse_target_up", **labels, provider="err502") == 0
    # every probe of it is a 429: the prober cannot measure it (blind), and it is not down
    assert sample(prober, "tokenpulse_target_state", **labels, provider="ratelimit", state="blind") == 1
    assert sample(prober, "tokenpulse_target_blind", **labels, provider="ratelimit", reason="rate_limited") == 1
    assert sample(prober, "tokenpulse_target_blind", **labels, provider="ratelimit", reason="no_credits") == 0
    assert sample(prober, "tokenpulse_target_blind", **labels, provider="fast-a", reason="rate_limited") == 0
    assert sample(prober, "tokenpulse_target_up", **labels, provider="ratelimit") == 1
    assert sample(prober, "tokenpulse_prober_errors_total", **labels, provider="fast-a") == 0
    assert sample(prober, "tokenpulse_target_state", **labels, provider="fast-a", state="up") == 1
    remaining = prober.metrics.registry.get_sample_value("tokenpulse_openrouter_credits_remaining_usd",
                                                         {"endpoint": "mock"})
    assert remaining is not None and 0 < remaining <= 100

    status = seen["/api/status"].json()
    assert status["ready"] is True
    (group,) = status["groups"]
    assert [t["provider"] for t in group["targets"]] == PROVIDERS
    by_provider = {t["provider"]: t for t in group["targets"]}
    assert by_provider["err502"]["state"] == "down" and by_provider["err502"]["uptime_1h"] == 0.0
    assert by_provider["ratelimit"]["uptime_1h"] is None  # caller-side errors do not count
    assert by_provider["ratelimit"]["recent_failures"][0]["error_class"] == "rate_limited"
    assert by_provider["fast-a"]["uptime_1h"] == 1.0 and by_provider["fast-a"]["median_ttft_s"] > 0
    assert seen["/"].headers["content-type"].startswith("text/html")


def test_outage_confirms_down_then_recovery_confirms_up(farm_server: MockServerThread) -> None:
    """failures_before_down = successes_before_up = 2 (prober_support.probe_settings)."""
    config = make_config(config_data(farm_server.base_url, ["fast-b"]))
    states: list[str] = []

    async def scenario() -> None:
        prober = Prober(config, interval_override=0.3, listen=None)
        await prober.start()
        (tracked,) = prober.runner.tracked.values()

        async def until(state: str) -> None:
            while tracked.state.state != state:
                await asyncio.sleep(0.05)
            states.append(state)

        try:
            await asyncio.wait_for(until("up"), 20)
            farm_server.set_outage("fast-b", True, status=502)
            await asyncio.wait_for(until("degraded"), 20)
            await asyncio.wait_for(until("down"), 20)
            farm_server.set_outage("fast-b", False)
            await asyncio.wait_for(until("up"), 20)
            labels = {"endpoint": "mock", "model": "test/chat", "provider": "fast-b"}
            states.append(f"failures={sample(prober, 'tokenpulse_consecutive_failures', **labels):.0f}")
        finally:
            farm_server.set_outage("fast-b", False)
            await prober.stop()

    asyncio.run(scenario())
    assert states == ["up", "degraded", "down", "up", "failures=0"]


def test_stop_drops_a_slow_client_instead_of_waiting_for_it() -> None:
    """A client that sends half a request head would hold its connection for the 10 s read timeout;
    `close()` drops it, so the prober's shutdown never waits on a scraper."""

    async def scenario() -> bytes:
        server = HttpServer({"/healthz": _ok}, "127.0.0.1", 0)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x")  # never finished
        await writer.drain()
        await asyncio.sleep(0.05)  # let the server start reading it
        await asyncio.wait_for(server.close(), 5)
        try:
            return await asyncio.wait_for(reader.read(), 5)  # EOF at once, not after the read timeout
        except ConnectionResetError:
            return b""
        finally:
            writer.close()

    assert asyncio.run(scenario()) == b""


async def _ok() -> Response:
    return Response(200, b"ok\n")
