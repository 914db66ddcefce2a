"""The router as OpenRouter documents it, and its faults that a monitor must see through: sorts
(`provider.sort`, `:nitro`, `:floor`), filters (`quantizations`, `max_price`, `require_parameters`), a
pinned request misrouted to another provider (`wrong_provider`, never a sample of the pin), OpenRouter's
own 429s vs a provider's, and router's-choice targets whose served providers are counted per target.

The mock runs in-process on loopback; requests go through tokenpulse's own driver, recorder and
metrics, as the prober's do."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from tokenpulse.config import parse_config
from tokenpulse.core.outcomes import ErrorClass, ErrorOrigin
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.request import PreparedRequest, Timeouts, prepare
from tokenpulse.metrics import ProberMetrics
from tokenpulse.mock import MockServerThread
from tokenpulse.mock.behaviour import derive_rng
from tokenpulse.mock.farm import farm_from_data
from tokenpulse.mock.request import ProviderPrefs
from tokenpulse.mock.routing import route, split_variant
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver

MODEL = "test/router"


def _profile(ttft_ms: float, tokens_per_s: float, **extra: Any) -> dict[str, Any]:
    return {"ttft": {"median_ms": ttft_ms, "p99_ms": ttft_ms},
            "decode": {"tokens_per_s": tokens_per_s, "request_jitter": 0, "chunk_jitter": 0},
            "keepalive_ms": 0, **extra}


PROVIDERS: dict[str, dict[str, Any]] = {
    "cheap": {"name": "Cheap Co", "profile": _profile(8, 1000), "pricing": {"prompt": 0.1, "completion": 0.2},
              "quantization": "fp8"},
    "fast": {"name": "Fast", "profile": _profile(6, 4000), "pricing": {"prompt": 1.0, "completion": 2.0},
             "quantization": "bf16"},
    "quick": {"name": "Quick", "profile": _profile(2, 500), "pricing": {"prompt": 0.5, "completion": 1.0},
              "quantization": "fp8", "unsupported_parameters": ["seed"]},
    "leaky": {"name": "Leaky", "profile": _profile(4, 2000), "pricing": {"prompt": 0.9, "completion": 1.9},
              "misroute": 0.3, "misroute_to": ["cheap"]},
    "limited": {"name": "Limited", "profile": _profile(4, 2000, errors={"rate_limit": 1.0}),
                "pricing": {"prompt": 5.0, "completion": 9.0}},
}


def _farm(**top: Any) -> Any:
    return farm_from_data({"seed": 3, **top, "models": {MODEL: {
        "name": "Router test", "context_length": 4096, "pricing": {"prompt": 1, "completion": 1},
        "output_tokens": {"min": 4, "max": 6}, "providers": copy.deepcopy(PROVIDERS)}}}, "router farm")


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerThread]:
    with MockServerThread(_farm()) as srv:
        yield srv


def _first(prefs: ProviderPrefs, *, model: str = MODEL, params: Sequence[str] = ()) -> list[str]:
    base, sort = split_variant(model)
    chain = route(_farm().models[base], prefs, derive_rng(1), sort=sort, params=frozenset(params))
    return [p.slug for p in chain]


def test_sorts_rank_by_the_farms_price_throughput_and_latency() -> None:
    assert _first(ProviderPrefs(sort="price"))[:3] == ["cheap", "quick", "leaky"]
    assert _first(ProviderPrefs(sort="throughput"))[:2] == ["fast", "leaky"]
    assert _first(ProviderPrefs(sort="latency"))[0] == "quick"
    assert _first(ProviderPrefs(), model=f"{MODEL}:nitro") == _first(ProviderPrefs(sort="throughput"))
    assert _first(ProviderPrefs(), model=f"{MODEL}:floor") == _first(ProviderPrefs(sort="price"))
    assert _first(ProviderPrefs(sort="latency"), model=f"{MODEL}:floor")[0] == "quick"  # the request's sort wins
    assert split_variant("a/b:free") == ("a/b:free", None)


def test_filters_quantizations_max_price_and_require_parameters() -> None:
    assert set(_first(ProviderPrefs(quantizations=("BF16",)))) == {"fast"}
    assert set(_first(ProviderPrefs(quantizations=("fp8", "int4")))) == {"cheap", "quick", "leaky", "limited"}
    assert set(_first(ProviderPrefs(max_price=(0.6, None)))) == {"cheap", "quick"}
    assert set(_first(ProviderPrefs(max_price=(None, 0.2)))) == {"cheap"}
    pinned = ProviderPrefs(only=("quick",), allow_fallbacks=False, require_parameters=True)
    assert _first(pinned, params=("seed", "model")) == []  # quick ignores seed: refused, not used
    assert _first(pinned, params=("model",)) == ["quick"]
    assert _first(ProviderPrefs(only=("quick",), allow_fallbacks=False), params=("seed",)) == ["quick"]


async def _run_all(requests: Sequence[PreparedRequest]) -> list[StreamResult]:
    timeouts = Timeouts(connect=5, ttft=5, idle=5, total=20)
    async with AsyncStreamDriver() as driver:
        return [await driver.run(r, timeouts) for r in requests]


def _config(base_url: str, model: dict[str, Any]) -> Any:
    return parse_config({"endpoints": [{"name": "mock", "base_url": base_url, "models": [{"id": MODEL, **model}]}],
                         "profiles": {"default": {"prompt": "Hi.", "max_tokens": 8}}}, source="t", env={})


def _observe(config: Any, per_target: int) -> tuple[dict[str, list[StreamResult]], ProberMetrics]:
    """Every target of `config` `per_target` times through the driver, recorded in prober metrics."""
    metrics = ProberMetrics()
    targets = list(config.targets())
    results = asyncio.run(_run_all([prepare(t.endpoint.base_url, t.chat_request()) for t in targets
                                    for _ in range(per_target)]))
    out: dict[str, list[StreamResult]] = {}
    for i, result in enumerate(results):
        target = targets[i // per_target]
        metrics.requests.touch(target.labels)
        metrics.requests.observe(target.labels, result)
        out.setdefault(target.provider, []).append(result)
    return out, metrics


def test_misrouted_pinned_requests_are_wrong_provider_and_not_samples_of_the_pin(server: MockServerThread) -> None:
    results, metrics = _observe(_config(server.base_url, {"providers": ["leaky"]}), 60)
    classes = Counter(r.error_class for r in results["leaky"])
    misrouted = classes[ErrorClass.WRONG_PROVIDER]
    assert classes[None] + misrouted == 60 and 6 <= misrouted <= 30  # 30 % of 60, seeded
    assert {r.provider for r in results["leaky"] if r.error_class is ErrorClass.WRONG_PROVIDER} == {"Cheap Co"}
    assert {r.provider for r in results["leaky"] if r.ok} == {"Leaky"}
    labels = {"endpoint": "mock", "model": MODEL, "provider": "leaky"}
    sample = metrics.registry.get_sample_value
    assert sample("tokenpulse_requests_total", {**labels, "outcome": "error", "error_class": "wrong_provider"}) \
        == misrouted
    assert sample("tokenpulse_ttft_seconds_count", labels) == classes[None]  # only the pin's own samples
    assert sample("tokenpulse_output_tokens_total", labels) == sum(r.output_tokens or 0 for r in results["leaky"])


def test_openrouter_429_and_provider_429_have_their_origin(server: MockServerThread) -> None:
    results, metrics = _observe(_config(server.base_url, {"providers": ["limited"]}), 2)
    (theirs, _) = results["limited"]
    assert theirs.error_class is ErrorClass.RATE_LIMITED and theirs.error_origin is ErrorOrigin.PROVIDER
    assert theirs.error_detail is not None and theirs.error_detail.provider_name == "Limited"
    assert theirs.error_detail.provider_code == "429" and not theirs.error_detail.rate_limit
    labels = {"endpoint": "mock", "model": MODEL, "provider": "limited"}
    assert metrics.registry.get_sample_value("tokenpulse_rate_limited_requests_total",
                                             {**labels, "origin": "provider"}) == 2
    with MockServerThread(_farm(openrouter_rate_limit=1.0)) as limited:
        results, metrics = _observe(_config(limited.base_url, {"providers": ["fast"]}), 2)
        raw = httpx.post(f"{limited.base_url}/chat/completions", json={"model": MODEL, "messages": [
            {"role": "user", "content": "x"}]})
    (own, _) = results["fast"]
    assert own.error_class is ErrorClass.RATE_LIMITED and own.error_origin is ErrorOrigin.OPENROUTER
    assert own.error_detail is not None and own.error_detail.provider_name is None
    assert set(own.error_detail.rate_limit) == {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
    assert own.retry_after_s is not None and own.retry_after_s >= 1
    assert raw.status_code == 429 and raw.json()["error"]["metadata"] == {}
    labels = {"endpoint": "mock", "model": MODEL, "provider": "fast"}
    for origin, want in (("openrouter", 2), ("provider", 0), ("unknown", 0)):
        assert metrics.registry.get_sample_value("tokenpulse_rate_limited_requests_total",
                                                 {**labels, "origin": origin}) == want


def test_error_availability_on_the_wire(server: MockServerThread) -> None:
    resp = httpx.post(f"{server.base_url}/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "x"}], "seed": 1,
        "provider": {"only": ["quick"], "allow_fallbacks": False, "require_parameters": True}})
    assert resp.status_code == 404
    assert resp.json()["error"]["availability"] == {"code": "no_endpoints", "retryable": False}


def test_router_choice_targets_record_who_served_them(server: MockServerThread) -> None:
    config = _config(server.base_url, {"providers": ["fast"], "routes": [
        {}, {"sort": "price"}, {"variant": "nitro"}, {"sort": "latency", "quantizations": ["fp8"]}]})
    results, metrics = _observe(config, 12)
    served = {label: Counter(r.provider for r in rs) for label, rs in results.items()}
    assert served["~sort:price"] == Counter({"Cheap Co": 12})
    assert served["~nitro"] == Counter({"Fast": 12})
    assert served["~sort:latency,q:fp8"] == Counter({"Quick": 12})
    assert sum(served["~default"].values()) == 12 and len(served["~default"]) >= 2  # weighted shuffle
    assert all(r.ok or r.error_class is ErrorClass.RATE_LIMITED for rs in results.values() for r in rs)
    # Labels come from the config only: the served names never become a label value.
    providers = {s.labels["provider"] for m in metrics.registry.collect() for s in m.samples
                 if "provider" in s.labels}
    assert providers == {"fast", "~default", "~sort:price", "~nitro", "~sort:latency,q:fp8"}
