"""Every error class of DESIGN.md §4 reaches its own label, from faults forced on loopback servers;
and the flaky provider's counters match its injected fault rate."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from fakes import EchoKeyServer, FullBacklog
from prober_support import FAST, REASONING_MODEL, TEST_MODEL, closed_port, make_config, make_farm, probe_settings

from tokenpulse.core.outcomes import ALL_ERROR_CLASSES, ErrorClass
from tokenpulse.metrics import NO_ERROR, ProberMetrics
from tokenpulse.mock import MockServerProcess, MockServerThread, default_farm, dump_farm
from tokenpulse.mock.farm import PRE_STREAM_FAULTS
from tokenpulse.prober.once import probe_once
from tokenpulse.prober.runner import ProbeRunner
from tokenpulse.prober.targets import key_ring, plan
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver, new_async_client

#: (endpoint, provider) -> the class its probe must be labelled with.
EXPECTED: dict[tuple[str, str], str] = {
    ("mock", "fast-a"): "ok",
    ("mock", "ratelimit"): "rate_limited",
    ("mock", "err500"): "server_error",
    ("mock", "err502"): "server_error",
    ("mock", "err503"): "server_error",
    ("mock", "midstream"): "mid_stream_error",
    ("mock", "reset"): "connect_error",  # the mock resets the connection inside the body
    ("mock", "malformed"): "protocol_error",
    ("mock", "hang"): "timeout_ttft",
    ("mock", "hangmid"): "timeout_idle",
    ("mock", "misrouted"): "wrong_provider",  # the router served it with fast-a
    ("mock-short", "slow"): "timeout_total",
    ("mock-thinking", "thinker"): "empty_response",  # every token is excluded reasoning
    ("mock-badkey", "fast-a"): "client_error",  # 401 for a key the mock refuses
    ("closed", "fast-a"): "connect_error",
    ("careless", "early-close"): "truncated",  # clean close after one token, without [DONE]
    ("backlog", "fast-a"): "timeout_connect",
}


def error_class_config(mock_url: str, closed_url: str, backlog_url: str, careless_url: str) -> dict[str, Any]:
    def endpoint(name: str, url: str, model_id: str, providers: list[str], *, model: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
        model_entry = {"id": model_id, "providers": providers, **(model or {})}
        return {"name": name, "base_url": url, "kind": "openrouter", "models": [model_entry], **extra}

    mock_providers = [p for (e, p) in EXPECTED if e == "mock"]
    return {
        "endpoints": [
            endpoint("mock", mock_url, TEST_MODEL, mock_providers),
            endpoint("mock-short", mock_url, TEST_MODEL, ["slow"],
                     model={"timeouts": {"connect_s": 2, "ttft_s": 2, "idle_s": 2, "total_s": 0.5}}),
            endpoint("mock-thinking", mock_url, REASONING_MODEL, ["thinker"], model={"profiles": ["hidden"]}),
            endpoint("mock-badkey", mock_url, TEST_MODEL, ["fast-a"], api_key_env="TP_TEST_BAD_KEY"),
            endpoint("closed", closed_url, TEST_MODEL, ["fast-a"]),
            endpoint("careless", careless_url, "echo/truncate", ["early-close"]),
            endpoint("backlog", backlog_url, TEST_MODEL, ["fast-a"],
                     model={"timeouts": {"connect_s": 0.5, "ttft_s": 2, "idle_s": 1, "total_s": 5}}),
        ],
        "profiles": {
            "default": {"prompt": "Say something short.", "max_tokens": 16},
            "hidden": {"prompt": "Think.", "max_tokens": 8, "reasoning": {"max_tokens": 8, "exclude": True}},
        },
        "probe": probe_settings(),
    }


def test_every_error_class_reaches_its_label(farm_server: MockServerThread,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert {c for c in EXPECTED.values() if c != "ok"} == set(ALL_ERROR_CLASSES)
    monkeypatch.setenv("TP_TEST_BAD_KEY", "sk-invalid-for-the-mock")
    metrics = ProberMetrics()
    with FullBacklog() as backlog, EchoKeyServer() as careless:
        config = make_config(error_class_config(farm_server.base_url, f"http://127.0.0.1:{closed_port()}/api/v1",
                                                backlog.base_url, careless.base_url))
        report = asyncio.run(probe_once(config, metrics=metrics))
    got = {(r.probe.endpoint, r.probe.provider): (r.result.error_class.value if r.result.error_class else "ok")
           for r in report.rows}
    assert got == EXPECTED
    registry = metrics.registry
    for row in report.rows:
        labels = row.probe.labels
        expected = EXPECTED[(row.probe.endpoint, row.probe.provider)]
        for error_class in (NO_ERROR, *ALL_ERROR_CLASSES):
            outcome = "ok" if error_class == NO_ERROR else "error"
            value = registry.get_sample_value("tokenpulse_requests_total",
                                              {**labels, "outcome": outcome, "error_class": error_class})
            want = 1.0 if error_class == (NO_ERROR if expected == "ok" else expected) else 0.0
            assert value == want, (labels, error_class, value)
    assert not report.ok


#: Which error class each injected fault kind of the mock must produce.
FAULT_TO_CLASS = {
    "rate_limit": ErrorClass.RATE_LIMITED, "http_500": ErrorClass.SERVER_ERROR,
    "http_502": ErrorClass.SERVER_ERROR, "http_503": ErrorClass.SERVER_ERROR,
    "mid_stream": ErrorClass.MID_STREAM_ERROR, "reset": ErrorClass.CONNECT_ERROR,
    "hang_first_byte": ErrorClass.TIMEOUT_TTFT, "hang_mid_stream": ErrorClass.TIMEOUT_IDLE,
    "malformed_chunk": ErrorClass.PROTOCOL_ERROR,
}
FLAKY_PROBES = 600
CONCURRENCY = 16


def test_flaky_provider_counters_match_its_injected_rate(tmp_path: Path) -> None:
    """The default farm's flaky provider (glitchgrid) has a mix of every fault. Its fault mix is put
    on a fast profile (and its scheduled outage left out) so that hundreds of probes take seconds. The
    mock runs in its own process, so the probes' deadlines never wait for the mock's share of the GIL."""
    glitchgrid = default_farm().models["nvidia/nemotron-3-super-120b-a12b"].providers["glitchgrid"]
    errors = glitchgrid.profile.errors.model_dump()
    assert set(FAULT_TO_CLASS) == set(errors) - {"retry_after_s", "hang_max_s"}
    errors["hang_max_s"] = 30
    farm = make_farm({"seed": 5, "models": {TEST_MODEL: {
        "name": "Test", "context_length": 8192, "pricing": {"prompt": 0.1, "completion": 0.2},
        "output_tokens": {"min": 10, "max": 20},
        "providers": {"glitchgrid": {"name": "GlitchGrid", "profile": {**FAST, "errors": errors}}}}}})
    probabilities = glitchgrid.profile.errors.probabilities()
    farm_file = tmp_path / "farm.yaml"
    farm_file.write_text(dump_farm(farm), encoding="utf-8")
    with MockServerProcess(farm_file) as server:
        config = make_config({
            "endpoints": [{"name": "mock", "base_url": server.base_url,
                           "models": [{"id": TEST_MODEL, "providers": ["glitchgrid"]}]}],
            "profiles": {"default": {"prompt": "Hi.", "max_tokens": 12}},
            "probe": probe_settings(timeouts={"connect_s": 5, "ttft_s": 3, "idle_s": 1.5, "total_s": 20}),
        })
        metrics = ProberMetrics()

        async def many() -> None:
            client = new_async_client(max_connections=CONCURRENCY)
            runner = ProbeRunner(AsyncStreamDriver(client), metrics, slo=config.slo, confirm=config.probe.confirm)
            (probe,) = plan(config.targets(), key_ring(config.endpoints))
            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def one() -> None:
                async with semaphore:
                    await runner.probe(probe)

            try:
                await asyncio.gather(*(one() for _ in range(FLAKY_PROBES)))
            finally:
                await client.aclose()

        asyncio.run(many())
        injected = server.stats()["providers"]["glitchgrid"]["errors"]

    labels = {"endpoint": "mock", "model": TEST_MODEL, "provider": "glitchgrid"}

    def count(error_class: str) -> float:
        outcome = "ok" if error_class == NO_ERROR else "error"
        value = metrics.registry.get_sample_value("tokenpulse_requests_total",
                                                  {**labels, "outcome": outcome, "error_class": error_class})
        return value or 0.0

    # 1. Exactly what the mock injected, class by class (every probe reached the mock once).
    for error_class in {c.value for c in FAULT_TO_CLASS.values()}:
        kinds = [k for k, c in FAULT_TO_CLASS.items() if c.value == error_class]
        assert count(error_class) == sum(injected[k] for k in kinds), error_class
    assert count(NO_ERROR) + sum(count(c) for c in ALL_ERROR_CLASSES) == FLAKY_PROBES
    # 2. And the injected rate within a binomial tolerance (4.5 standard deviations).
    p = sum(probabilities.values())
    failures = FLAKY_PROBES - count(NO_ERROR)
    sd = math.sqrt(FLAKY_PROBES * p * (1 - p))
    assert abs(failures - FLAKY_PROBES * p) <= 4.5 * sd, (failures, FLAKY_PROBES * p, sd)
    pre = sum(v for k, v in probabilities.items() if k in PRE_STREAM_FAULTS)
    pre_failures = count("rate_limited") + count("server_error")
    pre_sd = math.sqrt(FLAKY_PROBES * pre * (1 - pre))
    assert abs(pre_failures - FLAKY_PROBES * pre) <= 4.5 * pre_sd
