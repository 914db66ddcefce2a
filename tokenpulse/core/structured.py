"""The built-in tools, prompts and answer schema of the `tools` and `json_schema` workloads (and probes).

Why built in: measuring how often a provider's tool calls and JSON answers are valid needs requests
whose answer is checkable: tools with a strict parameter schema (required fields, an enum, bounded
integers) and prompts that clearly call for them; an answer schema with the same kinds of field. A
config may bring its own (`load.workload.tools`, `response_schema`; `probe profile` the same), in the
OpenAI shapes built here: `tools: [{type: function, function: {name, description, parameters}}]` and
`response_format: {type: json_schema, json_schema: {name, strict: true, schema}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: (name, description, parameters) of the built-in tools.
BUILTIN_TOOLS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("get_weather", "Current weather for a city.", {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "city name, e.g. Lisbon"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    }),
    ("search_flights", "Search flights between two airports on a date.", {
        "type": "object",
        "properties": {
            "origin": {"type": "string", "description": "IATA code of the departure airport"},
            "destination": {"type": "string", "description": "IATA code of the arrival airport"},
            "date": {"type": "string", "description": "departure date, YYYY-MM-DD"},
            "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
        },
        "required": ["origin", "destination", "date", "passengers"],
        "additionalProperties": False,
    }),
)

#: Prompts that call for the built-in tools (one is picked per conversation).
BUILTIN_TOOL_PROMPTS: tuple[str, ...] = (
    "What is the weather in Lisbon right now, in celsius? Use the get_weather tool.",
    "Find me flights from LIS to BER on 2026-03-14 for 2 passengers. Use the search_flights tool.",
    "I am flying from Oslo (OSL) to Rome (FCO) on 2026-06-01 with my family of 4, and I want to know the "
    "weather in Rome in fahrenheit. Use the tools.",
)

BUILTIN_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "year": {"type": "integer", "minimum": 1800, "maximum": 2100},
        "rating": {"type": "number", "minimum": 0, "maximum": 5},
        "genres": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        "in_print": {"type": "boolean"},
    },
    "required": ["title", "year", "rating", "genres", "in_print"],
    "additionalProperties": False,
}

BUILTIN_SCHEMA_PROMPTS: tuple[str, ...] = (
    "Invent a novel and describe it as JSON: title, year, rating from 0 to 5, up to four genres, and "
    "whether it is in print.",
    "Describe a famous science-fiction book as JSON with its title, year, a rating out of 5, its genres "
    "and whether it is still in print.",
)

#: The name sent in `response_format.json_schema.name`.
RESPONSE_SCHEMA_NAME = "answer"


def tool_payload(tools: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """OpenAI's `tools` list from (name, description, parameters)."""
    return [{"type": "function", "function": {"name": name, "description": description,
                                              "parameters": dict(parameters)}}
            for name, description, parameters in tools]


def response_format(schema: Mapping[str, Any], name: str = RESPONSE_SCHEMA_NAME) -> dict[str, Any]:
    """OpenAI's strict `response_format` for `schema`."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": dict(schema)}}


def tool_result(name: str) -> str:
    """The content of the `tool` message that answers a call: a fixed, plausible result (the workload
    measures the model's second turn, not a real tool)."""
    results = {"get_weather": '{"temperature": 18, "conditions": "clear"}',
               "search_flights": '{"flights": [{"number": "TP123", "departs": "09:40", "price_eur": 129}]}'}
    return results.get(name, '{"status": "ok"}')
