"""A blind prober is loud: caller-side errors in a row (402 no credits, 401 revoked key, 429) make a
target `blind` on /metrics, /api/status, the page and /readyz; the prober's own bugs are its own
errors, never a provider's protocol_error."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prober_support import config_data, make_config, plan_one, sample

from tokenpulse.core.request import PreparedRequest, Timeouts
from tokenpulse.metrics import ProberMetrics
from tokenpulse.mock import MockServerThread
from tokenpulse.prober.runner import ProbeRunner
from tokenpulse.prober.service import Prober
from tokenpulse.prober.status_page import render_status_page

LABELS = {"endpoint": "mock", "model": "test/chat"}


def _outage(server: MockServerThread, provider: str, active: bool, status: int = 402) -> None:
    response = httpx.post(f"{server.base_url.removesuffix('/api/v1')}/_mock/outage",
                          json={"provider": provider, "active": active, "status": status}, timeout=5)
    assert response.status_code == 200, response.text


def test_a_402_phase_makes_every_target_blind_and_readyz_says_so(farm_server: MockServerThread) -> None:
    config = make_config(config_data(farm_server.base_url, ["fast-a", "fast-b"]))
    seen: dict[str, Any] = {}

    async def scenario() -> Prober:
        prober = Prober(config, interval_override=0.3, listen=("127.0.0.1", 0))
        await prober.start()
        assert prober.http is not None
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{prober.http.port}", timeout=5) as client:
                await asyncio.sleep(1.0)
                seen["before"] = (await client.get("/readyz")).text
                for provider in ("fast-a", "fast-b"):
                    _outage(farm_server, provider, True, 402)
                await asyncio.sleep(1.5)
                seen["readyz"] = await client.get("/readyz")
                seen["status"] = (await client.get("/api/status")).json()
                seen["page"] = (await client.get("/")).text
                seen["metrics"] = (await client.get("/metrics")).text
                _outage(farm_server, "fast-a", False)
                await asyncio.sleep(1.0)
                seen["after"] = (await client.get("/api/status")).json()
        finally:
            for provider in ("fast-a", "fast-b"):
                _outage(farm_server, provider, False)
            await prober.stop()
        return prober

    prober = asyncio.run(scenario())
    assert seen["before"] == "ready\n"
    assert seen["readyz"].status_code == 200
    assert "blind: endpoint mock: every target is blind (no_credits)" in seen["readyz"].text
    targets = {t["provider"]: t for t in seen["status"]["groups"][0]["targets"]}
    assert {t["state"] for t in targets.values()} == {"blind"}
    assert {t["blind_reason"] for t in targets.values()} == {"no_credits"}
    assert seen["status"]["banner"]["level"] == "blind"
    ongoing = [i for i in seen["status"]["incidents"] if i["ongoing"]]
    assert {(i["provider"], i["state"], i["reason"]) for i in ongoing} == {("fast-a", "blind", "no_credits"),
                                                                             ("fast-b", "blind", "no_credits")}
    assert 'class="badge blind"' in seen["page"] and 'class="banner blind"' in seen["page"]
    assert ('tokenpulse_target_blind{endpoint="mock",model="test/chat",provider="fast-a",reason="no_credits"} 1.0'
            in seen["metrics"])
    assert 'tokenpulse_target_state{endpoint="mock",model="test/chat",provider="fast-b",state="blind"} 1.0' \
        in seen["metrics"]
    # caller-side errors never lower availability, and the target is not down
    assert sample(prober, "tokenpulse_target_up", **LABELS, provider="fast-a") == 1
    assert targets["fast-a"]["uptime_1h"] == 1.0
    # one success ends blindness
    after = {t["provider"]: t for t in seen["after"]["groups"][0]["targets"]}
    assert after["fast-a"]["state"] == "up" and after["fast-b"]["state"] == "blind"
    assert sample(prober, "tokenpulse_target_blind", **LABELS, provider="fast-a", reason="no_credits") == 0
    page = render_status_page(seen["after"])
    assert "fast-a was blind (no_credits)" in page and "fast-b blind (no_credits) since" in page


class _BrokenDriver:
    """A driver with a bug: it raises something that is not a transport error."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, request: PreparedRequest, timeouts: Timeouts, *, keep_text: bool = False) -> Any:
        self.calls += 1
        raise KeyError("a bug in our own code")


def test_prober_bugs_are_its_own_errors_not_the_providers(farm_server: MockServerThread) -> None:
    config = make_config(config_data(farm_server.base_url, ["fast-a"]))
    metrics = ProberMetrics()
    driver = _BrokenDriver()
    runner = ProbeRunner(driver, metrics, slo=config.slo, confirm=config.probe.confirm)  # type: ignore[arg-type]
    probe = plan_one(config)

    async def scenario() -> list[Any]:
        return [await runner.probe(probe) for _ in range(4)]

    results = asyncio.run(scenario())
    assert results == [None] * 4 and driver.calls == 4
    labels = {**LABELS, "provider": "fast-a"}
    assert metrics.registry.get_sample_value("tokenpulse_prober_errors_total", labels) == 4
    assert metrics.registry.get_sample_value("tokenpulse_requests_total", {
        **labels, "outcome": "error", "error_class": "protocol_error"}) == 0
    tracked = runner.tracked[probe.key]
    assert tracked.state.state == "unknown" and tracked.history.probes == 0
