"""The provider pin survives any `extra_body`: its `provider` object merges under the pin, and one that
would undo the pin is a config error naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenpulse.config import ConfigError, parse_config
from tokenpulse.prober.targets import key_ring, plan


def _config(extra_body: dict[str, Any], **model: Any) -> Any:
    return parse_config({
        "endpoints": [{"name": "or", "base_url": "http://127.0.0.1:1/api/v1",
                       "models": [{"id": "a/m", **model}]}],
        "profiles": {"default": {"prompt": "Hi.", "extra_body": extra_body}},
    }, source="cfg.yaml", env={})


def _body(config: Any) -> list[dict[str, Any]]:
    return [json.loads(p.request.body) for p in plan(config.targets(), key_ring(config.endpoints))]


def test_extra_body_provider_merges_with_the_pin() -> None:
    bodies = _body(_config({"provider": {"require_parameters": True, "sort": "price"}, "top_p": 0.9},
                           providers=["deepinfra", "nebius/fp8"]))
    assert [b["provider"] for b in bodies] == [
        {"require_parameters": True, "sort": "price", "only": ["deepinfra"], "allow_fallbacks": False},
        {"require_parameters": True, "sort": "price", "only": ["nebius/fp8"], "allow_fallbacks": False}]
    assert all(b["top_p"] == 0.9 for b in bodies)


def test_unpinned_targets_send_extra_body_provider_as_it_is() -> None:
    (body,) = _body(_config({"provider": {"order": ["x", "y"]}}))
    assert body["provider"] == {"order": ["x", "y"]}


@pytest.mark.parametrize(("provider", "problem"), [
    ({"only": ["nebius"]}, "conflicts with the pinned provider (deepinfra)"),
    ({"allow_fallbacks": True}, "allow_fallbacks must stay false"),
    ("deepinfra", "must be a mapping"),
])
def test_a_routing_that_undoes_the_pin_is_a_config_error(provider: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _config({"provider": provider}, providers=["deepinfra"])
    assert str(err.value).startswith("cfg.yaml: profiles.default.extra_body.provider: ")
    assert problem in str(err.value)


def test_only_naming_the_pinned_provider_itself_is_accepted() -> None:
    (body,) = _body(_config({"provider": {"only": ["deepinfra"]}}, providers=["deepinfra"]))
    assert body["provider"] == {"require_parameters": True, "only": ["deepinfra"], "allow_fallbacks": False}
    with pytest.raises(ConfigError, match="each discovered provider"):
        _config({"provider": {"only": ["deepinfra"]}}, discover=True)
