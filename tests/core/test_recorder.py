"""Chat-stream recorder on byte fixtures: every case DESIGN.md §2-§4 says it must get right."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import ERROR_BODY_LIMIT, StreamRecorder, StreamResult, failure_result

MS = 1_000_000
T0 = 5_000 * MS  # an arbitrary monotonic origin: results must be relative to it
SSE = {"content-type": "text/event-stream; charset=utf-8"}


def chunk(delta: dict | None = None, *, finish: str | None = None, **top: object) -> bytes:
    obj: dict[str, object] = {"id": "gen-1", "object": "chat.completion.chunk", "model": "m", **top}
    if delta is not None or finish is not None:
        obj["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
         "completion_tokens_details": {"reasoning_tokens": 2}, "prompt_tokens_details": {"cached_tokens": 4},
         "cost": 0.0000031}
DONE = b"data: [DONE]\n\n"


def record(script: Sequence[tuple[float, bytes]], *, status: int = 200, headers: dict | None = None,
           eof_ms: float | None = None, **kwargs: object) -> StreamResult:
    """Feed (ms after t0, bytes) pairs; the head arrives at 1 ms."""
    rec = StreamRecorder(T0, **kwargs)  # type: ignore[arg-type]
    rec.on_headers(T0 + 1 * MS, status, SSE if headers is None else headers)
    last = 1.0
    for t_ms, data in script:
        rec.on_bytes(T0 + int(t_ms * MS), data)
        last = t_ms
    rec.on_eof(T0 + int((eof_ms if eof_ms is not None else last + 1) * MS))
    return rec.result()


def happy_script() -> list[tuple[float, bytes]]:
    return [
        (5, b": OPENROUTER PROCESSING\n\n"),
        (10, chunk({"role": "assistant", "content": ""})),  # role-only: not a token
        (20, chunk({"content": None, "reasoning": "Let me"})),  # reasoning: first token (TTFT)
        (30, chunk({"content": "", "reasoning_details": [{"type": "reasoning.text", "text": " think"}]})),
        (40, chunk({"content": "Hello"}, provider="FastCo")),  # first content (TTFC)
        (50, chunk({"content": " world"})),
        (60, chunk({}, finish="stop")),
        (70, chunk(None, usage=USAGE, choices=[])),  # usage-only last chunk
        (80, DONE),
    ]


def test_happy_reasoning_stream() -> None:
    r = record(happy_script(), keep_text=True)
    assert r.outcome is Outcome.OK and r.error_class is None
    assert r.ttfb_s == pytest.approx(0.001)
    assert r.ttft_s == pytest.approx(0.020)
    assert r.ttfc_s == pytest.approx(0.040)
    assert r.e2e_s == pytest.approx(0.080)  # [DONE], not the close
    assert r.chunk_count == 4
    assert r.chunk_gaps_s == pytest.approx([0.010, 0.010, 0.010])
    assert (r.prompt_tokens, r.output_tokens, r.reasoning_tokens, r.cached_tokens) == (12, 5, 2, 4)
    assert r.cost_usd == pytest.approx(0.0000031)
    assert not r.tokens_estimated
    # TPOT = (last token - first token) / (output_tokens - 1); speed = tokens / decode time
    assert r.tpot_s == pytest.approx(0.030 / 4)
    assert r.output_tokens_per_s == pytest.approx(5 / 0.030)
    assert r.provider == "FastCo" and r.finish_reason == "stop" and r.generation_id == "gen-1"
    assert r.keepalive_count == 1
    assert r.text == "Hello world"


def test_times_are_relative_to_t0_and_stamped_at_receipt() -> None:
    # Two events in one read share the read's timestamp: time is taken at receipt, not at parse.
    r = record([(7, chunk({"content": "a"}) + chunk({"content": "b"})), (9, chunk({}, finish="stop") + DONE)])
    assert r.token_times_s == pytest.approx([0.007, 0.007])


def test_series_are_rounded_to_the_microsecond_when_made() -> None:
    """Token times to 1 µs and ground-truth lags to 0.1 µs, rounded to nearest, exactly (the shortest
    text of each float is its decimal): the JSONL records write them as they are."""
    truth = {"recv_ns": T0, "sent_ns": T0 + 7_000_000 - 1_234}
    rec = StreamRecorder(T0)
    rec.on_headers(T0 + MS, 200, SSE)
    rec.on_bytes(T0 + 7_000_499, chunk({"content": "a"}, tokenpulse_truth=truth))
    rec.on_bytes(T0 + 8_123_500, chunk({"content": "b"}, tokenpulse_truth=truth) + chunk({}, finish="stop") + DONE)
    rec.on_eof(T0 + 9 * MS)
    r = rec.result()
    assert [repr(t) for t in r.token_times_s] == ["0.007", "0.008124"]
    assert r.truth_lags_s is not None and [repr(t) for t in r.truth_lags_s] == ["1.7e-06", "0.0011247"]


def test_generation_id_header_wins_over_chunk_id() -> None:
    r = record(happy_script(), headers={**SSE, "X-Generation-Id": "gen-header"})
    assert r.generation_id == "gen-header"


def test_tool_calls_count_as_tokens() -> None:
    call = {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}
    r = record([(10, chunk({"role": "assistant", "content": None})), (15, chunk(call)),
                (20, chunk({}, finish="tool_calls")), (21, DONE)])
    assert r.ok and r.ttft_s == pytest.approx(0.015) and r.ttfc_s is None
    assert r.finish_reason == "tool_calls"


def test_vllm_reasoning_content_field_counts() -> None:
    r = record([(10, chunk({"reasoning_content": "hmm"})), (20, chunk({"content": "x"}, finish="stop")), (21, DONE)])
    assert r.ttft_s == pytest.approx(0.010) and r.ttfc_s == pytest.approx(0.020)


def test_empty_and_null_content_are_not_tokens() -> None:
    r = record([(10, chunk({"content": ""})), (20, chunk({"content": None})), (30, chunk({"content": "x"})),
                (40, chunk({}, finish="stop")), (41, DONE)])
    assert r.ttft_s == pytest.approx(0.030)


def test_missing_usage_estimates_and_says_so() -> None:
    r = record([(10, chunk({"content": "abcdefgh"})), (20, chunk({"content": "ijkl"}, finish="stop")), (21, DONE)],
               prompt_tokens_hint=9)
    assert r.tokens_estimated
    assert r.output_tokens == 3  # 12 characters / 4
    assert r.prompt_tokens == 9


def test_mid_stream_error_is_a_failure() -> None:
    err = {"error": {"code": 502, "message": "Provider disconnected"}}
    r = record([(10, chunk({"content": "partial"})), (20, chunk({"content": ""}, finish="error", **err))])
    assert r.outcome is Outcome.ERROR and r.error_class is ErrorClass.MID_STREAM_ERROR
    assert "Provider disconnected" in (r.error_message or "")
    assert r.http_status == 200


def test_finish_reason_error_without_error_object() -> None:
    r = record([(10, chunk({"content": "x"})), (20, chunk({}, finish="error"))])
    assert r.error_class is ErrorClass.MID_STREAM_ERROR


def test_closed_without_done_or_finish_is_truncated() -> None:
    r = record([(10, chunk({"content": "x"})), (20, chunk({"content": "y"}))])
    assert r.error_class is ErrorClass.TRUNCATED
    assert r.ttft_s == pytest.approx(0.010)  # what was measured is kept


def test_closed_inside_an_event_is_truncated() -> None:
    r = record([(10, chunk({"content": "x"})), (20, b'data: {"choices": [')])
    assert r.error_class is ErrorClass.TRUNCATED


def test_finish_reason_without_done_is_ok() -> None:
    # Some OpenAI-compatible servers close right after the finish chunk.
    r = record([(10, chunk({"content": "x"}, finish="stop"))])
    assert r.ok


def test_no_token_at_all_is_empty_response() -> None:
    r = record([(10, chunk({"role": "assistant", "content": ""})), (20, chunk({}, finish="stop")), (21, DONE)])
    assert r.error_class is ErrorClass.EMPTY_RESPONSE and r.ttft_s is None


def test_invalid_json_is_a_protocol_error() -> None:
    r = record([(10, chunk({"content": "x"})), (20, b"data: {not json}\n\n"), (30, DONE)])
    assert r.error_class is ErrorClass.PROTOCOL_ERROR


def test_wrong_content_type_is_a_protocol_error() -> None:
    body = json.dumps({"choices": [{"message": {"content": "hi"}}]}).encode()
    r = record([(10, body)], headers={"content-type": "application/json"})
    assert r.error_class is ErrorClass.PROTOCOL_ERROR and "text/event-stream" in (r.error_message or "")


@pytest.mark.parametrize(("status", "expected"), [
    (400, ErrorClass.CLIENT_ERROR), (401, ErrorClass.CLIENT_ERROR), (402, ErrorClass.CLIENT_ERROR),
    (403, ErrorClass.CLIENT_ERROR), (404, ErrorClass.CLIENT_ERROR), (413, ErrorClass.CLIENT_ERROR),
    (422, ErrorClass.CLIENT_ERROR), (408, ErrorClass.SERVER_ERROR), (429, ErrorClass.RATE_LIMITED),
    (500, ErrorClass.SERVER_ERROR), (502, ErrorClass.SERVER_ERROR), (503, ErrorClass.SERVER_ERROR),
    (524, ErrorClass.SERVER_ERROR), (529, ErrorClass.SERVER_ERROR),
])
def test_json_error_bodies(status: int, expected: ErrorClass) -> None:
    body = json.dumps({"error": {"code": status, "message": "nope", "metadata": {"raw": "x"}}}).encode()
    r = record([(10, body)], status=status, headers={"content-type": "application/json", "retry-after": "7"})
    assert r.error_class is expected and r.http_status == status
    assert r.error_message == f"HTTP {status}: {status}: nope"
    assert r.retry_after_s == 7.0


def test_html_error_body_uses_its_title() -> None:
    body = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body></html>"
    r = record([(10, body[:40]), (11, body[40:])], status=502, headers={"content-type": "text/html"})
    assert r.error_class is ErrorClass.SERVER_ERROR and r.error_message == "HTTP 502: 502 Bad Gateway"


def test_secrets_are_redacted_from_messages() -> None:
    key = "sk-or-v1-canary-0123456789"
    body = json.dumps({"error": {"code": 401, "message": f"bad key {key}"}}).encode()
    r = record([(10, body)], status=401, headers={"content-type": "application/json"}, secrets=[key])
    assert key not in json.dumps(r.to_dict())


def test_byte_cap_is_a_protocol_error() -> None:
    r = record([(10, chunk({"content": "x" * 200})), (20, chunk({"content": "y" * 200}))], max_response_bytes=300)
    assert r.error_class is ErrorClass.PROTOCOL_ERROR and "exceeded" in (r.error_message or "")


def test_transport_failure_keeps_what_was_measured() -> None:
    rec = StreamRecorder(T0)
    rec.on_headers(T0 + MS, 200, SSE)
    rec.on_bytes(T0 + 10 * MS, chunk({"content": "x"}))
    rec.on_failure(T0 + 500 * MS, ErrorClass.TIMEOUT_IDLE, "timeout idle after 0.5 s")
    r = rec.result()
    assert r.error_class is ErrorClass.TIMEOUT_IDLE and r.ttft_s == pytest.approx(0.010)
    assert r.e2e_s == pytest.approx(0.5)


def test_ground_truth_lags() -> None:
    truth = {"recv_ns": T0 + 1 * MS, "sent_ns": T0 + 9 * MS}
    r = record([(10, chunk({"content": "x"}, tokenpulse_truth=truth)), (11, chunk({}, finish="stop")), (12, DONE)])
    assert r.truth_ttft_s == pytest.approx(0.008)
    assert r.truth_lags_s == pytest.approx([0.001])


def test_to_dict_has_the_measure_json_fields() -> None:
    d = record(happy_script()).to_dict()
    for key in ("outcome", "error_class", "http_status", "ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s",
                "output_tokens_per_s", "prompt_tokens", "output_tokens", "reasoning_tokens", "tokens_estimated",
                "chunk_count", "provider", "finish_reason", "generation_id"):
        assert key in d
    assert d["outcome"] == "ok" and d["error_class"] is None
    json.dumps(d)


def test_no_token_counts_are_invented_for_a_request_that_failed_before_its_first_token() -> None:
    body = json.dumps({"error": {"code": 502, "message": "upstream down"}}).encode()
    r = record([(10, body)], status=502, headers={"content-type": "application/json"}, prompt_tokens_hint=40)
    assert (r.prompt_tokens, r.output_tokens, r.reasoning_tokens) == (None, None, None)
    assert not r.tokens_estimated


# ------------------------------------------------------------------ hostile input: never an exception
# Each case of issue #14 §2, with the class it now gets (tests/core/test_recorder_hostile.py feeds random
# responses of the same kinds).
TOKEN = chunk({"content": "abcdefgh"})
STOP = chunk({}, finish="stop")


def raw(text: str) -> bytes:
    return b"data: " + text.encode() + b"\n\n"


def test_choices_of_the_wrong_type_are_not_tokens() -> None:
    for value in ("5", '"abc"', '{"delta": {"content": "x"}}', "true", "null"):
        r = record([(10, raw(f'{{"choices": {value}}}')), (20, DONE)])
        assert r.error_class is ErrorClass.EMPTY_RESPONSE, value
        r = record([(5, TOKEN), (10, raw(f'{{"choices": {value}}}')), (15, STOP), (20, DONE)])
        assert r.ok, value


def test_wrong_types_inside_a_choice_are_ignored() -> None:
    bad = ('{"choices": [5, "x", {"delta": 7}, {"delta": {"content": 5, "reasoning": [1], '
           '"reasoning_details": 3, "tool_calls": {"a": 1}}, "finish_reason": [1, 2]}]}')
    r = record([(10, raw(bad)), (20, DONE)])
    assert r.error_class is ErrorClass.EMPTY_RESPONSE and r.finish_reason is None
    calls = '{"choices": [{"delta": {"tool_calls": [{"function": {"name": 5, "arguments": [[1]]}}, 7]}}]}'
    r = record([(10, raw(calls)), (15, STOP), (20, DONE)])
    assert r.ok and r.ttft_s == pytest.approx(0.010)  # a tool call is a token, whatever its fields hold


@pytest.mark.parametrize("depth", [1_100, 100_000])
def test_json_nested_past_the_recursion_limit_is_a_protocol_error(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        r = record([(5, TOKEN), (10, raw(text)), (20, DONE)])
        assert r.error_class is ErrorClass.PROTOCOL_ERROR and "invalid JSON" in (r.error_message or "")


@pytest.mark.parametrize("depth", [900, 100_000])
def test_nested_error_bodies_keep_their_http_class(depth: int) -> None:
    for body in ("[" * depth + "]" * depth, '{"error": ' + "[" * depth + "]" * depth + "}"):
        r = record([(10, body.encode())], status=500, headers={"content-type": "application/json"})
        assert r.error_class is ErrorClass.SERVER_ERROR and (r.error_message or "").startswith("HTTP 500")


def test_nested_mid_stream_error_gives_a_bounded_message() -> None:
    nested = "[" * 900 + "]" * 900
    for error in (nested, f'{{"code": {nested}, "message": {nested}}}', "1" + "0" * 400):
        r = record([(5, TOKEN), (10, raw(f'{{"error": {error}}}'))])
        assert r.error_class is ErrorClass.MID_STREAM_ERROR and len(r.error_message or "") <= 300


@pytest.mark.parametrize("stamp", ['"x"', "NaN", "Infinity", "1e999", "1e20", "12.5", "-5", "true", "[1]", "null",
                                   "1" + "0" * 400, "9223372036854775808"])
def test_ground_truth_that_is_not_an_int64_is_dropped(stamp: str) -> None:
    good = f'{{"recv_ns": {T0}, "sent_ns": {T0 + MS}}}'
    bad_sent = f'{{"recv_ns": {T0}, "sent_ns": {stamp}}}'
    bad_recv = f'{{"recv_ns": {stamp}, "sent_ns": {T0}}}'  # recv_ns is read from the first event only
    token = '{"choices": [{"delta": {"content": "x"}}], "tokenpulse_truth": %s}'
    for first, second in ((good, bad_sent), (bad_sent, good), (bad_recv, good), (stamp, good), (good, stamp)):
        r = record([(5, raw(token % first)), (10, raw(token % second)), (15, STOP), (20, DONE)])
        assert r.ok and r.truth_ttft_s is None and r.truth_lags_s is None, (first, second)


def test_ground_truth_missing_from_one_token_event_is_dropped() -> None:
    truth = {"recv_ns": T0, "sent_ns": T0 + MS}
    r = record([(5, chunk({"content": "a"}, tokenpulse_truth=truth)), (10, chunk({"content": "b"},
                tokenpulse_truth={"recv_ns": T0})), (15, STOP), (20, DONE)])
    assert r.ok and r.truth_lags_s is None


def test_identifiers_of_the_wrong_type_or_length() -> None:
    stop = raw('{"choices": [{"delta": {}, "finish_reason": "stop"}]}')
    r = record([(5, chunk({"content": "a"}, provider=["x"], id=5)), (10, stop), (20, DONE)],
               headers={**SSE, "x-generation-id": ""})
    assert r.ok and r.provider is None and r.generation_id is None
    r = record([(5, chunk({"content": "a"}, provider="p" * 10_000)), (10, chunk({}, finish="s" * 10_000)), (20, DONE)])
    assert r.ok and len(r.provider or "") == 256 and len(r.finish_reason or "") == 256


INVALID_NUMBERS = ["NaN", "Infinity", "-Infinity", "-1", "1e308", "1e999", "1" + "0" * 400, '"12"', "true", "[1]",
                   "{}"]


@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens", "cost", "reasoning_tokens",
                                   "cached_tokens"])
@pytest.mark.parametrize("number", INVALID_NUMBERS)
def test_invalid_usage_is_flagged_and_never_used(field: str, number: str) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "cost": 0.0000031,
             "completion_tokens_details": {"reasoning_tokens": 2}, "prompt_tokens_details": {"cached_tokens": 4}}
    text = json.dumps({"choices": [], "usage": usage})
    place = {"reasoning_tokens": '"reasoning_tokens": 2', "cached_tokens": '"cached_tokens": 4',
             "prompt_tokens": '"prompt_tokens": 12', "completion_tokens": '"completion_tokens": 5',
             "cost": '"cost": 3.1e-06'}[field]
    assert place in text
    text = text.replace(place, place.split(":")[0] + ": " + number)
    r = record([(10, TOKEN), (20, STOP), (30, raw(text)), (40, DONE)], prompt_tokens_hint=9)
    assert r.ok and r.usage_invalid
    assert r.cost_usd is None and r.cached_tokens is None
    assert r.tokens_estimated and r.output_tokens == 2 and r.prompt_tokens == 9  # estimated, as without usage
    assert r.to_dict()["usage_invalid"] is True
    json.dumps(r.to_dict(), allow_nan=False)


@pytest.mark.parametrize("usage", ['{"completion_tokens": 2.5}', '{"prompt_tokens": 1e13}', '{"cost": 2e6}',
                                   "5", '"x"', "[1, 2]", "true"])
def test_usage_that_is_not_an_object_is_invalid(usage: str) -> None:
    r = record([(10, TOKEN), (20, STOP), (30, raw(f'{{"choices": [], "usage": {usage}}}')), (40, DONE)])
    assert r.ok and r.usage_invalid and r.tokens_estimated and r.cost_usd is None


def test_valid_usage_edge_values_are_kept() -> None:
    usage = {"prompt_tokens": 0, "completion_tokens": 5.0, "cost": 0, "completion_tokens_details": None,
             "prompt_tokens_details": None}
    r = record([(10, TOKEN), (20, STOP), (30, chunk(None, usage=usage, choices=[])), (40, DONE)])
    assert r.ok and not r.usage_invalid and not r.tokens_estimated
    assert (r.prompt_tokens, r.output_tokens, r.cost_usd, r.reasoning_tokens) == (0, 5, 0.0, None)
    assert type(r.output_tokens) is int


@pytest.mark.parametrize(("status", "content_type", "expected"), [
    (500, "text/plain", ErrorClass.SERVER_ERROR), (502, "text/html", ErrorClass.SERVER_ERROR),
    (429, "application/json", ErrorClass.RATE_LIMITED), (401, "application/json", ErrorClass.CLIENT_ERROR),
    (200, "application/json", ErrorClass.PROTOCOL_ERROR), (301, "text/html", ErrorClass.PROTOCOL_ERROR),
])
def test_an_endless_error_body_ends_the_request_at_its_cap(status: int, content_type: str,
                                                           expected: ErrorClass) -> None:
    """The recorder turns `finished` once the error body passes its cap, so the driver stops reading an
    endless body then (it would otherwise read until the TTFT deadline: timeout_ttft)."""
    rec = StreamRecorder(T0)
    rec.on_headers(T0 + MS, status, {"content-type": content_type})
    reads = 0
    while not rec.finished and reads < 100:
        rec.on_bytes(T0 + (2 + reads) * MS, b"<title>" * 2000)
        reads += 1
    assert rec.finished and reads * 14_000 <= ERROR_BODY_LIMIT + 14_000
    r = rec.result()
    assert r.error_class is expected and "body cut at" in (r.error_message or "")
    assert r.e2e_s == pytest.approx((1 + reads) / 1000)


def test_an_error_body_exactly_at_the_cap_is_read_whole() -> None:
    body = json.dumps({"error": {"code": 500, "message": "m" * (ERROR_BODY_LIMIT - 60)}}).encode()
    body += b" " * (ERROR_BODY_LIMIT - len(body))
    rec = StreamRecorder(T0)
    rec.on_headers(T0 + MS, 500, {"content-type": "application/json"})
    rec.on_bytes(T0 + 2 * MS, body)
    assert not rec.finished
    rec.on_eof(T0 + 3 * MS)
    assert rec.result().error_message == "HTTP 500: 500: " + "m" * (300 - len("HTTP 500: 500: ") - 1) + "…"


@pytest.mark.parametrize(("body", "message"), [
    (b"<HTML><TITLE lang=en>Gateway Timeout</TITLE>", "HTTP 504: Gateway Timeout"),
    (b"<title>" * 9000, "HTTP 504: " + ("<title>" * 29)[:200]),  # no </title>: the body's start
    (b"<title" * 9000, "HTTP 504: " + ("<title" * 34)[:200]),
])
def test_html_titles(body: bytes, message: str) -> None:
    r = record([(10, body)], status=504, headers={"content-type": "text/html"})
    assert r.error_class is ErrorClass.SERVER_ERROR and r.error_message == message


def test_failure_result_is_a_redacted_error_record() -> None:
    r = failure_result(T0, T0 + 5 * MS, ErrorClass.PROTOCOL_ERROR, "unexpected client error: boom sk-secret-123",
                       secrets=("sk-secret-123",))
    assert r.error_class is ErrorClass.PROTOCOL_ERROR and r.e2e_s == pytest.approx(0.005)
    assert "sk-secret-123" not in (r.error_message or "") and not r.ok
