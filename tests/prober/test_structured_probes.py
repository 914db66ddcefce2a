"""A profile with `tools` or `response_schema`: probes carry them and every answer's verdict is counted."""

from __future__ import annotations

import asyncio
import json

from prober_support import config_data, make_config, plan_one

from tokenpulse.core.structured import BUILTIN_RESPONSE_SCHEMA, BUILTIN_TOOLS
from tokenpulse.metrics import ProberMetrics
from tokenpulse.mock import MockServerThread
from tokenpulse.prober.runner import ProbeRunner
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver

LABELS = {"endpoint": "mock", "provider": "fast-a"}


def _probe_n(server: MockServerThread, profile: dict[str, object], n: int) -> tuple[ProberMetrics, bytes]:
    data = config_data(server.base_url, ["fast-a"])
    data["profiles"]["default"].update(profile)  # type: ignore[index]
    config = make_config(data)
    metrics = ProberMetrics()
    probe = plan_one(config)

    async def scenario() -> None:
        async with AsyncStreamDriver() as driver:
            runner = ProbeRunner(driver, metrics, slo=config.slo, confirm=config.probe.confirm)
            for _ in range(n):
                result = await runner.probe(probe)
                assert result is not None and result.ok, result

    asyncio.run(scenario())
    return metrics, probe.request.body


def _count(metrics: ProberMetrics, model: str, kind: str, verdict: str) -> float:
    return metrics.registry.get_sample_value("tokenpulse_structured_answers_total", {
        **LABELS, "model": model, "kind": kind, "verdict": verdict}) or 0.0


def test_tool_and_schema_probes_are_judged(farm_server: MockServerThread) -> None:
    name, description, parameters = BUILTIN_TOOLS[0]
    tools = {"prompt": "Weather in Lisbon?", "max_tokens": 200,
             "tools": [{"name": name, "description": description, "parameters": parameters}]}
    metrics, body = _probe_n(farm_server, tools, 3)
    sent = json.loads(body)
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "required"
    model = sent["model"]
    assert _count(metrics, model, "tools", "valid") == 3

    metrics, body = _probe_n(farm_server, {"max_tokens": 200, "response_schema": BUILTIN_RESPONSE_SCHEMA}, 3)
    assert json.loads(body)["response_format"]["json_schema"]["strict"] is True
    assert _count(metrics, model, "json_schema", "valid") == 3
    # a plain profile exports no structured series at all
    metrics, _ = _probe_n(farm_server, {}, 1)
    assert not [s for f in metrics.registry.collect() if f.name == "tokenpulse_structured_answers" for s in f.samples]
