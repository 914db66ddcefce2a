"""The mock's bounds, over real loopback sockets: token counts and related numeric fields are bounded
(400 with OpenAI-style error JSON), malformed or wrong-typed bodies are 400 and never 500, idle
connections (and slow partial requests) are closed after the idle timeout, and at the connection cap
the longest-idle connection makes room."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mock_helpers import PLAIN, REASONER, chat_body, farm_data, profile, stream_chat

from tokenpulse.mock import MockServerThread
from tokenpulse.mock.farm import farm_from_data
from tokenpulse.mock.request import MAX_OUTPUT_TOKENS

#: Long enough for nothing to be closed by accident on a busy machine, short enough for a test.
IDLE_S = 0.3
#: Bounded waits for a socket to be closed by the server (never a timing assertion).
WAIT_S = 10.0
CHAT = "/api/v1/chat/completions"


def assert_400(resp: httpx.Response, *words: str) -> None:
    assert resp.status_code == 400, (resp.status_code, resp.text[:200])
    error = resp.json()["error"]
    assert error["code"] == 400 and isinstance(error["message"], str) and isinstance(error["metadata"], dict)
    for word in words:
        assert word in error["message"], (word, error["message"])


@pytest.mark.parametrize(("fields", "named"), [
    ({"max_tokens": 10**12}, "max_tokens"),
    ({"max_completion_tokens": 10**12}, "max_completion_tokens"),
    ({"max_tokens": MAX_OUTPUT_TOKENS + 1, "ignore_eos": True}, "max_tokens"),
    ({"min_tokens": 10**12}, "min_tokens"),
    ({"reasoning": {"max_tokens": 10**12}}, "reasoning.max_tokens"),
    ({"n": 0}, "n must"),
    ({"n": 129}, "n must"),
    ({"n": "2"}, "n must"),
    ({"seed": 2**64}, "seed"),
    ({"stop": [f"s{i}" for i in range(17)]}, "stop"),
    ({"stop": "x" * 2000}, "stop"),
])
def test_numeric_fields_are_bounded(client: httpx.Client, fields: dict[str, Any], named: str) -> None:
    for stream in (False, True):
        assert_400(client.post(CHAT, json=chat_body(REASONER, stream=stream, **fields)), named)


def test_the_bounds_themselves_are_served(client: httpx.Client) -> None:
    body = chat_body(PLAIN, max_tokens=MAX_OUTPUT_TOKENS, n=1, seed=2**63 - 1, stop=["zzz"] * 16)
    resp = client.post(CHAT, json=body)
    assert resp.status_code == 200 and len(resp.json()["choices"]) == 1


def _wrong_typed_bodies() -> Iterator[tuple[str, bytes]]:
    """Every top-level and nested field the mock reads, given values of every other JSON type."""
    values: list[Any] = [None, True, -1, 0, 2.5, "x", [], [1, "a"], {}, {"a": {"b": []}}, 10**30]
    paths = ["model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "min_tokens",
             "ignore_eos", "temperature", "seed", "n", "stop", "reasoning", "provider", "tools", "tool_choice",
             "reasoning.effort", "reasoning.max_tokens", "reasoning.enabled", "reasoning.exclude",
             "provider.only", "provider.order", "provider.ignore", "provider.allow_fallbacks",
             "stream_options.include_usage", "messages.0", "messages.0.content", "messages.0.content.0",
             "tools.0", "tools.0.function", "tool_choice.function", "tool_choice.function.name"]
    for path in paths:
        for value in values:
            body: dict[str, Any] = chat_body(REASONER, tools=[{"type": "function", "function": {"name": "f"}}],
                                             tool_choice={"type": "function", "function": {"name": "f"}},
                                             reasoning={"effort": "low"}, provider={"only": ["alpha"]},
                                             stream_options={"include_usage": True})
            body["messages"] = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
            node: Any = body
            *parents, leaf = path.split(".")
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            if isinstance(node, list):
                node[int(leaf)] = value
            else:
                node[leaf] = value
            yield f"{path}={value!r}"[:60], json.dumps(body).encode()


MALFORMED: list[bytes] = [
    b"{not json", b"", b"null", b"[1, 2]", b'"a string"', b"\xff\xfe{}",
    b"[" * 100_000 + b"]" * 100_000,  # nesting past the JSON decoder's recursion limit
    b'{"model": "test/plain", "messages": [{"content": "hi"}], "max_tokens": ' + b"9" * 5000 + b"}",  # > 4300 digits
    b'{"model": "test/plain", "messages": [{"content": NaN}]}',
    b'{"model": "test/plain", "messages": [{"role": "user", "content": "hi", "x": NaN}]}',
    b'{"model": "test/plain", "messages": [{"content": "hi"}], "temperature": Infinity}',
    b'{"model": "test/plain", "messages": [{"content": "hi"}], "tools": [{"function": "f"}], '
    b'"tool_choice": "required"}',
    b'{"model": "test/plain", "messages": [{"content": "hi"}], "tools": [{}], "tool_choice": {"function": "f"}}',
]


def test_malformed_and_wrong_typed_bodies_are_400_never_500(client: httpx.Client) -> None:
    """Malformed bodies must be 400; wrong-typed fields are 400 where the mock reads them, else ignored
    (200), as OpenRouter ignores what it does not use; never a 5xx, and the server keeps serving."""
    for raw in MALFORMED:
        assert_400(client.post(CHAT, content=raw, headers={"content-type": "application/json"}))
    statuses: dict[int, int] = {}
    for name, raw in _wrong_typed_bodies():
        resp = client.post(CHAT, content=raw, headers={"content-type": "application/json"})
        # 404: a well-typed provider list that names no provider of the model
        assert resp.status_code in (200, 400, 404), (name, resp.status_code, resp.text[:200])
        if resp.status_code == 400:
            assert_400(resp)
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
    assert statuses.get(400, 0) > 200  # most wrong types are refused, not silently served
    for raw in (b"[" * 100_000, b'{"provider": ' * 5000):
        assert_400(client.post("/_mock/outage", content=raw))
    assert client.post(CHAT, json=chat_body(PLAIN)).status_code == 200


@pytest.mark.parametrize("length", [b"+5", b"1_0", b" 5 5", b"\xd9\xa5"])  # the last: an Arabic-Indic 5
def test_content_length_must_be_plain_digits(server: MockServerThread, length: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as s:
        s.sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\nhello")
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 400 "), head[:80]


# ------------------------------------------------------------------------------ connections
def slow_farm(**top: Any) -> Any:
    """alpha: fast; slow: ~1 s streams (30 tokens at 30 tokens/s, several idle timeouts long); hang: never
    answers."""
    providers = {
        "alpha": {"name": "Alpha", "profile": profile()},
        "slow": {"name": "Slow", "profile": profile(decode={"tokens_per_s": 30, "request_jitter": 0,
                                                            "chunk_jitter": 0})},
        "hang": {"name": "Hang", "profile": profile(errors={"hang_first_byte": 1.0, "hang_max_s": 30})},
    }
    return farm_from_data({**farm_data(providers, output=(30, 30)), **top}, "limits farm")


@pytest.fixture(scope="module")
def idle_server() -> Iterator[MockServerThread]:
    with MockServerThread(slow_farm(idle_timeout_s=IDLE_S)) as srv:
        yield srv


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (EOF or reset) within WAIT_S; reads what it sent."""
    sock.settimeout(WAIT_S)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def request(path: str, body: dict[str, Any] | None = None) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    raw = json.dumps(body).encode()
    return b"POST %b HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (path.encode(), len(raw), raw)


