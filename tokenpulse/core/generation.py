"""What OpenRouter measured for one request: the `GET /api/v1/generation?id=` body, and when to ask again.

Why sans-IO: the load test (gevent) and the prober (asyncio) both look generations up, and a body from
the network is hostile input like any other: it must give typed, bounded, finite figures or nothing,
and never an exception. The retry rule is a pure function of the attempt and the time spent, so both
loops wait alike and a test can walk it without a clock.

The body (OpenRouter's field names, docs "Get a generation"): `{"data": {"id", "latency",
"generation_time", "moderation_latency" (milliseconds), "provider_name", "provider_responses": [{
"provider_name", "status", "latency"}...] (one per attempt, fallbacks included), "native_tokens_prompt",
"native_tokens_completion", "native_tokens_reasoning", "native_tokens_cached", "tokens_prompt",
"tokens_completion" (normalized), "total_cost" (USD), "cancelled", "finish_reason",
"native_finish_reason", "streamed"}}`. Any of them may be null or absent. OpenRouter's `latency` is its
time to the first token; its throughput is output tokens over `generation_time`.

The record fields this gives (`GenerationStats.to_fields`) are the `or_*` names of the per-request
JSONL (docs/metrics.md): times in seconds, never milliseconds, so they sit beside ours unconverted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tokenpulse.core.redact import clip
from tokenpulse.core.usage import INVALID, cost_usd, token_count

#: The largest body parsed (a real one is ~2 KB; provider_responses can add a few hundred bytes each).
MAX_BODY_BYTES = 256 * 1024
#: provider_responses entries kept (a fallback chain longer than this is cut, and the cut counted).
MAX_ATTEMPTS = 16
#: A latency above a day is not a measurement.
_MAX_MS = 86_400_000.0
_MAX_TEXT = 120
#: Generation ids as OpenRouter and the mock issue them (`gen-…`); anything else is not looked up.
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class ProviderAttempt:
    """One provider OpenRouter tried for the request (the served one is the last with status 200)."""

    provider_name: str | None
    status: int | None
    latency_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"provider_name": self.provider_name, "status": self.status, "latency_s": self.latency_s}


@dataclass(frozen=True, slots=True)
class GenerationStats:
    """The figures of one generation; every one None when the body did not carry a usable value."""

    generation_id: str | None = None
    latency_s: float | None = None
    generation_time_s: float | None = None
    moderation_latency_s: float | None = None
    provider_name: str | None = None
    provider_responses: tuple[ProviderAttempt, ...] = ()
    provider_responses_cut: int = 0
    native_prompt_tokens: int | None = None
    native_completion_tokens: int | None = None
    native_reasoning_tokens: int | None = None
    native_cached_tokens: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_cost_usd: float | None = None
    cancelled: bool | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    #: Present figures that were not valid (NaN, negative, a string where a number goes), by field.
    invalid: tuple[str, ...] = ()

    def to_fields(self) -> dict[str, Any]:
        """The `or_*` record fields (JSONL, reports)."""
        return {
            "or_latency_s": self.latency_s,
            "or_generation_time_s": self.generation_time_s,
            "or_moderation_latency_s": self.moderation_latency_s,
            "or_provider_name": self.provider_name,
            "or_provider_responses": [a.to_dict() for a in self.provider_responses],
            "or_native_prompt_tokens": self.native_prompt_tokens,
            "or_native_completion_tokens": self.native_completion_tokens,
            "or_native_reasoning_tokens": self.native_reasoning_tokens,
            "or_native_cached_tokens": self.native_cached_tokens,
            "or_prompt_tokens": self.prompt_tokens,
            "or_completion_tokens": self.completion_tokens,
            "or_total_cost_usd": self.total_cost_usd,
            "or_cancelled": self.cancelled,
            "or_finish_reason": self.finish_reason,
            "or_native_finish_reason": self.native_finish_reason,
            "or_invalid": list(self.invalid),
        }

    @property
    def native_token_ratio(self) -> float | None:
        """Native completion tokens per normalized one (the provider's tokenizer against OpenRouter's
        count): 1 when they agree; None when either is missing or the normalized count is 0."""
        if self.native_completion_tokens is None or not self.completion_tokens:
            return None
        return self.native_completion_tokens / self.completion_tokens


def valid_generation_id(generation_id: object) -> bool:
    """An id worth looking up: a short token of URL-safe characters (never response text at large)."""
    return isinstance(generation_id, str) and _ID.match(generation_id) is not None


def generation_url(base_url: str, generation_id: str) -> str | None:
    """`{base_url}/generation?id=…` on the endpoint's own API root (so the key goes nowhere else), or
    None for an id that is not worth a request."""
    if not valid_generation_id(generation_id):
        return None
    return f"{base_url.rstrip('/')}/generation?id={quote(generation_id, safe='')}"


def parse_generation(body: bytes | str) -> GenerationStats | None:
    """The stats in a 200 body, or None when the body is not a generation document (not JSON, no
    `data` object, too large). Never raises; invalid figures become None and are named in `invalid`."""
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    data = doc.get("data") if type(doc) is dict else None
    if type(data) is not dict:
        return None
    invalid: list[str] = []

    def ms(key: str) -> float | None:
        return _seconds(data.get(key), key, invalid)

    def tokens(key: str) -> int | None:
        value = token_count(data.get(key))
        if value is INVALID:
            invalid.append(key)
            return None
        return value

    total = cost_usd(data.get("total_cost"))
    if total is INVALID:
        invalid.append("total_cost")
        total = None
    cancelled = data.get("cancelled")
    if cancelled is not None and type(cancelled) is not bool:
        invalid.append("cancelled")
        cancelled = None
    attempts, cut = _attempts(data.get("provider_responses"), invalid)
    return GenerationStats(
        generation_id=_text(data.get("id"), "id", invalid),
        latency_s=ms("latency"),
        generation_time_s=ms("generation_time"),
        moderation_latency_s=ms("moderation_latency"),
        provider_name=_text(data.get("provider_name"), "provider_name", invalid),
        provider_responses=attempts,
        provider_responses_cut=cut,
        native_prompt_tokens=tokens("native_tokens_prompt"),
        native_completion_tokens=tokens("native_tokens_completion"),
        native_reasoning_tokens=tokens("native_tokens_reasoning"),
        native_cached_tokens=tokens("native_tokens_cached"),
        prompt_tokens=tokens("tokens_prompt"),
        completion_tokens=tokens("tokens_completion"),
        total_cost_usd=total,
        cancelled=cancelled,
        finish_reason=_text(data.get("finish_reason"), "finish_reason", invalid),
        native_finish_reason=_text(data.get("native_finish_reason"), "native_finish_reason", invalid),
        invalid=tuple(invalid),
    )


def _seconds(value: Any, key: str, invalid: list[str]) -> float | None:
    """Milliseconds on the wire -> seconds; None when absent, and when invalid (named in `invalid`)."""
    if value is None:
        return None
    if type(value) in (int, float) and 0 <= value <= _MAX_MS:  # NaN fails the comparison
        return round(float(value) / 1000.0, 6)
    invalid.append(key)
    return None


def _text(value: Any, key: str, invalid: list[str]) -> str | None:
    """A short printable string (names, reasons), clipped; other types are invalid."""
    if value is None:
        return None
    if type(value) is not str:
        invalid.append(key)
        return None
    printable = "".join(c for c in value if c.isprintable())
    return clip(printable, _MAX_TEXT) or None


def _attempts(value: Any, invalid: list[str]) -> tuple[tuple[ProviderAttempt, ...], int]:
    if value is None:
        return (), 0
    if type(value) is not list:
        invalid.append("provider_responses")
        return (), 0
    out: list[ProviderAttempt] = []
    for item in value[:MAX_ATTEMPTS]:
        if type(item) is not dict:
            invalid.append("provider_responses")
            continue
        status = item.get("status")
        if not (type(status) is int and 100 <= status <= 999):
            status = None
        out.append(ProviderAttempt(_text(item.get("provider_name"), "provider_responses", invalid), status,
                                   _seconds(item.get("latency"), "provider_responses", invalid)))
    return tuple(out), max(0, len(value) - MAX_ATTEMPTS)


# ------------------------------------------------------------------------------------ asking again
#: Lookup results (the `status` field of a generations-*.jsonl line, and a metric label value).
FOUND = "found"
NOT_FOUND = "not_found"  # still 404 when the deadline passed
FAILED = "failed"  # a status or body that retrying will not fix (401, 403, an unparseable 200 ...)
DROPPED = "dropped"  # not looked up: the queue was full
SKIPPED = "skipped"  # not looked up: above the configured lookup rate
ABANDONED = "abandoned"  # still waiting when the process ended
STATUSES = (FOUND, NOT_FOUND, FAILED, DROPPED, SKIPPED, ABANDONED)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Ask `first_delay_s` after the stream ended, then back off (x `factor`, at most `max_delay_s`)
    while the answer is 404 (not yet written), 429 or 5xx, until `deadline_s` after the end."""

    first_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0
    deadline_s: float = 60.0

    def next_delay(self, attempt: int, elapsed_s: float) -> float | None:
        """Seconds to wait before attempt `attempt + 1` (attempt 0: the first ask, counted from the
        stream's end), or None once the deadline would pass."""
        delay = self.first_delay_s if attempt == 0 else min(self.max_delay_s,
                                                             self.first_delay_s * self.factor ** attempt)
        if elapsed_s + delay > self.deadline_s:
            return None
        return delay


@dataclass(slots=True)
class TokenBucket:
    """`rate` admissions per second with a burst of max(1, rate): which lookups fit the rate (`now`
    in seconds on any monotonic clock: the caller reads it)."""

    rate: float
    tokens: float = 0.0
    last: float | None = None

    def admit(self, now: float) -> bool:
        if self.rate <= 0:
            return False
        burst = max(1.0, self.rate)
        if self.last is None:
            self.tokens = burst
        else:
            self.tokens = min(burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def retryable(status: int | None) -> bool:
    """Worth asking again: not yet there (404), rate limited (429), a server error, or no answer (None)."""
    return status is None or status in (404, 408, 429) or 500 <= status <= 599


def outcome_of(status: int | None, body: bytes) -> tuple[str, GenerationStats | None]:
    """What one answer means: (FOUND, stats), or (NOT_FOUND | FAILED, None) when no retry is left.
    Callers retry first while `retryable(status)`."""
    if status == 200:
        stats = parse_generation(body)
        return (FOUND, stats) if stats is not None else (FAILED, None)
    return (NOT_FOUND if status == 404 else FAILED), None
