"""The recorder never raises: whole random responses (status, headers, body bytes cut at random points)
go in, a `StreamResult` with a valid outcome and error class comes out, and every number in it is usable
(finite, non-negative where it must be, strict JSON). Downstream, invalid usage never reaches the cost
guard or the metrics, `measure --json` prints strict JSON, and a report never fails on what a records
file holds.

Bodies are built from what a server can send: SSE events (data, comments, other fields, `[DONE]`, CR/LF
variants, a BOM) whose data are chunk-shaped JSON with any value in any place, weird numbers (NaN,
Infinity, 1e308, 1e999, -1, 400- and 5,000-digit integers), nesting up to 100,000 deep, and raw bytes.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from tokenpulse.config import Price
from tokenpulse.core.jsonwire import dumps_compact, dumps_pretty
from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import INTERNAL_ERROR_PREFIX, StreamRecorder, StreamResult
from tokenpulse.core.request import ChatRequest, Timeouts, prepare
from tokenpulse.core.stats import distribution, mean, percentile
from tokenpulse.core.usage import MAX_COST_USD, MAX_TOKENS
from tokenpulse.load.cost import CostGuard, request_cost
from tokenpulse.metrics import LoadMetrics
from tokenpulse.report.build import write_report
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver, httpcore_async_client
from tokenpulse.transports.gevent_loop import make_sync_transport
from tokenpulse.transports.gevent_loop.driver import SyncStreamDriver

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


# ------------------------------------------------- downstream: cost guard, metrics, JSON output, reports
def hostile_usage_result(cost_text: str) -> StreamResult:
    body = (b'data: {"choices": [{"delta": {"content": "abcdefgh"}, "finish_reason": "stop"}]}\n\n'
            b'data: {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "cost": '
            + cost_text.encode() + b"}}\n\ndata: [DONE]\n\n")
    return feed((200, [("content-type", "text/event-stream")]), body, [], "eof")


@pytest.mark.parametrize("cost", ["NaN", "-Infinity", "Infinity", "-0.5", "1e308", "1" + "0" * 400])
def test_invalid_cost_never_enters_the_guard_or_the_metrics(cost: str) -> None:
    result = hostile_usage_result(cost)
    assert result.ok and result.usage_invalid and result.cost_usd is None
    price = Price(prompt_per_mtok=1.0, completion_per_mtok=2.0)
    assert request_cost(result, price) is None  # unknown, not price x estimated tokens
    guard = CostGuard(cap_usd=1.0)
    reservation = guard.reserve("t", 0.25)
    assert reservation is not None
    guard.settle(reservation, request_cost(result, price))
    assert guard.spent_usd == 0.25 and guard.reserved_usd == 0.0  # the reservation is kept as spent
    metrics = LoadMetrics()
    metrics.requests.observe({"endpoint": "e", "model": "m", "provider": "p"}, result,
                             cost_usd=request_cost(result, price))
    text = generate_latest(metrics.registry).decode()
    assert "NaN" not in text and "Inf\n" not in text.replace("+Inf", "")


@pytest.mark.parametrize("actual", [math.nan, math.inf, -math.inf, -1.0])
def test_the_guard_treats_a_non_finite_or_negative_cost_as_unknown(actual: float) -> None:
    guard = CostGuard(cap_usd=1.0)
    first = guard.reserve("t", 0.4)
    assert first is not None
    guard.settle(first, actual)
    assert guard.spent_usd == 0.4 and math.isfinite(guard.reserved_usd)
    assert guard.reserve("t", 0.4) is not None and guard.reserve("t", 0.4) is None  # the cap still holds


def test_measure_json_is_strict_json_even_with_a_non_finite_number() -> None:
    result = hostile_usage_result("0.001")
    data = result.to_dict()
    data["tpot_s"] = math.nan  # no recorder value is non-finite now; the printer must not rely on it
    data["extra"] = [math.inf, {"x": -math.inf}]
    parsed = json.loads(dumps_pretty(data), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert parsed["tpot_s"] is None and parsed["extra"] == [None, {"x": None}]
    assert parsed["cost_usd"] == 0.001 and parsed["usage_invalid"] is False


GOOD = {"outcome": "ok", "error_class": None, "ttfb_s": 0.01, "ttft_s": 0.2, "ttfc_s": 0.2, "e2e_s": 0.5,
        "tpot_s": 0.02, "output_tokens_per_s": 40.0, "prompt_tokens": 10, "output_tokens": 12, "reasoning_tokens": 0,
        "tokens_estimated": False, "token_times_s": [0.2, 0.3, 0.4], "t_s": 1.0, "step": 0, "phase": "measure",
        "endpoint": "mock", "model": "m", "target_provider": "fast", "estimated_cost_usd": 0.001, "v": 1}
#: Raw JSON texts a foreign or damaged records file can hold in any field.
FIELD_VALUES = WEIRD_NUMBERS + ["null", '"x"', "[]", "[1, null]", '{"a": 1}', "[NaN, 1]", deep(900, "list"),
                                deep(100_000, "list")]
FIELDS = ["start_time", "t_s", "ttft_s", "e2e_s", "tpot_s", "output_tokens_per_s", "queue_wait_s", "prompt_tokens",
          "output_tokens", "reasoning_tokens", "estimated_cost_usd", "cost_usd", "token_times_s", "step", "phase",
          "outcome", "error_class", "endpoint", "target_provider", "tokens_estimated"]


def line(record: dict[str, object], overrides: list[tuple[str, str]]) -> bytes:
    pairs = [(k, json.dumps(v)) for k, v in record.items() if k not in dict(overrides)] + overrides
    return obj(pairs).encode() + b"\n"


def write_run(folder: Path, lines: list[bytes], health: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records-local.jsonl").write_bytes(b"".join(lines))
    (folder / "health-local.jsonl").write_bytes(b"".join(health))


def strict(path: Path) -> object:
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path.name} holds {c}"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(FIELD_VALUES)), max_size=4),
                min_size=1, max_size=6),
       st.lists(st.tuples(st.sampled_from(["time", "cpu", "lags_s", "worker"]), st.sampled_from(FIELD_VALUES)),
                max_size=4))
def test_a_report_never_fails_on_a_stored_number(tmp_path_factory: pytest.TempPathFactory,
                                                 damage: list[list[tuple[str, str]]],
                                                 health_damage: list[tuple[str, str]]) -> None:
    folder = tmp_path_factory.mktemp("run")
    start = 1_800_000_000.0
    lines = [line({**GOOD, "start_time": start + i}, []) for i in range(3)]
    lines += [line({**GOOD, "start_time": start + 3 + i}, list(dict(d).items())) for i, d in enumerate(damage)]
    sample = {"time": start + 1, "worker": "local", "cpu": 0.5, "lags_s": [0.001]}
    health = [line(sample, list(dict(health_damage).items()))]
    write_run(folder, lines, health)
    summary = write_report(folder)
    assert summary["overall"]["requests"] >= 3
    strict(folder / "summary.json")
    assert math.isfinite(summary["overall"]["cost_usd"])


def test_a_report_on_huge_finite_numbers_stays_finite(tmp_path: Path) -> None:
    start = 1_800_000_000.0
    lines = [line({**GOOD, "start_time": start + i, "ttft_s": 1e308, "e2e_s": 1e308, "tpot_s": -1e308,
                   "token_times_s": [1e308], "estimated_cost_usd": 1e308, "output_tokens": 10**400}, [])
             for i in range(3)]
    lines.append(b'{"start_time": NaN}\n' + b'{"start_time": 1e999}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    write_run(tmp_path, lines, [b'{"time": 1e999, "cpu": NaN, "lags_s": [1e308, 1e308]}\n'])
    summary = write_report(tmp_path)
    assert summary["overall"]["requests"] == 3
    assert summary["overall"]["cost_usd"] == 0.0 and summary["overall"]["cost_unknown_requests"] == 3
    assert summary["overall"]["tokens"]["output"] == 0
    assert summary["overall"]["ttft"]["mean"] == 1e308 and summary["overall"]["tpot"]["mean"] == -1e308
    strict(tmp_path / "summary.json")


def test_stats_stay_finite_for_any_finite_values() -> None:
    d = distribution([1e308, 1e308, -1e308, math.nan, math.inf, None, "x", 10**400, True, 2])
    figures = [x for v in d.values() for x in (v if isinstance(v, list) else [v])]  # intervals are [low, high]
    assert d["n"] == 4 and all(v is None or math.isfinite(v) for v in figures)
    assert percentile([-1e308, 1e308], 50) == 0.0 and percentile([-1e308, 1e308], 100) == 1e308
    assert mean([1e308, 1e308]) == 1e308


# ------------------------------------------------------------- the same responses through every driver
class ScriptedServer:
    """A loopback HTTP/1.1 server (one thread) answering every request with `head` and then `body`,
    written in 16 KiB pieces; `endless` repeats `body` until the client goes away (at most ENDLESS_CAP).

    `hung_up` says the client closed while the body was still going. `sent` counts what the kernel
    took, which is more than the client read: loopback buffers hold megabytes (tcp_rmem's maximum is
    32 MiB on some machines), so only a cap far above the drivers' own tells "stopped" from "ran out"."""

    def __init__(self, head: bytes, body: bytes, *, endless: bool = False) -> None:
        self.head, self.body, self.endless = head, body, endless
        self.sent = 0
        self.hung_up = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # accept() is not woken by close(): poll the stop flag instead
        self._stop = threading.Event()
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/api/v1"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                try:
                    self._answer(conn)
                except OSError:
                    self.hung_up = True  # the client closed: what an endless body waits for

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        lengths = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
        length = lengths[0] if lengths else 0
        while len(rest) < length:
            rest += conn.recv(65536)
        conn.sendall(self.head)
        while True:
            for i in range(0, len(self.body), 16384):
                conn.sendall(self.body[i:i + 16384])
                self.sent += len(self.body[i:i + 16384])
            if not self.endless or self.sent >= ENDLESS_CAP:
                return


