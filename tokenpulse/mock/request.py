"""Parsing a /chat/completions request body into the few fields the mock honours.

Why hand-written rather than a pydantic model: real clients send many fields the mock ignores
(top_p, user, transforms, ...) and OpenRouter accepts them, so unknown keys must pass, while the fields
the mock does act on get OpenRouter-like 400 messages naming the field.

Every field the mock acts on is bounded, because the mock plans a whole generation before its first
byte: `max_tokens: 10**12` used to freeze the event loop and end in MemoryError. Token counts are at
most `MAX_OUTPUT_TOKENS`, `n` is OpenAI's 1..128 (the mock always answers with one choice), `seed` an
int64, `stop` at most `MAX_STOP` sequences. Any body that is not a usable request, whatever its types or
nesting, is a `BadRequest` (400), never an exception that would become a 500.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenpulse.core.redact import clip

#: The largest token count a request may ask for (max_tokens, max_completion_tokens, min_tokens,
#: reasoning.max_tokens). The whole generation is planned synchronously, ~3 µs per token: 32 Ki tokens
#: hold the event loop (every other stream) for ~0.1 s; 128 Ki held it for 0.4 s.
MAX_OUTPUT_TOKENS = 32_768
MAX_N = 128
MAX_STOP = 16
MAX_STOP_CHARS = 1024
#: Top-level body fields kept for `provider.require_parameters` (a real body has a dozen).
MAX_PARAMS = 64
MAX_TOOLS = 128
_INT64 = 2**63

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
    require_parameters: bool = False
    sort: Literal["price", "throughput", "latency"] | None = None
    #: `max_price` in USD per million tokens: (prompt, completion), None where not bounded.
    max_price: tuple[float | None, float | None] | None = None
    quantizations: tuple[str, ...] | None = None

    @property
    def pinned(self) -> bool:
        """`only` without fallbacks: how a probe pins one provider (DESIGN.md §3)."""
        return self.only is not None and not self.allow_fallbacks


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
    #: The text of each message, in order (references into the parsed body): the prefix cache's input.
    prompt_parts: tuple[str, ...] = ()
    #: The top-level fields of the body (bounded: at most `MAX_PARAMS`), for `require_parameters`.
    params: frozenset[str] = frozenset()
    #: The request's tools as (function name, parameters schema); `tool_choice` as auto | required |
    #: none | named (`tool_name` then names the function).
    tools: tuple[tuple[str, Any], ...] = ()
    tool_choice: Literal["auto", "required", "none", "named"] = "auto"
    #: The last message is a tool result: a model answers it rather than calling again (under auto).
    after_tool_result: bool = False
    #: `response_format: {type: json_schema, json_schema: {schema}}`: the schema the answer must match.
    answer_schema: Any = None
    #: The messages as sent, for the reasoning_details check (mock/tools.py).
    messages: tuple[Any, ...] = ()


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


def _message_texts(messages: list[Any]) -> tuple[str, ...]:
    """The text of every message (string content or its text parts), after _message_chars checked them."""
    texts: list[str] = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return tuple(texts)


def _opt_int(body: dict[str, Any], key: str, *, minimum: int, maximum: int = MAX_OUTPUT_TOKENS,
             where: str = "") -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise BadRequest(f"{where}{key} must be an integer from {minimum} to {maximum}")
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


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = _str_list(value, "stop")
    if len(stops) > MAX_STOP or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise BadRequest(f"stop takes at most {MAX_STOP} sequences of at most {MAX_STOP_CHARS} characters")
    return tuple(s for s in stops if s)


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
    max_tokens = _opt_int(value, "max_tokens", minimum=0, where="reasoning.")
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
    sort = value.get("sort")
    if isinstance(sort, dict):  # OpenRouter also takes {"by": ..., "partition": ...}
        sort = sort.get("by")
    if sort is not None and sort not in ("price", "throughput", "latency"):
        raise BadRequest("provider.sort must be one of price, throughput, latency")
    quantizations = value.get("quantizations")
    return ProviderPrefs(
        only=None if only is None else _str_list(only, "provider.only"),
        order=_str_list(value["order"], "provider.order") if value.get("order") is not None else (),
        ignore=_str_list(value["ignore"], "provider.ignore") if value.get("ignore") is not None else (),
        allow_fallbacks=_opt_bool(value, "allow_fallbacks", "provider.", True),
        require_parameters=_opt_bool(value, "require_parameters", "provider.", False),
        sort=sort,
        max_price=_max_price(value.get("max_price")),
        quantizations=None if quantizations is None else _str_list(quantizations, "provider.quantizations"),
    )


def _max_price(value: Any) -> tuple[float | None, float | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("provider.max_price must be an object")
    bounds: list[float | None] = []
    for key in ("prompt", "completion"):
        bound = value.get(key)
        if bound is not None and (not isinstance(bound, (int, float)) or isinstance(bound, bool)
                                  or not 0 <= bound < math.inf):
            raise BadRequest(f"provider.max_price.{key} must be a non-negative number")
        bounds.append(None if bound is None else float(bound))
    return bounds[0], bounds[1]


def _forced_tool(body: dict[str, Any]) -> str | None:
    """The function name to call when tool_choice forces a call, else None (plain content)."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        return None
    if not isinstance(tools, list):
        raise BadRequest("tools must be an array")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest("tool_choice.function.name must be a string")
        return name
    if choice != "required":
        return None
    first = tools[0]
    function = first.get("function") if isinstance(first, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequest("tools[0].function.name must be a string")
    return name


def _tools(body: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """(name, parameters) of each tool; a tool without a usable name is a 400, as OpenAI answers."""
    tools = body.get("tools")
    if not tools:
        return ()
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise BadRequest(f"tools must be an array of at most {MAX_TOOLS} tools")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest(f"tools[{i}].function.name must be a string")
        parameters = function.get("parameters") if isinstance(function, dict) else None
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequest(f"tools[{i}].function.parameters must be an object")
        out.append((name, parameters or {"type": "object"}))
    return tuple(out)


def _tool_choice(body: dict[str, Any]) -> Literal["auto", "required", "none", "named"]:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return "named"
    if choice in ("required", "none"):
        return "required" if choice == "required" else "none"
    return "auto"


def _answer_schema(body: dict[str, Any]) -> Any:
    """The schema of `response_format: {type: json_schema, json_schema: {name, strict, schema}}`;
    `{type: json_object}` is any object."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise BadRequest("response_format must be an object")
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise BadRequest("response_format.json_schema.schema must be an object")
    return schema


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259), though Python's decoder takes them by default."""
    raise ValueError(f"{name} is not valid JSON")


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Decode and validate a chat request body. Raises BadRequest with a client-safe message."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, an int of > 4300 digits, deep nesting
        raise BadRequest(f"invalid JSON body: {clip(str(exc) or type(exc).__name__, 200)}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array")
    chars = _message_chars(messages)
    try:
        canonical = json.dumps(messages, sort_keys=True)
    except RecursionError:  # nesting that the decoder took but the encoder does not
        raise BadRequest("messages are nested too deeply") from None
    digest = hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()

    max_tokens = _opt_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _opt_int(body, "max_tokens", minimum=1)
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
                                    or not 0 <= temperature <= 2):
        raise BadRequest("temperature must be a number between 0 and 2")
    seed = _opt_int(body, "seed", minimum=-_INT64, maximum=_INT64 - 1)
    _opt_int(body, "n", minimum=1, maximum=MAX_N)  # checked as OpenAI does; one choice is generated
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise BadRequest("stream_options must be an object")
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
        stop=_stop(body.get("stop")),
        reasoning=_reasoning(body.get("reasoning")),
        provider=_provider(body.get("provider")),
        tool_name=_forced_tool(body),
        prompt_parts=_message_texts(messages),
        params=frozenset(k for k in list(body)[:MAX_PARAMS] if isinstance(k, str)),
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        after_tool_result=isinstance(messages[-1], dict) and messages[-1].get("role") == "tool",
        answer_schema=_answer_schema(body),
        messages=tuple(messages),
    )
