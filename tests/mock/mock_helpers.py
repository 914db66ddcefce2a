"""Small test helpers for the mock: farms built in code, SSE reading over httpx and raw sockets.

Kept independent of tokenpulse.core.sse / tokenpulse.core.recorder on purpose: these tests check the mock's bytes,
so they must not share a parser with the code the mock exists to test.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tokenpulse.mock.farm import MockFarm, farm_from_data

REASONER = "test/reasoner"
PLAIN = "test/plain"

FAST: dict[str, Any] = {
    "ttft": {"median_ms": 5, "p99_ms": 10},
    "decode": {"tokens_per_s": 4000, "request_jitter": 0, "chunk_jitter": 0},
    "capacity": 64,
    "keepalive_ms": 0,
    "reasoning": {"low": 6, "medium": 12, "high": 30, "jitter": 0},
}


def profile(**overrides: Any) -> dict[str, Any]:
    """FAST with top-level keys replaced (errors=..., capacity=..., ttft=...)."""
    out = copy.deepcopy(FAST)
    out.update(overrides)
    return out


def farm_data(providers: dict[str, dict[str, Any]] | None = None, *, seed: int = 7,
              output: tuple[int, int] = (20, 40)) -> dict[str, Any]:
    """A farm with a reasoning model and a plain model, both served by `providers`
    (slug -> provider mapping; default: alpha, beta, gamma with the FAST profile)."""
    if providers is None:
        providers = {
            "alpha": {"name": "Alpha Cloud", "profile": profile(), "weight": 1},
            "beta": {"name": "Beta", "profile": profile(), "weight": 1,
                     "pricing": {"prompt": 1.0, "completion": 2.0}},
            "gamma": {"name": "Gamma", "profile": profile(), "weight": 1},
        }
    model = {"context_length": 8192, "pricing": {"prompt": 0.5, "completion": 1.5},
             "output_tokens": {"min": output[0], "max": output[1]}, "providers": providers}
    return {"seed": seed, "models": {
        REASONER: {**copy.deepcopy(model), "name": "Test Reasoner", "reasoning": True},
        PLAIN: {**copy.deepcopy(model), "name": "Test Plain", "reasoning": False},
    }}


def make_farm(providers: dict[str, dict[str, Any]] | None = None, **kw: Any) -> MockFarm:
    return farm_from_data(farm_data(providers, **kw), "test-farm")


def chat_body(model: str = PLAIN, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Say something, please."}], **fields}


@dataclass
class SSEResult:
    """A read stream: data payloads in order (JSON-decoded where possible), comments, raw bytes."""

    status: int
    headers: httpx.Headers
    data: list[str] = field(default_factory=list)
    comments: int = 0
    raw: bytes = b""

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [json.loads(d) for d in self.data if d != "[DONE]"]

    @property
    def done(self) -> bool:
        return bool(self.data) and self.data[-1] == "[DONE]"

    def content(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in self.chunks if c.get("choices"))

    def reasoning(self) -> str:
        return "".join(c["choices"][0]["delta"].get("reasoning") or ""
                       for c in self.chunks if c.get("choices"))

    def usage(self) -> dict[str, Any] | None:
        found = [c["usage"] for c in self.chunks if c.get("usage")]
        return found[-1] if found else None


def parse_sse(raw: bytes) -> tuple[list[str], int]:
    """Split an event stream (LF line ends, as the mock writes) into data payloads and comments."""
    data: list[str] = []
    comments = 0
    for block in raw.split(b"\n\n"):
        lines = [ln for ln in block.split(b"\n") if ln]
        payload = [ln[6:].decode() for ln in lines if ln.startswith(b"data: ")]
        comments += sum(1 for ln in lines if ln.startswith(b":"))
        if payload:
            data.append("\n".join(payload))
    return data, comments


def stream_chat(client: httpx.Client, body: dict[str, Any], path: str = "/api/v1/chat/completions",
                headers: dict[str, str] | None = None) -> SSEResult:
    """POST a streamed chat request and read the whole response."""
    with client.stream("POST", path, json={**body, "stream": True}, headers=headers) as resp:
        raw = resp.read()
    result = SSEResult(resp.status_code, resp.headers, raw=raw)
    if resp.status_code == 200:
        result.data, result.comments = parse_sse(raw)
    return result


def words(text: str) -> int:
    """Token count of mock text: one token per word."""
    return len(text.split())
