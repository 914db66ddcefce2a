"""Who served a request (core/served.py), OpenRouter's error details (core/errordetail.py) and the
recorder's verdict on both: a pinned request served by another provider is `wrong_provider`, an
OpenRouter 429 is told apart from a provider's. Sans-IO: bytes and times in, results out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenpulse.core.errordetail import MAX_RATE_LIMIT_HEADERS, parse_error_detail, rate_limit_headers
from tokenpulse.core.outcomes import ErrorClass, ErrorOrigin, Outcome, counts_against_availability
from tokenpulse.core.recorder import StreamRecorder, StreamResult
from tokenpulse.core.served import ProviderPin, normalize_provider, served_matches_pin

MS = 1_000_000
SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def _chunk(provider: str | None, content: str = "hi", **top: Any) -> bytes:
    obj: dict[str, Any] = {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": content}}], **top}
    if provider is not None:
        obj["provider"] = provider
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _stream(provider: str | None, pin: str | None, *, names: tuple[str, ...] = ()) -> StreamResult:
    rec = StreamRecorder(0, pin=None if pin is None else ProviderPin.of(pin, names))
    rec.on_headers(10 * MS, 200, SSE)
    rec.on_bytes(20 * MS, _chunk(provider))
    rec.on_bytes(30 * MS, b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":'
                 + json.dumps(USAGE).encode() + b"}\n\ndata: [DONE]\n\n")
    rec.on_eof(31 * MS)
    return rec.result()


def _error(status: int, body: Any, headers: dict[str, str] | None = None, pin: str | None = None) -> StreamResult:
    rec = StreamRecorder(0, pin=None if pin is None else ProviderPin.of(pin))
    rec.on_headers(5 * MS, status, {**JSON, **(headers or {})})
    rec.on_bytes(6 * MS, body if isinstance(body, bytes) else json.dumps(body).encode())
    rec.on_eof(7 * MS)
    return rec.result()


@pytest.mark.parametrize(("pin", "served", "expected"), [
    ("deepinfra", "DeepInfra", True),
    ("deepinfra/fp8", "DeepInfra", True),
    ("google-vertex", "Google Vertex", True),
    ("nebius", "Nebius AI Studio", True),  # a prefix: the conservative side
    ("rate-limit", "Fault rate_limit", True),  # contained: still the conservative side
    ("deepinfra", "Together", False),
    ("fast-a", "Fast-A", True),
    ("deepinfra", "", None),
    ("deepinfra", None, None),
    ("deepinfra", ["DeepInfra"], None),
    ("deepinfra", "\u2603\u2603", None),  # nothing left after normalizing
])
def test_served_matches_pin_by_normalized_name(pin: str, served: object, expected: bool | None) -> None:
    assert served_matches_pin(pin, served) is expected


def test_listing_names_decide_when_known() -> None:
    pin = ProviderPin.of("nebius", ["Nebius AI Studio"])
    assert served_matches_pin(pin, "Nebius AI Studio") is True
    assert served_matches_pin(pin, "Nebius") is False  # the listing says otherwise: another endpoint
    assert normalize_provider("Deep-Infra/fp8") == "deepinfra"


def test_pinned_stream_served_by_another_provider_is_wrong_provider() -> None:
    result = _stream("Together", "deepinfra")
    assert result.outcome is Outcome.ERROR and result.error_class is ErrorClass.WRONG_PROVIDER
    assert result.provider == "Together"  # the served provider stays in the record
    assert "served by Together, pinned to deepinfra" in (result.error_message or "")
    assert result.ttft_s is not None  # the timings it reached are kept; metrics and reports skip them
    assert not counts_against_availability(result.error_class)


def test_matching_unnamed_and_unpinned_streams_stay_ok() -> None:
    assert _stream("DeepInfra", "deepinfra").ok
    assert _stream(None, "deepinfra").ok  # nothing said: nothing to judge
    assert _stream("Together", None).ok  # the router's choice: any provider is fine
    assert _stream("Nebius", "nebius", names=("Nebius AI Studio",)).error_class is ErrorClass.WRONG_PROVIDER


def test_a_mid_stream_error_of_another_provider_is_wrong_provider_with_its_details() -> None:
    rec = StreamRecorder(0, pin=ProviderPin.of("deepinfra"))
    rec.on_headers(MS, 200, SSE)
    rec.on_bytes(2 * MS, _chunk("Together"))
    err = {"code": 502, "message": "boom", "metadata": {"provider_name": "Together", "error_type": "upstream"}}
    rec.on_bytes(3 * MS, _chunk("Together", "", error=err))
    rec.on_eof(4 * MS)
    result = rec.result()
    assert result.error_class is ErrorClass.WRONG_PROVIDER and "(502: boom)" in (result.error_message or "")
    assert result.error_detail is not None and result.error_detail.error_type == "upstream"
    assert result.error_origin is ErrorOrigin.PROVIDER


def test_openrouter_429_is_told_apart_from_a_providers() -> None:
    own = _error(429, {"error": {"code": 429, "message": "Rate limit exceeded", "metadata": {}}},
                 {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1764640800000",
                  "Retry-After": "3"})
    assert own.error_class is ErrorClass.RATE_LIMITED and own.error_origin is ErrorOrigin.OPENROUTER
    assert own.error_detail is not None and own.error_detail.rate_limit == {
        "x-ratelimit-limit": "200", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1764640800000"}
    theirs = _error(429, {"error": {"code": 429, "message": "Provider returned error", "metadata": {
        "provider_name": "DeepInfra", "provider_code": 429, "error_type": "rate_limit"}}}, pin="deepinfra")
    assert theirs.error_class is ErrorClass.RATE_LIMITED and theirs.error_origin is ErrorOrigin.PROVIDER
    assert theirs.error_detail is not None
    assert (theirs.error_detail.provider_code, theirs.error_detail.provider_name) == ("429", "DeepInfra")
    # The same 429 named by another provider than the pin was not the pinned provider's.
    other = _error(429, {"error": {"code": 429, "message": "x", "metadata": {"provider_name": "Together"}}},
                   pin="deepinfra")
    assert other.error_class is ErrorClass.WRONG_PROVIDER
    record = theirs.to_dict()
    json.dumps(record)
    assert record["error_detail"] == {"origin": "provider", "error_type": "rate_limit", "provider_code": "429",
                                      "provider_name": "DeepInfra"}


def test_availability_details_and_plain_errors() -> None:
    body = {"error": {"code": 503, "message": "no", "availability": {"code": "capacity_exhausted",
                                                                      "retryable": True}}}
    result = _error(503, body)
    assert result.error_detail is not None
    assert (result.error_detail.availability_code, result.error_detail.retryable) == ("capacity_exhausted", True)
    assert result.error_origin is ErrorOrigin.UNKNOWN
    assert _error(500, b"<html><title>oops</title></html>").error_detail is None  # nothing to read
    assert _stream("DeepInfra", "deepinfra").to_dict()["error_detail"] is None


HOSTILE: list[Any] = [
    None, 7, "text", [], [{"metadata": 1}],
    {"metadata": "x", "availability": []},
    {"metadata": {"provider_name": {"nested": [1] * 10}, "error_type": ["a"], "provider_code": 10**400}},
    {"metadata": {"provider_name": "P" * 100_000, "error_type": "t\x00\n\u202e" * 1000, "provider_code": 1e999}},
    {"metadata": {"provider_name": "", "provider_code": True}, "availability": {"code": 5, "retryable": "yes"}},
]


@pytest.mark.parametrize("error", HOSTILE)
def test_hostile_error_details_are_bounded_and_typed(error: Any) -> None:
    headers = {f"x-ratelimit-h{i}": "v" * 10_000 for i in range(100)}
    detail = parse_error_detail(error, rate_limit_headers(headers), secrets=("sk-secret",))
    assert len(detail.rate_limit) == MAX_RATE_LIMIT_HEADERS
    assert all(len(v) <= 128 for v in detail.rate_limit.values())
    for text, limit in ((detail.provider_name, 256), (detail.error_type, 128), (detail.provider_code, 128),
                        (detail.availability_code, 128)):
        assert text is None or (isinstance(text, str) and len(text) <= limit and text.isprintable())
    assert detail.retryable in (None, True, False)
    json.dumps(detail.to_dict())


def test_hostile_bodies_through_the_recorder_never_raise_and_are_redacted() -> None:
    key = "sk-or-v1-" + "a" * 40
    for error in HOSTILE:
        rec = StreamRecorder(0, secrets=(key,), pin=ProviderPin.of("deepinfra"))
        rec.on_headers(MS, 429, {"x-ratelimit-remaining": key})
        rec.on_bytes(2 * MS, json.dumps({"error": error}, default=str).encode()[:200_000])
        rec.on_eof(3 * MS)
        result = rec.result()
        assert result.error_class in (ErrorClass.RATE_LIMITED, ErrorClass.WRONG_PROVIDER)
        assert key not in json.dumps(result.to_dict())
    detail = parse_error_detail({"metadata": {"provider_name": f"Evil {key}"}}, secrets=(key,))
    assert detail.provider_name is not None and key not in detail.provider_name
