"""The mock's `GET /api/v1/generation?id=`: what it measured itself for each generation it served.

Why ground truth: the mock knows when it received a request (`Request.recv_ns`), when it wrote the first
token and when the stream ended, on the same CLOCK_MONOTONIC the client stamps with, so a test can check
that a client's TTFT minus OpenRouter's `latency` is the network (loopback: near zero), and that the
join of records to generations is right, field by field.

Like the real endpoint: OpenRouter's field names and units (milliseconds, USD), `{"data": {...}}`; 404
for a while after the generation ends (a seeded delay in `MockFarm.generation_ready_s`, so the client's
retry path runs), then 200; 404 for unknown ids and for another key's generations (a generation is
visible to the key that made it only; no key is a key too). The ledger is bounded (oldest forgotten
first), as a mock that runs for days must not grow without end.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tokenpulse.mock.behaviour import derive_rng

#: Generations remembered; older ones answer 404 as unknown.
MAX_GENERATIONS = 100_000


def key_digest(authorization: str) -> str:
    """Who may read a generation: a digest of the bearer token (the key itself is never stored)."""
    _, _, token = authorization.partition(" ")
    return hashlib.sha256(token.strip().encode()).hexdigest()[:16]


@dataclass(slots=True)
class GenerationEntry:
    ready_at: float  # loop.time() from which it answers 200
    key: str
    data: dict[str, Any]


class GenerationLedger:
    """Generations by id, readable `ready_s` after they end."""

    def __init__(self, seed: int, ready_s: tuple[float, float], capacity: int = MAX_GENERATIONS) -> None:
        self._seed = seed
        self._ready_s = ready_s
        self._capacity = capacity
        self._entries: OrderedDict[str, GenerationEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def finish(self, gen_id: str, *, ended_at: float, authorization: str, model: str, provider_name: str,
               latency_ms: float | None, generation_time_ms: float, prompt_tokens: int, completion_tokens: int,
               reasoning_tokens: int, cost_usd: float, finish_reason: str | None, cancelled: bool,
               streamed: bool, attempts: list[tuple[str, int]]) -> None:
        """Remember one generation as it ended (served, failed mid-stream, or cut off by the client).
        `attempts` are the (provider name, HTTP status) of every provider tried, the served one last."""
        lo, hi = self._ready_s
        delay = lo if hi <= lo else derive_rng(self._seed, "generation-ready", gen_id).uniform(lo, hi)
        tokens = {"tokens_prompt": prompt_tokens, "tokens_completion": completion_tokens,
                  "native_tokens_prompt": prompt_tokens, "native_tokens_completion": completion_tokens,
                  "native_tokens_reasoning": reasoning_tokens, "native_tokens_cached": 0}
        self._entries[gen_id] = GenerationEntry(ended_at + delay, key_digest(authorization), {
            "id": gen_id, "model": model, "streamed": streamed, "cancelled": cancelled,
            "provider_name": provider_name,
            "latency": None if latency_ms is None else round(latency_ms, 3),
            "generation_time": round(generation_time_ms, 3), "moderation_latency": None,
            **tokens, "total_cost": round(cost_usd, 12), "usage": round(cost_usd, 12),
            "finish_reason": finish_reason, "native_finish_reason": finish_reason,
            "provider_responses": [{"provider_name": name, "status": status} for name, status in attempts],
        })
        self._entries.move_to_end(gen_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def lookup(self, gen_id: str, authorization: str, now: float) -> tuple[int, bytes]:
        """(status, body) of `GET /generation?id=gen_id`."""
        entry = self._entries.get(gen_id)
        if entry is None or entry.key != key_digest(authorization) or now < entry.ready_at:
            return 404, _error(404, f"Generation {gen_id[:80]} not found")
        return 200, json.dumps({"data": entry.data}).encode()


def _error(status: int, message: str) -> bytes:
    return json.dumps({"error": {"code": status, "message": message}}).encode()
