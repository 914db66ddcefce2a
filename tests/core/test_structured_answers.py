"""Tool calls and reasoning details, sans-IO: the accumulator, the merger, the schema judge, and the
recorder keeping them from a stream split anywhere."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenpulse.core.reasoning_details import MAX_DETAIL_CHARS, MAX_DETAILS, ReasoningDetailsMerger
from tokenpulse.core.recorder import StreamRecorder
from tokenpulse.core.schema_check import SchemaJudge, Verdict, judge_response, schema_problem
from tokenpulse.core.stats import proportion
from tokenpulse.core.structured import BUILTIN_RESPONSE_SCHEMA, BUILTIN_TOOLS
from tokenpulse.core.toolcalls import MAX_ARGUMENT_CHARS, MAX_TOOL_CALLS, ToolCallAccumulator

WEATHER = BUILTIN_TOOLS[0][2]
JUDGE = SchemaJudge(tool_schemas={name: params for name, _, params in BUILTIN_TOOLS},
                    answer_schema=BUILTIN_RESPONSE_SCHEMA)


def pieces(index: int, call_id: str, name: str, arguments: str, cuts: list[int]) -> list[dict[str, Any]]:
    """One call's deltas as OpenAI streams them: id and name first, then the arguments cut at `cuts`."""
    bounds = [0, *sorted({c % (len(arguments) + 1) for c in cuts}), len(arguments)]
    parts = [arguments[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return [first, *({"index": index, "function": {"arguments": p}} for p in parts)]


@settings(max_examples=60, deadline=None)
@given(cuts_a=st.lists(st.integers(0, 200), max_size=8), cuts_b=st.lists(st.integers(0, 200), max_size=8),
       order=st.randoms(use_true_random=False))
def test_interleaved_split_calls_reassemble_by_index(cuts_a: list[int], cuts_b: list[int], order: Any) -> None:
    a = json.dumps({"city": "Lisbon", "unit": "celsius"})
    b = json.dumps({"origin": "LIS", "destination": "BER", "date": "2026-03-14", "passengers": 2})
    stream_a, stream_b = pieces(0, "call_a", "get_weather", a, cuts_a), pieces(1, "call_b", "search_flights", b, cuts_b)
    # interleave the two calls' pieces, each call's own order kept (as parallel calls stream)
    merged: list[dict[str, Any]] = []
    while stream_a or stream_b:
        source = stream_a if stream_a and (not stream_b or order.random() < 0.5) else stream_b
        merged.append(source.pop(0))
    acc = ToolCallAccumulator()
    for piece in merged:
        acc.feed([piece])
    calls = acc.calls()
    assert [(c.index, c.id, c.name, c.arguments) for c in calls] == [
        (0, "call_a", "get_weather", a), (1, "call_b", "search_flights", b)][:len(calls)]
    assert len(calls) == 2 and acc.malformed == 0
    assert JUDGE.judge_tool_calls([(c.name, c.arguments, c.truncated) for c in calls]).valid


@settings(max_examples=80, deadline=None)
@given(st.lists(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                             lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                 st.sampled_from(["index", "id", "function", "name", "arguments", "x"]), inner,
                                 max_size=4), max_leaves=12), max_size=6))
def test_hostile_tool_call_values_never_raise(values: list[Any]) -> None:
    acc = ToolCallAccumulator()
    for value in values:
        acc.feed(value)
        acc.feed([value])
    for call in acc.calls():
        assert isinstance(call.arguments, str) and call.index >= 0