def test_idle_and_trickling_connections_are_closed(idle_server: MockServerThread) -> None:
    socks = [socket.create_connection(("127.0.0.1", idle_server.port), timeout=WAIT_S) for _ in range(20)]
    try:
        socks[1].sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nContent-")  # a request that never ends
        socks[2].sendall(request("/healthz"))  # served, then idle on a kept-alive connection
        assert all(closed_by_server(s) for s in socks)
    finally:
        for s in socks:
            s.close()


def test_a_stream_longer_than_the_idle_timeout_is_not_cut(idle_server: MockServerThread) -> None:
    with httpx.Client(base_url=idle_server.root_url, timeout=WAIT_S) as client:
        body = chat_body(PLAIN, provider={"only": ["slow"]})
        first = stream_chat(client, body)  # ~1 s of tokens, i.e. several idle timeouts
        assert first.status == 200 and first.done and len(first.content().split()) == 30
        # the same connection is reused for an immediate second request (it was idle for no time)
        second = stream_chat(client, body)
        assert second.status == 200 and second.done


def test_at_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    cap = 8
    with MockServerThread(slow_farm(), max_connections=cap) as srv:
        idle = []
        for _ in range(cap):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT_S)
            s.sendall(request("/healthz"))
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")  # admitted, now idle (oldest first)
            idle.append(s)
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT_S) as newcomer:
                newcomer.sendall(request("/healthz"))
                assert newcomer.recv(65536).startswith(b"HTTP/1.1 200 ")
            assert closed_by_server(idle[0])  # the longest idle one was closed for it
            for s in idle[1:]:  # the others still serve
                s.sendall(request("/healthz"))
                assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        finally:
            for s in idle:
                s.close()


def test_at_the_connection_cap_with_every_connection_busy_a_newcomer_is_refused() -> None:
    cap = 4
    with MockServerThread(slow_farm(), max_connections=cap) as srv:
        busy = [socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT_S) for _ in range(cap)]
        try:
            for s in busy:  # each waits on a hanging provider: a request in progress on every connection
                s.sendall(request(CHAT, chat_body(PLAIN, provider={"only": ["hang"]})))
            end = time.monotonic() + WAIT_S
            while srv.stats()["providers"]["hang"]["requests"] < cap and time.monotonic() < end:
                time.sleep(0.02)
            assert srv.stats()["providers"]["hang"]["requests"] == cap
            with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT_S) as newcomer:
                newcomer.sendall(request("/healthz"))
                got = b""
                try:
                    while chunk := newcomer.recv(65536):
                        got += chunk
                except ConnectionResetError:
                    pass
            assert got == b""  # refused: closed without an answer
        finally:
            for s in busy:
                s.close()
