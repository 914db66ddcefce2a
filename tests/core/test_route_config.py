"""The request's `provider` object is built in one place (config.split_pinned_routing): a pin carries
`require_parameters` (configurable), router's-choice targets (`routes:`) carry their preference under
a bounded `~...` label, and the load workload merges its own `extra_body.provider` the same way."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenpulse.config import ConfigError, parse_config
from tokenpulse.core.request import prepare
from tokenpulse.load.workload import WorkloadGenerator

ROUTES = [{}, {"sort": "throughput"}, {"variant": "nitro"}, {"variant": "floor"},
          {"sort": "price", "max_price": {"prompt": 0.2, "completion": 0.5}, "quantizations": ["fp8", "bf16"]},
          {"name": "cheap-fp8", "quantizations": ["fp8"]}]


def _config(model: dict[str, Any], **top: Any) -> Any:
    return parse_config({"endpoints": [{"name": "or", "base_url": "http://127.0.0.1:1/api/v1",
                                        "models": [{"id": "a/m", **model}]}], **top},
                        source="cfg.yaml", env={})


def _bodies(config: Any) -> dict[str, dict[str, Any]]:
    return {t.provider: json.loads(prepare("http://x/v1", t.chat_request()).body) for t in config.targets()}


def test_pinned_requests_send_require_parameters_unless_turned_off() -> None:
    on = _bodies(_config({"providers": ["deepinfra"]}))["deepinfra"]
    assert on["provider"] == {"require_parameters": True, "only": ["deepinfra"], "allow_fallbacks": False}
    off = _bodies(_config({"providers": ["deepinfra"], "require_parameters": False}))["deepinfra"]
    assert off["provider"] == {"only": ["deepinfra"], "allow_fallbacks": False}
    profile = {"profiles": {"default": {"extra_body": {"provider": {"require_parameters": False}}}}}
    kept = _bodies(_config({"providers": ["deepinfra"]}, **profile))["deepinfra"]
    assert kept["provider"]["require_parameters"] is False  # the profile's own setting wins
    assert "provider" not in _bodies(_config({}))["default"]  # unpinned: no routing added


def test_routes_are_targets_with_bounded_labels_and_their_routing() -> None:
    bodies = _bodies(_config({"providers": ["deepinfra"], "routes": ROUTES}))
    assert list(bodies) == ["deepinfra", "~default", "~sort:throughput", "~nitro", "~floor",
                            "~sort:price,max_price,q:fp8+bf16", "~cheap-fp8"]
    assert "provider" not in bodies["~default"] and bodies["~default"]["model"] == "a/m"
    assert bodies["~sort:throughput"]["provider"] == {"sort": "throughput"}
    assert bodies["~nitro"]["model"] == "a/m:nitro" and "provider" not in bodies["~nitro"]
    assert bodies["~floor"]["model"] == "a/m:floor"
    assert bodies["~sort:price,max_price,q:fp8+bf16"]["provider"] == {
        "sort": "price", "max_price": {"prompt": 0.2, "completion": 0.5}, "quantizations": ["fp8", "bf16"]}
    # Routes alone: no `default` target besides them; the model label stays the configured id.
    config = _config({"routes": [{"sort": "latency"}]})
    assert [(t.provider, t.labels["model"], t.pinned_provider) for t in config.targets()] == [
        ("~sort:latency", "a/m", None)]


@pytest.mark.parametrize(("model", "path", "problem"), [
    ({"routes": [{"sort": "price", "variant": "nitro"}]}, "endpoints.0.models.0", "either sort or variant"),
    ({"routes": [{"sort": "speed"}]}, "endpoints.0.models.0.routes.0.sort", "price"),
    ({"routes": [{}, {}]}, "endpoints.0.models.0", "same target ~default"),
    ({"routes": [{"quantizations": ["fp7"]}]}, "endpoints.0.models.0.routes.0.quantizations.0", "fp8"),
    ({"routes": [{"max_price": {"prompt": -1}}]}, "endpoints.0.models.0.routes.0.max_price.prompt", ""),
    ({"routes": [{"name": "a b"}]}, "endpoints.0.models.0.routes.0.name", ""),
])
def test_bad_routes_name_the_field(model: dict[str, Any], path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _config(model)
    assert f"cfg.yaml: {path}" in str(err.value) and problem in str(err.value)


def test_routes_need_an_openrouter_endpoint() -> None:
    with pytest.raises(ConfigError, match="routes need kind: openrouter"):
        parse_config({"endpoints": [{"name": "v", "base_url": "http://127.0.0.1:1/v1", "kind": "openai",
                                     "models": [{"id": "m", "routes": [{}]}]}]}, source="c", env={})


def test_the_load_workload_merges_its_routing_with_the_pin_instead_of_replacing_it() -> None:
    config = _config({"providers": ["deepinfra"], "routes": [{"sort": "price"}]},
                     load={"workload": {"extra_body": {"provider": {"data_collection": "deny"}, "top_p": 0.5}}})
    gen = WorkloadGenerator(config.load.workload, run_id="r")
    bodies = {t.provider: gen.for_user("u").next_request(t).chat.body() for t in config.targets()}
    assert bodies["deepinfra"]["provider"] == {"require_parameters": True, "data_collection": "deny",
                                               "only": ["deepinfra"], "allow_fallbacks": False}
    assert bodies["~sort:price"]["provider"] == {"sort": "price", "data_collection": "deny"}
    assert bodies["deepinfra"]["top_p"] == bodies["~sort:price"]["top_p"] == 0.5
    with pytest.raises(ConfigError) as err:
        _config({"providers": ["deepinfra"]}, load={"workload": {"extra_body": {"provider": {"only": ["x"]}}}})
    assert "cfg.yaml: load.workload.extra_body.provider: only: ['x'] conflicts" in str(err.value)
