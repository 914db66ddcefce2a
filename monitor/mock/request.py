"""Parsing a /chat/completions request body into the few fields the mock honours.

Why hand-written rather than a pydantic model: real clients send many fields the mock ignores
(top_p, user, transforms, ...) and OpenRouter accepts them, so unknown keys must pass, while the fields
the mock does act on get OpenRouter-like 400 messages naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

Effort = Literal["low", "medium", "high"]
_EFFORTS: tuple[str, ...] = ("minimal", "low", "medium", "high")


class BadRequest(ValueError):
    """The body is not a usable chat request; the message is safe to return to the client."""


@dataclass(frozen=True, slots=True)
class ReasoningRequest:
    """The request's `reasoning` object. `enabled=None` means the model's default applies."""

    enabled: bool | None = None
    effort: Effort | None = None
    max_tokens: int | None = None
    exclude: bool = False


@dataclass(frozen=True, slots=True)
class ProviderPrefs:
    """The request's `provider` routing object (OpenRouter semantics, slugs or names)."""

    only: tuple[str, ...] | None = None
    order: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the mock needs from a chat request."""

    model: str
    prompt_tokens: int
    prompt_digest: str  # stable hash of the messages: temperature 0 gives the same text per prompt
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    min_tokens: int = 0
    ignore_eos: bool = False
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    reasoning: ReasoningRequest = field(default_factory=ReasoningRequest)
    provider: ProviderPrefs = field(default_factory=ProviderPrefs)
    tool_name: str | None = None  # set when the request forces a tool call


def _message_chars(messages: list[Any]) -> int:
    """Characters of all message contents (string content or text parts)."""
    total = 0
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRequest(f"messages[{i}] must be an object")
        content = msg.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
        elif content is not None:
            raise BadRequest(f"messages[{i}].content must be a string or an array of parts")
    return total


def _opt_int(body: dict[str, Any], key: str, *, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadRequest(f"{key} must be an integer >= {minimum}")
    return value


def _opt_bool(obj: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{where}{key} must be a boolean")
    return value


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{where} must be an array of strings")
    return tuple(value)


def _reasoning(value: Any) -> ReasoningRequest:
    if value is None:
        return ReasoningRequest()
    if not isinstance(value, dict):
        raise BadRequest("reasoning must be an object")
    effort = value.get("effort")
    if effort is not None and effort not in _EFFORTS and effort != "none":
        raise BadRequest("reasoning.effort must be one of minimal, low, medium, high, none")
    enabled: bool | None = _opt_bool(value, "enabled", "reasoning.", True) if "enabled" in value else None
    if effort == "none":
        enabled = False
    max_tokens = value.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 0):
        raise BadRequest("reasoning.max_tokens must be an integer >= 0")
    if enabled is None and (effort is not None or max_tokens is not None):
        enabled = True
    return ReasoningRequest(
        enabled=enabled,
        effort="low" if effort == "minimal" else (effort if effort in ("low", "medium", "high") else None),
        max_tokens=max_tokens,
        exclude=_opt_bool(value, "exclude", "reasoning.", False),
    )


def _provider(value: Any) -> ProviderPrefs:
    if value is None:
        return ProviderPrefs()
    if not isinstance(value, dict):
        raise BadRequest("provider must be an object")
    only = value.get("only")
    return ProviderPrefs(
        only=None if only is None else _str_list(only, "provider.only"),
        order=_str_list(value["order"], "provider.order") if value.get("order") is not None else (),
        ignore=_str_list(value["ignore"], "provider.ignore") if value.get("ignore") is not None else (),
        allow_fallbacks=_opt_bool(value, "allow_fallbacks", "provider.", True),
    )


def _forced_tool(body: dict[str, Any]) -> str | None:
    """The function name to call when tool_choice forces a call, else None (plain content)."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        return None
    if not isinstance(tools, list):
        raise BadRequest("tools must be an array")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("tool_choice.function.name must be a string")
        return name
    if choice != "required":
        return None
    first = tools[0]
    name = first.get("function", {}).get("name") if isinstance(first, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequest("tools[0].function.name must be a string")
    return name


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Decode and validate a chat request body. Raises BadRequest with a client-safe message."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array")
    chars = _message_chars(messages)
    digest = hashlib.blake2b(json.dumps(messages, sort_keys=True).encode(), digest_size=8).hexdigest()

    max_tokens = _opt_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _opt_int(body, "max_tokens", minimum=1)
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
                                    or not 0 <= temperature <= 2):
        raise BadRequest("temperature must be a number between 0 and 2")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadRequest("seed must be an integer")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise BadRequest("stream_options must be an object")
    stop = body.get("stop")
    return ChatRequest(
        model=model,
        prompt_tokens=max(1, math.ceil(chars / 4)),
        prompt_digest=digest,
        stream=_opt_bool(body, "stream", "", False),
        include_usage=_opt_bool(stream_options, "include_usage", "stream_options.", False),
        max_tokens=max_tokens,
        min_tokens=_opt_int(body, "min_tokens", minimum=0) or 0,
        ignore_eos=_opt_bool(body, "ignore_eos", "", False),
        temperature=None if temperature is None else float(temperature),
        seed=seed,
        stop=() if stop is None else tuple(s for s in _str_list(stop, "stop") if s),
        reasoning=_reasoning(body.get("reasoning")),
        provider=_provider(body.get("provider")),
        tool_name=_forced_tool(body),
    )
