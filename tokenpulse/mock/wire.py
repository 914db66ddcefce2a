"""The bytes and JSON shapes the mock puts on the wire (OpenRouter's, which are a superset of OpenAI's).

Why templates: a stream chunk differs from the previous one only in its delta (and the optional truth
stamp), so `StreamEncoder` serialises the fixed part of a chunk once per stream with json.dumps (correct
escaping) and then splices each delta in. That keeps the per-chunk cost to one small json.dumps of the
text, which is what lets one core serve well over 1,000 concurrent streams.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tokenpulse.mock.farm import ModelSpec, Pricing, ProviderSpec

__all__ = [
    "COMMENT", "DONE", "StreamEncoder", "completion_body", "endpoints_body", "error_body", "models_body",
    "per_token", "usage_obj",
]

COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
TRUTH_FIELD = "tokenpulse_truth"  # contract with tokenpulse.core.recorder: do not rename

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_json_str: Callable[[str], str] = json.encoder.encode_basestring  # C-level escaping of one string


def per_token(usd_per_million: float) -> str:
    """USD per 1M tokens -> USD per token as a plain decimal string ("0.00000009"), as /models shows."""
    value = Decimal(repr(usd_per_million)) / Decimal(1_000_000)
    return format(value.normalize(), "f") if value else "0"


def cost_usd(pricing: Pricing, prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * pricing.prompt + completion_tokens * pricing.completion) / 1_000_000


def usage_obj(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int,
              cost: float, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenRouter's usage object; completion_tokens includes the reasoning tokens, prompt_tokens the
    cached ones (as OpenAI and OpenRouter count them)."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": round(cost, 12),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def error_body(code: int, message: str, metadata: dict[str, Any] | None = None,
               availability: dict[str, Any] | None = None) -> bytes:
    """OpenRouter's error envelope; `code` equals the HTTP status. `availability` (`code`, `retryable`)
    is what OpenRouter adds when no provider can serve the model."""
    error: dict[str, Any] = {"code": code, "message": message, "metadata": metadata or {}}
    if availability is not None:
        error["availability"] = availability
    return _dumps({"error": error}).encode()


def _reasoning_delta(text: str, index: int = 0, signature: str | None = None) -> dict[str, Any]:
    """A reasoning delta: the text twice, as OpenRouter sends it (`reasoning` and one piece of detail
    `index`); the piece that ends a detail carries its signature (mock/tools.py)."""
    detail: dict[str, Any] = {"type": "reasoning.text", "text": text, "index": index, "format": "unknown"}
    if signature is not None:
        detail["signature"] = signature
    return {"role": "assistant", "content": "", "reasoning": text, "reasoning_details": [detail]}


class StreamEncoder:
    """Encodes the SSE events of one streamed chat completion (`data: {...}\\n\\n` bytes).

    With `truth_recv_ns` set, every data event carries
    `"tokenpulse_truth": {"recv_ns": <request fully received>, "sent_ns": <monotonic_ns at encoding>}`;
    the caller writes the event right away, so sent_ns is the moment just before the write.
    """

    __slots__ = ("_base", "_post", "_pre", "_truth_prefix")

    def __init__(self, gen_id: str, created: int, model: str, provider_name: str,
                 truth_recv_ns: int | None = None) -> None:
        self._base: dict[str, Any] = {
            "id": gen_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "provider": provider_name,
        }
        # data: {<base>,"choices":[{"index":0,"delta":<DELTA>,"finish_reason":null,...}]<truth>}
        self._pre = b"data: " + _dumps(self._base)[:-1].encode() + b',"choices":[{"index":0,"delta":'
        self._post = b',"finish_reason":null,"native_finish_reason":null,"logprobs":null}]'

        self._truth_prefix = (None if truth_recv_ns is None else
                              f',"{TRUTH_FIELD}":{{"recv_ns":{truth_recv_ns},"sent_ns":'.encode())

    def _close(self) -> bytes:
        if self._truth_prefix is None:
            return b"}\n\n"
        return self._truth_prefix + str(time.monotonic_ns()).encode() + b"}}\n\n"

    def _delta(self, delta_json: bytes) -> bytes:
        return self._pre + delta_json + self._post + self._close()

    def _event(self, obj: dict[str, Any]) -> bytes:
        return b"data: " + _dumps(obj)[:-1].encode() + self._close()

    def role(self) -> bytes:
        """The role-only first chunk real servers send; it carries no token."""
        return self._delta(b'{"role":"assistant","content":""}')

    def content(self, text: str) -> bytes:
        # the most frequent event of all: one expression, C-level string escaping
        return (self._pre + b'{"role":"assistant","content":' + _json_str(text).encode() + b"}"
                + self._post + self._close())

    def reasoning(self, text: str, *, index: int = 0, signature: str | None = None) -> bytes:
        return self._delta(_dumps(_reasoning_delta(text, index, signature)).encode())

    def tool_call(self, arguments: str, *, index: int = 0, call_id: str | None = None,
                  name: str | None = None) -> bytes:
        """A piece of tool call `index`; the first piece of a call carries its id and function name."""
        call: dict[str, Any] = {"index": index}
        if call_id is not None:
            call.update(id=call_id, type="function", function={"name": name, "arguments": arguments})
            delta: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        else:
            call["function"] = {"arguments": arguments}
            delta = {"tool_calls": [call]}
        return self._delta(_dumps(delta).encode())

    def finish(self, reason: str) -> bytes:
        return self._event({**self._base, "choices": [{
            "index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": reason,
            "native_finish_reason": reason, "logprobs": None}]})

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._event({**self._base, "choices": [], "usage": usage})

    def error(self, code: int, message: str, provider_name: str) -> bytes:
        """OpenRouter's mid-stream error: top-level `error` and a choice finishing with "error"."""
        return self._event({
            **self._base,
            "error": {"code": code, "message": message, "metadata": {"provider_name": provider_name}},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                         "native_finish_reason": "error", "logprobs": None}],
        })

    def malformed(self, text: str) -> bytes:
        """A data line whose JSON is cut off (an upstream proxy truncating an event)."""
        full = self.content(text)
        return full[: max(len(self._pre) + 12, len(full) // 2)] + b"\n\n"


def completion_body(*, gen_id: str, created: int, model: str, provider_name: str, content: str,
                    reasoning: str | None, finish_reason: str, usage: dict[str, Any],
                    tool_calls: tuple[tuple[str, str, str], ...] = (),
                    reasoning_details: list[dict[str, Any]] | None = None,
                    truth: tuple[int, int] | None = None) -> bytes:
    """A non-streamed chat.completion; `tool_calls` are (id, name, arguments)."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None,
                               "reasoning": reasoning}
    if reasoning:
        message["reasoning_details"] = reasoning_details or [
            {"type": "reasoning.text", "text": reasoning, "index": 0, "format": "unknown"}]
    if tool_calls:
        message["content"] = None
        message["tool_calls"] = [{"index": i, "id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": arguments}}
                                 for i, (call_id, name, arguments) in enumerate(tool_calls)]
    body: dict[str, Any] = {
        "id": gen_id, "object": "chat.completion", "created": created, "model": model,
        "provider": provider_name, "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason,
                     "native_finish_reason": finish_reason, "logprobs": None}],
        "usage": usage,
    }
    if truth is not None:
        body[TRUTH_FIELD] = {"recv_ns": truth[0], "sent_ns": truth[1]}
    return _dumps(body).encode()


def _model_price(model: ModelSpec) -> dict[str, str]:
    return {"prompt": per_token(model.pricing.prompt), "completion": per_token(model.pricing.completion),
            "request": "0", "image": "0"}


def _architecture() -> dict[str, Any]:
    return {"modality": "text->text", "input_modalities": ["text"], "output_modalities": ["text"],
            "tokenizer": "Other", "instruct_type": None}


def _supported_parameters(model: ModelSpec) -> list[str]:
    params = ["max_tokens", "temperature", "seed", "stop", "tools", "tool_choice", "min_tokens",
              "response_format"]
    if model.reasoning:
        params += ["reasoning", "include_reasoning"]
    return params


def models_body(models: list[ModelSpec]) -> bytes:
    """GET /models: OpenRouter's fields plus `object`/`owned_by`, which the OpenAI SDK expects."""
    return _dumps({"object": "list", "data": [{
        "id": m.id, "object": "model", "owned_by": m.id.split("/", 1)[0], "name": m.name,
        "created": m.created, "description": m.description, "context_length": m.context_length,
        "architecture": _architecture(), "pricing": _model_price(m),
        "supported_parameters": _supported_parameters(m),
    } for m in models]}).encode()


#: Standard normal quantiles of the percentiles OpenRouter publishes.
_Z = {"p50": 0.0, "p75": 0.6744897501960817, "p90": 1.2815515655446004, "p99": 2.3263478740408408}


def _latency_last_30m(prov: ProviderSpec) -> dict[str, float]:
    """The profile's TTFT lognormal at OpenRouter's percentiles, in milliseconds (its unit for
    `latency_last_30m`: time to the first token). Queueing under load comes on top, as in the real
    figures, which are measured; these are the profile's idle-farm values."""
    ttft = prov.profile.ttft
    sigma = math.log(ttft.p99_ms / ttft.median_ms) / _Z["p99"] if ttft.p99_ms > ttft.median_ms else 0.0
    return {k: round(ttft.median_ms * math.exp(sigma * z), 1) for k, z in _Z.items()}


def _throughput_last_30m(model: ModelSpec, prov: ProviderSpec) -> dict[str, float]:
    """Output tokens per second as OpenRouter defines its throughput (tokens over the generation time,
    TTFT included), for a typical answer of the profile: pXX is the speed XX % of requests reach, so
    p99 is the slowest (the TTFT at its pXX, the decode speed at its matching low quantile)."""
    decode = prov.profile.decode
    tokens = (model.output_tokens.min + model.output_tokens.max) / 2
    if model.reasoning:
        tokens += getattr(prov.profile.reasoning, model.default_effort)
    latency = _latency_last_30m(prov)
    out = {}
    for k, z in _Z.items():
        speed = decode.tokens_per_s * math.exp(-z * decode.request_jitter)
        out[k] = round(tokens / (latency[k] / 1000.0 + tokens / speed), 1)
    return out


def endpoints_body(model: ModelSpec) -> bytes:
    """GET /models/{author}/{slug}/endpoints: one entry per provider; `tag` is the provider slug."""
    endpoints = []
    for slug, prov in model.providers.items():
        price: Pricing = model.price_of(prov)
        endpoints.append({
            "name": f"{prov.name} | {model.id}", "model_name": model.name,
            "context_length": model.context_length,
            "pricing": {"prompt": per_token(price.prompt), "completion": per_token(price.completion),
                        "request": "0", "image": "0"},
            "provider_name": prov.name, "tag": slug, "quantization": prov.quantization,
            "max_completion_tokens": prov.max_completion_tokens, "max_prompt_tokens": None,
            "supported_parameters": _supported_parameters(model), "status": 0,
            "uptime_last_30m": prov.uptime_last_30m,
            "latency_last_30m": _latency_last_30m(prov),
            "throughput_last_30m": _throughput_last_30m(model, prov),
        })
    return _dumps({"data": {
        "id": model.id, "name": model.name, "created": model.created, "description": model.description,
        "architecture": _architecture(), "endpoints": endpoints,
    }}).encode()
