"""Config of the structured workloads and probes: bad schemas are config errors naming the field."""

from __future__ import annotations

import pytest

from tokenpulse.config import ConfigError, parse_config

BASE = {"endpoints": [{"name": "mock", "base_url": "http://127.0.0.1:1/api/v1",
                       "models": [{"id": "a/m", "providers": ["p"]}]}]}


def problem(extra: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, **extra}, source="my.yaml")
    return str(info.value)


def test_bad_schemas_name_their_field() -> None:
    text = problem({"load": {"workload": {"kind": "tools", "tools": [{"name": "f", "parameters": {"type": 5}}]}}})
    assert text.startswith("my.yaml: load.workload.tools.0.parameters: ") and "JSON Schema" in text
    text = problem({"load": {"workload": {"kind": "json_schema", "response_schema": {"required": "x"}}}})
    assert text.startswith("my.yaml: load.workload.response_schema: ")
    assert "load.workload.tools.0.name" in problem({"load": {"workload": {"tools": [{"name": "has space"}]}}})
    both = {"profiles": {"default": {"tools": [{"name": "f"}], "response_schema": {"type": "object"}}}}
    assert "either tools or response_schema" in problem(both)


def test_workload_kinds_and_probe_request() -> None:
    config = parse_config({**BASE, "load": {"workload": {"kind": "tools", "tool_choice": "auto"}},
                           "profiles": {"default": {"response_schema": {"type": "object"}}}})
    assert config.load.workload.kind == "tools" and config.load.workload.tool_choice == "auto"
    body = next(config.targets()).chat_request().body()
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True, "schema": {"type": "object"}}}
    assert "tools" not in body
