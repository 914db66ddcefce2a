"""Building OpenAI / OpenRouter streaming chat requests, and the timeouts that bound them.

Why a builder: the prober, the load test and `tokenpulse measure` must send the same request for the
same settings (a probe pinned to one provider, usage requested, reasoning fixed), and the API key must
be read from the environment in exactly one place (tokenpulse.core.keys), so it is known to the redactor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from tokenpulse.core.jsonwire import dumps_compact
from tokenpulse.core.served import ProviderPin

#: OpenRouter's `reasoning.effort` values, the one list: the config model and `measure --reasoning-effort`
#: both take them from here.
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
REASONING_EFFORTS: tuple[str, ...] = get_args(ReasoningEffort)



#: The limits a request gets unless told otherwise: `Timeouts`, the config's `timeouts:` fields and
#: `measure`'s flags all take their defaults from here, so they cannot disagree.
DEFAULT_CONNECT_S = 10.0
DEFAULT_TTFT_S = 60.0
DEFAULT_IDLE_S = 30.0
DEFAULT_TOTAL_S = 300.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request limits in seconds; None means no limit. Each expiry has its own error class.

    connect: TCP/TLS connection. ttft: from t0 until the first token-carrying event. idle: the longest
    silence between two reads once the first token has arrived. total: the whole request.
    """

    connect: float | None = DEFAULT_CONNECT_S
    ttft: float | None = DEFAULT_TTFT_S
    idle: float | None = DEFAULT_IDLE_S
    total: float | None = DEFAULT_TOTAL_S

    def __post_init__(self) -> None:
        for name in ("connect", "ttft", "idle", "total"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"timeout {name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to ask for. Provider pinning uses OpenRouter's `provider.only` with fallbacks off, so a
    provider's failures show instead of being silently retried elsewhere (DESIGN.md §3)."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    max_tokens: int | None = 256
    temperature: float | None = None
    seed: int | None = None
    stop: Sequence[str] | None = None
    reasoning: Mapping[str, Any] | None = None
    provider: str | None = None
    provider_routing: Mapping[str, Any] | None = None
    include_usage: bool = True
    min_tokens: int | None = None
    ignore_eos: bool | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    #: OpenAI's `tools`, `tool_choice` and `response_format`, sent as they are (core/structured.py).
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: Any = None
    response_format: Mapping[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body. `extra_body` is applied last so users can pass any server-specific field."""
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in self.messages], "stream": True}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.seed is not None:
            body["seed"] = self.seed
        if self.stop:
            body["stop"] = list(self.stop)
        if self.reasoning is not None:
            body["reasoning"] = dict(self.reasoning)
        routing = dict(self.provider_routing or {})
        if self.provider:
            routing.setdefault("only", [self.provider])
            routing.setdefault("allow_fallbacks", False)
        if routing:
            body["provider"] = routing
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if self.min_tokens is not None:
            body["min_tokens"] = self.min_tokens
        if self.ignore_eos is not None:
            body["ignore_eos"] = self.ignore_eos
        if self.tools:
            body["tools"] = [dict(t) for t in self.tools]
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
        if self.response_format is not None:
            body["response_format"] = dict(self.response_format)
        body.update(self.extra_body)
        return body

    def prompt_chars(self) -> int:
        total = 0
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                total += len(content)
            elif isinstance(content, list):
                total += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, Mapping))
        return total


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """Wire-ready request. `secrets` lists values that must never leave the process in any text."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    secrets: tuple[str, ...]
    prompt_tokens_hint: int | None = None
    #: The provider the request is pinned to (`ChatRequest.provider`): the recorder judges the served
    #: provider against it (`wrong_provider`).
    pin: ProviderPin | None = None

    def __repr__(self) -> str:  # never print headers: they carry the key
        return f"PreparedRequest(url={self.url!r}, body_bytes={len(self.body)})"


def chat_completions_url(base_url: str) -> str:
    """`base_url` is the API root as written for the openai SDK (…/api/v1 or …/v1)."""
    return base_url.rstrip("/") + "/chat/completions"


def prepare(
    base_url: str,
    request: ChatRequest,
    *,
    api_key: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    want_ground_truth: bool = False,
    provider_names: Sequence[str] = (),
) -> PreparedRequest:
    """Serialize once; drivers send the same bytes every time (cheap for load tests).

    `provider_names` are the display names an endpoints listing gives the pinned provider (its
    `provider_name`): when known, they decide whether a served name is the pinned provider
    (core/served.py), rather than the normalized comparison of name and slug."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        # Compressed SSE would be buffered by the compressor and hide real arrival times.
        "Accept-Encoding": "identity",
        "User-Agent": "tokenpulse",
    }
    if extra_headers:
        headers.update(extra_headers)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if want_ground_truth:
        headers["X-Tokenpulse-Truth"] = "1"
    prompt_hint = math.ceil(request.prompt_chars() / 4) or None
    return PreparedRequest(
        url=chat_completions_url(base_url),
        headers=headers,
        body=dumps_compact(request.body()),
        secrets=(api_key,) if api_key else (),
        prompt_tokens_hint=prompt_hint,
        pin=ProviderPin.of(request.provider, provider_names) if request.provider else None,
    )