def _drive(name: str, base_url: str) -> StreamResult:
    request = prepare(base_url, ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=8))
    timeouts = Timeouts(connect=5, ttft=20, idle=20, total=30)
    if name.startswith("async"):
        async def go() -> StreamResult:
            if name == "async":
                async with AsyncStreamDriver(max_response_bytes=MAX_BYTES) as driver:
                    return await driver.run(request, timeouts)
            async with httpcore_async_client() as client:
                return await AsyncStreamDriver(client, max_response_bytes=MAX_BYTES).run(request, timeouts)
        return asyncio.run(go())
    driver = SyncStreamDriver(make_sync_transport(name.removeprefix("sync-")), max_response_bytes=MAX_BYTES)
    try:
        return driver.run(request, timeouts)
    finally:
        driver.close()


MAX_BYTES = 4 * 1024 * 1024  # the drivers' response cap here (64 MiB by default)
# What an "endless" body sends at most: a driver that stops reads MAX_BYTES at most, and the kernel's
# loopback buffers hold up to tcp_rmem's maximum (32 MiB here) plus tcp_wmem's (4 MiB) on top.
ENDLESS_CAP = 32 * MAX_BYTES
DRIVER_NAMES = ("async", "async-httpcore", "sync-raw")
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
HOSTILE_STREAM = (b'data: {"choices": 5}\n\n'
                  b'data: {"choices": [{"delta": {"content": "abcd"}, "finish_reason": ["x"]}], '
                  b'"tokenpulse_truth": {"sent_ns": NaN, "recv_ns": "x"}}\n\n'
                  b'data: {"choices": [], "usage": {"prompt_tokens": 1' + b"0" * 400 + b', "completion_tokens": 5, '
                  b'"cost": NaN}}\n\ndata: [DONE]\n\n')
