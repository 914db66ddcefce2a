"""The hand-written HTTP/1.1 layer: keep-alive, pipelining, framing errors, Expect: 100-continue."""

from __future__ import annotations

import json
import socket
from typing import BinaryIO

import pytest
from mock_helpers import chat_body

from tokenpulse.mock import MockServerThread


def _conn(server: MockServerThread) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return s


def _read_response(f: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length or chunked) from a buffered socket file."""
    status = int(f.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int(f.readline().strip(), 16)
            chunk = f.read(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, headers, body
    return status, headers, f.read(int(headers.get("content-length", "0")))


def _post(body: dict[str, object], extra: bytes = b"") -> bytes:
    raw = json.dumps(body).encode()
    return (b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\n%bContent-Length: %d\r\n\r\n%b"
            % (extra, len(raw), raw))


def test_keep_alive_and_pipelining(server: MockServerThread) -> None:
    with _conn(server) as s, s.makefile("rb") as f:
        s.sendall(_post(chat_body(stream=True)))
        status, headers, body = _read_response(f)
        assert status == 200 and headers["connection"] == "keep-alive" and body.endswith(b"[DONE]\n\n")
        # two requests in one write: answered in order on the same connection
        s.sendall(_post(chat_body(seed=1)) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = _read_response(f)
        second = _read_response(f)
        assert first[0] == 200 and json.loads(first[2])["object"] == "chat.completion"
        assert second == (200, second[1], b'{"status":"ok"}')


def test_connection_close_is_honoured(server: MockServerThread) -> None:
    with _conn(server) as s, s.makefile("rb") as f:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = _read_response(f)
        assert status == 200 and headers["connection"] == "close"
        assert f.read() == b""


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"POST /api/v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     411),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nbad header line\r\n\r\n", 400),
    (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
    (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", 413),
])
def test_unusable_requests_are_rejected_and_closed(server: MockServerThread, request_bytes: bytes,
                                                   status: int) -> None:
    with _conn(server) as s, s.makefile("rb") as f:
        s.sendall(request_bytes)
        got, headers, body = _read_response(f)
        assert got == status and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == status


def test_oversized_head_is_431(server: MockServerThread) -> None:
    with _conn(server) as s, s.makefile("rb") as f:
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000)
        assert _read_response(f)[0] == 431


def test_expect_100_continue(server: MockServerThread) -> None:
    raw = json.dumps(chat_body()).encode()
    with _conn(server) as s, s.makefile("rb") as f:
        s.sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(raw))
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n" and f.readline() == b"\r\n"
        s.sendall(raw)
        assert _read_response(f)[0] == 200


def test_request_split_across_writes(server: MockServerThread) -> None:
    req = _post(chat_body())
    with _conn(server) as s, s.makefile("rb") as f:
        for i in range(0, len(req), 7):
            s.sendall(req[i:i + 7])
        assert _read_response(f)[0] == 200