def test_accumulator_bounds() -> None:
    acc = ToolCallAccumulator()
    acc.feed([{"index": i, "id": f"c{i}", "function": {"name": "f", "arguments": "{}"}} for i in range(40)])
    assert len(acc.calls()) == MAX_TOOL_CALLS and acc.dropped == 40 - MAX_TOOL_CALLS
    big = ToolCallAccumulator()
    for _ in range(5):
        big.feed([{"index": 0, "function": {"arguments": "x" * (MAX_ARGUMENT_CHARS // 2)}}])
    [call] = big.calls()
    assert len(call.arguments) == MAX_ARGUMENT_CHARS and call.truncated
    assert JUDGE.judge_tool_calls([("get_weather", call.arguments, True)]).verdict is Verdict.TRUNCATED
    odd = ToolCallAccumulator()
    odd.feed([{"index": -1}, {"index": "0"}, {"index": True}, "x", {"index": 0, "function": "f"}])
    assert odd.malformed == 5


def test_judge_verdicts() -> None:
    ok = json.dumps({"city": "Oslo", "unit": "fahrenheit"})
    cases = [
        ([("get_weather", ok, False)], Verdict.VALID),
        ([("get_weather", '{"city": "Oslo"', False)], Verdict.INVALID_JSON),
        ([("get_weather", "[1]", False)], Verdict.INVALID_JSON),
        ([("get_weather", '{"city": "Oslo", "unit": NaN}', False)], Verdict.INVALID_JSON),
        ([("get_weather", '{"city": "Oslo"}', False)], Verdict.SCHEMA_MISMATCH),
        ([("get_weather", '{"city": "Oslo", "unit": "kelvin"}', False)], Verdict.SCHEMA_MISMATCH),
        ([("get_weather", ok, False), ("nope", "{}", False)], Verdict.UNKNOWN_TOOL),
        ([("get_weather", "[" * 5000 + "]" * 5000, False)], Verdict.INVALID_JSON),
        ([], Verdict.MISSING),
    ]
    for calls, verdict in cases:
        assert JUDGE.judge_tool_calls(calls).verdict is verdict, calls
    # the problem names the path and the keyword, never the value the model sent
    problem = JUDGE.judge_tool_calls([("get_weather", '{"city": "Oslo", "unit": "s3cr3t"}', False)]).problem
    assert problem and "s3cr3t" not in problem and "enum" in problem
    book = {"title": "T", "year": 1999, "rating": 4.5, "genres": ["sf"], "in_print": True}
    assert JUDGE.judge_answer(json.dumps(book)).valid
    assert JUDGE.judge_answer(json.dumps({**book, "year": "1999"})).verdict is Verdict.SCHEMA_MISMATCH
    assert JUDGE.judge_answer("```json\n{}\n```").verdict is Verdict.INVALID_JSON
    assert JUDGE.judge_answer(json.dumps(book), truncated=True).verdict is Verdict.TRUNCATED
    assert judge_response(JUDGE, "tools", ok=True, text="hi", tool_calls=[], finish_reason="stop",
                          tool_required=False) is None  # auto, answered in text: nothing to judge
    assert judge_response(JUDGE, "tools", ok=False, text=None, tool_calls=None, finish_reason=None,
                          tool_required=True) is None  # failed: counted with the errors
    assert schema_problem({"type": 5}) and schema_problem([]) and schema_problem(WEATHER) is None


def test_reasoning_details_merge_by_index_and_type_in_order() -> None:
    merger = ReasoningDetailsMerger()
    merger.feed([{"type": "reasoning.text", "text": "Let me ", "index": 0, "format": "unknown"}])
    merger.feed([{"type": "reasoning.text", "text": "think.", "index": 0}])
    merger.feed([{"type": "reasoning.text", "text": "", "index": 0, "signature": "sig0"}])
    merger.feed([{"type": "reasoning.encrypted", "data": "AAA", "index": 1}])
    merger.feed([{"type": "reasoning.encrypted", "data": "BBB", "index": 1, "id": "r1"}])
    merger.feed("not a list")
    assert merger.details() == [
        {"type": "reasoning.text", "text": "Let me think.", "index": 0, "format": "unknown", "signature": "sig0"},
        {"type": "reasoning.encrypted", "data": "AAABBB", "index": 1, "id": "r1"}]
    assert merger.malformed == 1 and not merger.truncated
    many = ReasoningDetailsMerger()
    many.feed([{"type": "reasoning.text", "text": "x", "index": i} for i in range(MAX_DETAILS + 5)])
    assert len(many.details()) == MAX_DETAILS and many.truncated
    huge = ReasoningDetailsMerger()
    for _ in range(3):
        huge.feed([{"type": "reasoning.text", "text": "y" * (MAX_DETAIL_CHARS // 2), "index": 0}])
    assert MAX_DETAIL_CHARS - 100 < len(huge.details()[0]["text"]) <= MAX_DETAIL_CHARS and huge.truncated


def _sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_recorder_keeps_calls_and_details_whatever_the_read_boundaries(cuts: list[int]) -> None:
    args = json.dumps({"city": "Lisbon", "unit": "celsius"})
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": "", "reasoning": "hm", "reasoning_details": [
            {"type": "reasoning.text", "text": "hm", "index": 0}]},
        {"reasoning": ".", "reasoning_details": [{"type": "reasoning.text", "text": ".", "index": 0,
                                                  "signature": "s"}]},
        *({"tool_calls": [p]} for p in pieces(0, "call_1", "get_weather", args, [3, 9, 17])),
    ]
    chunks = [{"id": "g", "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({"id": "g", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    body = _sse(chunks)
    rec = StreamRecorder(0, keep_text=True)
    rec.on_headers(1_000, 200, {"content-type": "text/event-stream"})
    bounds = [0, *sorted({c % len(body) for c in cuts}), len(body)]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        rec.on_bytes(2_000 + i, body[a:b])
    rec.on_eof(10_000)
    result = rec.result()
    assert result.ok and result.finish_reason == "tool_calls" and result.first_tool_call_s is not None
    assert result.ttfc_s is None  # a tool call is a token (TTFT), not answer content (TTFC)
    assert result.tool_calls == [{"index": 0, "id": "call_1", "name": "get_weather", "arguments": args,
                                  "truncated": False}]
    assert result.reasoning_details == [{"type": "reasoning.text", "text": "hm.", "index": 0, "signature": "s"}]
    record = result.to_dict()  # a record keeps sizes, never the arguments or the reasoning
    assert record["tool_calls"] == [{"index": 0, "name": "get_weather", "arguments_chars": len(args),
                                     "truncated": False}]
    assert record["reasoning_details_count"] == 1 and "reasoning_text" not in record


def test_wilson_interval() -> None:
    p = proportion(90, 100)
    assert p["rate"] == 0.9 and 0.82 < p["low"] < 0.83 and 0.94 < p["high"] < 0.95
    assert proportion(10, 10)["high"] == 1.0 and proportion(10, 10)["low"] < 1.0
    assert proportion(0, 0)["rate"] is None