CASES = {
    # name: (head, body, endless, error class or None for ok)
    "endless 500 body": (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                         b"x" * 16384, True, ErrorClass.SERVER_ERROR),
    "endless chunked 502 body": (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked"
                                 b"\r\n\r\n", b"4000\r\n" + b"<title>"[:1] * 16384 + b"\r\n", True,
                                 ErrorClass.SERVER_ERROR),
    "hostile chunks and usage": (SSE_HEAD, HOSTILE_STREAM, False, None),
    "data line nested 100,000 deep": (SSE_HEAD, b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n", False,
                                      ErrorClass.PROTOCOL_ERROR),
    "error body nested 100,000 deep": (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: 200000\r\n\r\n", b"[" * 100_000 + b"]" * 100_000, False,
                                       ErrorClass.SERVER_ERROR),
    "newline-less event stream": (SSE_HEAD, b"data: " + b"x" * 16378, True, ErrorClass.PROTOCOL_ERROR),
}


def _params() -> list[object]:
    return [pytest.param(case, driver, id=f"{case}-{driver}") for case in sorted(CASES) for driver in DRIVER_NAMES]


@pytest.mark.parametrize(("case", "driver"), _params())
def test_hostile_responses_through_every_driver(case: str, driver: str) -> None:
    head, body, endless, expected = CASES[case]
    with ScriptedServer(head, body, endless=endless) as server:
        result = _drive(driver, server.base_url)
    check(result)
    assert result.error_class is expected, (result.error_class, result.error_message)
    if expected is None:
        assert result.usage_invalid and result.tokens_estimated and result.cost_usd is None
        assert result.truth_lags_s is None and result.finish_reason is None
    if endless:
        # The driver stopped reading and closed: the server did not run out of body first.
        assert server.hung_up and server.sent < ENDLESS_CAP, (server.hung_up, server.sent)


