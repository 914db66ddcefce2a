"""The shipped example configs load, and examples/mock.yaml covers every provider of the default farm."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenpulse.config import load_config
from tokenpulse.mock import default_farm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["mock.yaml", "openrouter.yaml", "vllm.yaml"])
def test_example_loads(name: str) -> None:
    config = load_config(EXAMPLES / name, env={})
    assert config.endpoints


def test_mock_example_covers_the_default_farm() -> None:
    config = load_config(EXAMPLES / "mock.yaml", env={})
    (endpoint,) = config.endpoints
    assert endpoint.base_url == "http://127.0.0.1:8080/api/v1"
    served = {m.id: list(m.providers) for m in endpoint.models}
    assert served == {model_id: list(model.providers) for model_id, model in default_farm().models.items()}
    moved = load_config(EXAMPLES / "mock.yaml", env={"TOKENPULSE_MOCK_URL": "http://mock:8080/api/v1"})
    assert moved.endpoints[0].base_url == "http://mock:8080/api/v1"


def test_openrouter_example_discovers_nemotron_providers_with_a_key_from_the_environment() -> None:
    config = load_config(EXAMPLES / "openrouter.yaml", env={})
    (endpoint,) = config.endpoints
    assert endpoint.kind == "openrouter" and endpoint.api_key_env == "OPENROUTER_API_KEY"
    models = {m.id: m for m in endpoint.models}
    assert models["nvidia/nemotron-3-super-120b-a12b"].discover
    assert len(models) >= 2
    reasoning = config.profiles[models["nvidia/nemotron-3-super-120b-a12b"].profiles[0]].reasoning
    assert reasoning is not None and reasoning.effort == "low"


def test_vllm_example_is_a_plain_openai_endpoint() -> None:
    config = load_config(EXAMPLES / "vllm.yaml", env={"VLLM_URL": "http://gpu-box:8000/v1"})
    (endpoint,) = config.endpoints
    assert endpoint.kind == "openai" and endpoint.base_url == "http://gpu-box:8000/v1"
    assert [t.provider for t in config.targets()] == ["default"]

