"""The recorder never raises: whole random responses (status, headers, body bytes cut at random points)
go in, a `StreamResult` with a valid outcome and error class comes out, and every number in it is usable
(finite, non-negative where it must be, strict JSON).

Bodies are built from what a server can send: SSE events (data, comments, other fields, `[DONE]`, CR/LF
variants, a BOM) whose data are chunk-shaped JSON with any value in any place, weird numbers (NaN,
Infinity, 1e308, 1e999, -1, 400- and 5,000-digit integers), nesting up to 100,000 deep, and raw bytes.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.jsonwire import dumps_compact
from monitor.outcomes import ErrorClass, Outcome
from monitor.recorder import INTERNAL_ERROR_PREFIX, StreamRecorder, StreamResult
from monitor.usage import MAX_COST_USD, MAX_TOKENS

MS = 1_000_000
T0 = 1_000 * MS

WEIRD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e308", "-1e308", "1e999", "-1", "0", "1", "5", "2.5", "-0.0",
                 "12.0", "1" + "0" * 400, "9" * 5000, "9223372036854775808", "-9223372036854775809", "true"]
KEYS = ["choices", "delta", "content", "reasoning", "reasoning_content", "reasoning_details", "tool_calls",
        "function", "name", "arguments", "role", "finish_reason", "usage", "prompt_tokens", "completion_tokens",
        "completion_tokens_details", "reasoning_tokens", "prompt_tokens_details", "cached_tokens", "cost",
        "tokenpulse_truth", "sent_ns", "recv_ns", "error", "code", "message", "provider", "id", "text", "summary",
        "data", "type"]


def obj(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


def arr(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


scalars = st.one_of(
    st.sampled_from(WEIRD_NUMBERS + ["null", "false", '""', '"stop"', '"error"', '"x"']),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
    st.text(max_size=12).map(json.dumps),
)
deep_values = st.builds(deep, st.one_of(st.integers(1, 2_000), st.sampled_from([100_000])),
                        st.sampled_from(["list", "dict"]))
json_values = st.recursive(
    st.one_of(scalars, deep_values),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(arr),
        st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner), max_size=5).map(obj),
    ),
    max_leaves=12,
)


def shaped(keys: list[str], value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """An object with some of `keys`, each holding `value` or any JSON value."""
    return st.lists(st.tuples(st.sampled_from(keys), st.one_of(value, json_values)), max_size=len(keys)).map(obj)


token_values = st.one_of(st.sampled_from(['"tok"', '"x y"', "[]", '[{"text":"r"}]', '[{"function":{"name":"f"}}]']),
                         scalars)
deltas = shaped(["content", "reasoning", "reasoning_content", "reasoning_details", "tool_calls", "role"], token_values)
choice_objs = shaped(["delta", "finish_reason", "index"], st.one_of(deltas, scalars))
usages = shaped(["prompt_tokens", "completion_tokens", "cost", "total_tokens", "completion_tokens_details",
                 "prompt_tokens_details"],
                st.one_of(st.sampled_from(WEIRD_NUMBERS), shaped(["reasoning_tokens", "cached_tokens"],
                                                                 st.sampled_from(WEIRD_NUMBERS))))
truths = shaped(["sent_ns", "recv_ns"], st.one_of(st.sampled_from(WEIRD_NUMBERS), st.integers(-5, 2**64).map(str)))
errors = shaped(["code", "message", "metadata"], json_values)
chunks = shaped(
    ["choices", "usage", "tokenpulse_truth", "error", "provider", "id", "object"],
    st.one_of(st.lists(st.one_of(choice_objs, json_values), max_size=3).map(arr), usages, truths, errors, scalars),
)
#: A chunk that carries a token, so that what comes with it (ground truth, usage) is read as well.
token_chunks = st.builds(
    lambda delta, extra: obj([("choices", arr([obj([("delta", delta)])]))] + extra),
    st.sampled_from(['{"content":"t"}', '{"reasoning":"r"}', '{"tool_calls":[{"function":{"name":"f"}}]}']),
    st.lists(st.tuples(st.sampled_from(["tokenpulse_truth", "usage", "provider", "id"]),
                       st.one_of(truths, usages, json_values)), max_size=3),
)
chunks = st.one_of(chunks, token_chunks)

events = st.one_of(
    st.one_of(chunks, json_values, st.just("[DONE]"), st.text(max_size=20)).map(lambda d: f"data: {d}\n\n".encode()),
    st.sampled_from([b": OPENROUTER PROCESSING\n\n", b"data: [DONE]\n\n", b"event: error\n", b"id: 7\n",
                     b"retry: 10\n", b"data\n\n", b"\n", b"\r\n", b"\r", b"data:", b"\xef\xbb\xbf"]),
    st.binary(max_size=40),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    body = b"".join(draw(st.lists(events, max_size=12)))
    if draw(st.booleans()):
        body = body.replace(b"\n", draw(st.sampled_from([b"\r\n", b"\r"])))
    return body


header_names = st.one_of(st.sampled_from(["content-type", "Content-Type", "x-generation-id", "retry-after",
                                          "X-Generation-Id"]), st.text(max_size=8))
header_values = st.one_of(st.sampled_from(["text/event-stream", "text/event-stream; charset=utf-8",
                                           "TEXT/EVENT-STREAM", "application/json", "text/html", "", "nan", "-1",
                                           "1e999", "120", "gen-1"]), st.text(max_size=30))
heads = st.tuples(st.one_of(st.sampled_from([200, 200, 200, 429, 500, 502, 400, 204, 301]), st.integers(0, 999)),
                  st.lists(st.tuples(header_names, header_values), max_size=4))
endings = st.one_of(st.just("eof"), st.just("none"), st.sampled_from(list(ErrorClass)))


def check(result: StreamResult) -> None:
    assert isinstance(result, StreamResult)
    assert result.outcome in (Outcome.OK, Outcome.ERROR)
    if result.outcome is Outcome.OK:
        assert result.error_class is None
    else:
        assert isinstance(result.error_class, ErrorClass)
        assert not (result.error_message or "").startswith(INTERNAL_ERROR_PREFIX), result.error_message
    for name in ("ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s", "output_tokens_per_s", "retry_after_s",
                 "truth_ttft_s"):
        value = getattr(result, name)
        assert value is None or (type(value) is float and math.isfinite(value)), (name, value)
    for name in ("prompt_tokens", "output_tokens", "reasoning_tokens", "cached_tokens"):
        value = getattr(result, name)
        assert value is None or (type(value) is int and 0 <= value <= MAX_TOKENS), (name, value)
    assert result.cost_usd is None or 0.0 <= result.cost_usd <= MAX_COST_USD
    if result.usage_invalid:
        assert result.cost_usd is None
    for series in (result.token_times_s, result.truth_lags_s or []):
        assert all(type(v) is float and math.isfinite(v) for v in series)
    record = result.to_dict(include_series=True)
    json.dumps(record, allow_nan=False)  # strict JSON, as measure --json and the JSONL need
    dumps_compact(record, newline=True)


def feed(head: tuple[int, list[tuple[str, str]]], body: bytes, cuts: list[int], ending: object) -> StreamResult:
    status, headers = head
    rec = StreamRecorder(T0, secrets=("sk-secret-key",), max_response_bytes=256 * 1024)
    rec.on_headers(T0 + MS, status, headers)
    t = T0 + 2 * MS
    start = 0
    for cut in sorted({min(c, len(body)) for c in cuts}) + [len(body)]:
        rec.on_bytes(t, body[start:cut])
        start = cut
        t += MS
    if ending == "eof":
        rec.on_eof(t)
    elif isinstance(ending, ErrorClass):
        rec.on_failure(t, ending, "the driver gave up")
    rec.on_bytes(t + MS, b"data: {}\n\n")  # bytes after the end are ignored, never an error
    return rec.result()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(heads, bodies(), st.lists(st.integers(0, 5_000), max_size=8), endings)
def test_any_response_gives_a_result(head: tuple[int, list[tuple[str, str]]], body: bytes, cuts: list[int],
                                     ending: object) -> None:
    check(feed(head, body, cuts, ending))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(chunks, json_values), min_size=1, max_size=6), st.lists(st.integers(0, 400), max_size=6))
def test_any_chunks_on_a_proper_stream(datas: list[str], cuts: list[int]) -> None:
    """Every event is chunk-shaped data on a 200 event stream: the recorder's chunk logic sees them all."""
    body = b"".join(f"data: {d}\n\n".encode() for d in datas) + b"data: [DONE]\n\n"
    check(feed((200, [("content-type", "text/event-stream")]), body, cuts, "eof"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from([400, 401, 402, 429, 500, 502, 503, 524, 529]), st.one_of(errors, json_values, chunks),
       st.lists(st.integers(0, 400), max_size=4))
def test_any_error_body(status: int, body: str, cuts: list[int]) -> None:
    result = feed((status, [("content-type", "application/json")]), body.encode(), cuts, "eof")
    check(result)
    assert result.http_status == status and result.error_class is not None