# ------------------------------------------------------ the load test's guard around a request
_USER_GUARD_SCRIPT = r'''
import json, sys, types
import gevent
from tokenpulse.load import user as user_mod
from tokenpulse.load.cost import CostGuard
from tokenpulse.load.bounds import RequestBudget
from tokenpulse.core.request import ChatRequest

sleeps = []
user_mod.gevent.sleep = sleeps.append  # the error backoff, recorded instead of slept
records, fired, observed, results = [], [], [], []

class Driver:
    def run(self, prepared, timeouts, keep_text=False):
        raise TypeError("a bug somewhere under the driver")

schedule = types.SimpleNamespace(locate=lambda at: (0, 1.0, "measure"), users_at=lambda at: 1)
session = types.SimpleNamespace(
    draining=False, stopped=types.SimpleNamespace(is_set=lambda: False), arrivals=None,
    opts=types.SimpleNamespace(ground_truth=False), guard=CostGuard(cap_usd=1.0), in_flight=0,
    config=types.SimpleNamespace(load=types.SimpleNamespace(error_backoff_s=0.25)), schedule=schedule,
    records=types.SimpleNamespace(write=records.append), run_start=0.0, run_start_mono_ns=0, worker_label="local",
    on_request_done=observed.append, note_sent=lambda start_time: None, budget=RequestBudget(), lookups=None)
endpoint = types.SimpleNamespace(base_url="http://127.0.0.1:9/api/v1", headers={}, name="e")
target = types.SimpleNamespace(endpoint=endpoint, model=types.SimpleNamespace(price=None, id="m"), provider="p")
planned = types.SimpleNamespace(chat=ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=8), keep_text=False, turn=0, input_tokens_target=1,
                                output_tokens_target=8, check=None)
fake = types.SimpleNamespace(
    session=session, target=types.SimpleNamespace(target=target, api_key="sk-or-secret-key-123", key="k", name="t",
                                                  index=0, provider_names=()),
    stream=types.SimpleNamespace(next_request=lambda t: planned, on_result=results.append), driver=Driver(),
    timeouts=None, user_id=0,
    environment=types.SimpleNamespace(events=types.SimpleNamespace(request=types.SimpleNamespace(
        fire=lambda **kw: fired.append(kw["exception"] and str(kw["exception"]))))))
fake._finish = types.MethodType(user_mod.TokenpulseUser._finish, fake)
user_mod.TokenpulseUser.chat(fake)
print(json.dumps({"records": records, "fired": fired, "sleeps": sleeps, "in_flight": session.in_flight,
                  "reserved": session.guard.reserved_usd, "observed": len(observed)}, default=str))
'''


def test_an_exception_while_running_a_load_request_still_records_it_and_backs_off() -> None:
    """tokenpulse/load/user.py: whatever raises under the driver, the request gets its record (with an error
    class), its Locust entry and the error backoff; the user does not loop as fast as it can."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", _USER_GUARD_SCRIPT], capture_output=True, text=True, timeout=120,
                         env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    [record] = data["records"]
    assert record["outcome"] == "error" and record["error_class"] == "protocol_error"
    assert record["error_message"].startswith("unexpected client error: TypeError")
    assert "sk-or-secret-key-123" not in json.dumps(record)
    assert data["fired"] == ["protocol_error"] and data["sleeps"] == [0.25]
    assert data["in_flight"] == 0 and data["reserved"] == 0.0 and data["observed"] == 1
