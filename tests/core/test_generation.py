"""core/generation.py: OpenRouter's /generation body parsed as hostile input, and when to ask again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenpulse.core.generation import (
    FAILED,
    FOUND,
    MAX_ATTEMPTS,
    MAX_BODY_BYTES,
    NOT_FOUND,
    RetryPolicy,
    TokenBucket,
    generation_url,
    outcome_of,
    parse_generation,
    retryable,
    valid_generation_id,
)

#: OpenRouter's documented example body (snake_case, as on the wire).
REAL = {"data": {
    "id": "gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG", "total_cost": 0.0015, "created_at": "2024-07-15T23:33:19.433273+00:00",
    "model": "sao10k/l3-stheno-8b", "streamed": True, "cancelled": False, "provider_name": "Infermatic",
    "latency": 1250, "moderation_latency": 50, "generation_time": 1200, "finish_reason": "stop",
    "native_finish_reason": "stop", "tokens_prompt": 10, "tokens_completion": 25, "native_tokens_prompt": 10,
    "native_tokens_completion": 30, "native_tokens_reasoning": 5, "native_tokens_cached": 3, "usage": 0.0015,
    "provider_responses": [{"provider_name": "Other", "status": 502, "latency": 80},
                           {"provider_name": "Infermatic", "status": 200, "latency": 1200}],
}}


def body(**data: Any) -> bytes:
    return json.dumps({"data": {**REAL["data"], **data}}).encode()


def test_real_body_gives_every_field_in_seconds_and_usd() -> None:
    s = parse_generation(json.dumps(REAL).encode())
    assert s is not None
    assert (s.latency_s, s.generation_time_s, s.moderation_latency_s) == (1.25, 1.2, 0.05)
    assert s.provider_name == "Infermatic" and s.total_cost_usd == 0.0015 and s.cancelled is False
    assert (s.native_prompt_tokens, s.native_completion_tokens, s.native_reasoning_tokens) == (10, 30, 5)
    assert (s.finish_reason, s.native_finish_reason) == ("stop", "stop")
    assert [(a.provider_name, a.status, a.latency_s) for a in s.provider_responses] == [
        ("Other", 502, 0.08), ("Infermatic", 200, 1.2)]
    assert s.native_token_ratio == pytest.approx(30 / 25)
    fields = s.to_fields()
    assert fields["or_latency_s"] == 1.25 and fields["or_total_cost_usd"] == 0.0015
    assert fields["or_provider_responses"][1] == {"provider_name": "Infermatic", "status": 200, "latency_s": 1.2}
    assert s.invalid == ()


@pytest.mark.parametrize("raw", [
    b"", b"null", b"[]", b"{}", b'{"data": null}', b'{"data": []}', b"{not json", b"\xff\xfe",
    b"[" * 100_000, b'{"data": {}}' + b" " * MAX_BODY_BYTES,  # nested past the parser; too large
])
def test_what_is_not_a_generation_document_is_none(raw: bytes) -> None:
    assert parse_generation(raw) is None


def test_empty_data_is_all_unknown() -> None:
    s = parse_generation(b'{"data": {}}')
    assert s is not None and s.latency_s is None and s.total_cost_usd is None and s.invalid == ()


@pytest.mark.parametrize(("field", "value"), [
    ("latency", "1250"), ("latency", -5), ("latency", 1e300), ("latency", True), ("generation_time", [1]),
    ("total_cost", -0.01), ("total_cost", 1e9), ("total_cost", "0.1"), ("native_tokens_completion", -1),
    ("native_tokens_completion", 1.5), ("native_tokens_prompt", 10**20), ("cancelled", "no"),
    ("provider_name", 7), ("finish_reason", {"a": 1}), ("provider_responses", "x"),
])
def test_invalid_figures_become_unknown_and_are_named(field: str, value: Any) -> None:
    s = parse_generation(body(**{field: value}))
    assert s is not None and field in s.invalid
    assert s.provider_name in ("Infermatic", None)


def test_nan_and_infinity_never_come_out() -> None:
    raw = b'{"data": {"latency": NaN, "generation_time": Infinity, "total_cost": -Infinity}}'
    s = parse_generation(raw)
    assert s is not None and s.latency_s is None and s.generation_time_s is None and s.total_cost_usd is None
    assert set(s.invalid) == {"latency", "generation_time", "total_cost"}


def test_strings_are_bounded_and_printable_attempts_capped() -> None:
    attempts = [{"provider_name": "P" * 1000 + "\x00\n", "status": 200 + i % 2, "latency": 1} for i in range(100)]
    s = parse_generation(body(provider_name="\x1b[31m" + "x" * 5000, provider_responses=attempts))
    assert s is not None and s.provider_name is not None
    assert len(s.provider_name) <= 120 and "\x1b" not in s.provider_name
    assert len(s.provider_responses) == MAX_ATTEMPTS and s.provider_responses_cut == 100 - MAX_ATTEMPTS
    assert all(len(a.provider_name or "") <= 120 for a in s.provider_responses)


def test_ids_and_urls() -> None:
    assert generation_url("https://openrouter.ai/api/v1/", "gen-abc_1") == \
        "https://openrouter.ai/api/v1/generation?id=gen-abc_1"
    for bad in ("", "gen abc", "gen-&id=x", "../key", "g" * 129, None, 5):
        assert not valid_generation_id(bad)
        if isinstance(bad, str):
            assert generation_url("https://openrouter.ai/api/v1", bad) is None


def test_retry_policy_backs_off_to_a_deadline() -> None:
    p = RetryPolicy(first_delay_s=0.5, factor=2.0, max_delay_s=4.0, deadline_s=10.0)
    delays, elapsed, attempt = [], 0.0, 0
    while (d := p.next_delay(attempt, elapsed)) is not None:
        delays.append(d)
        elapsed += d
        attempt += 1
    assert delays == [0.5, 1.0, 2.0, 4.0]  # the next 4.0 would pass 10 s
    assert sum(delays) <= 10.0


def test_outcomes_and_what_is_retried() -> None:
    assert all(retryable(s) for s in (None, 404, 408, 429, 500, 502, 503, 524))
    assert not any(retryable(s) for s in (200, 400, 401, 402, 403))
    assert outcome_of(200, json.dumps(REAL).encode())[0] == FOUND
    assert outcome_of(200, b"<html>")[0] == FAILED
    assert outcome_of(404, b"") == (NOT_FOUND, None)
    assert outcome_of(401, b"") == (FAILED, None)


def test_token_bucket_admits_the_rate() -> None:
    bucket = TokenBucket(2.0)
    admitted = sum(bucket.admit(t / 10) for t in range(100))  # 10 s, one offer every 0.1 s
    assert 20 <= admitted <= 22  # 2/s plus the initial burst of 2
    assert not TokenBucket(0.0).admit(0.0)
