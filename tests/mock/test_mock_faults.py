"""Injected faults do what they claim: each provider of this farm fails one way with probability 1."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mock_helpers import PLAIN, chat_body, make_farm, parse_sse, profile

from tokenpulse.mock import MockServerThread
from tokenpulse.mock.farm import OutageWindow

KINDS = ("rate_limit", "http_500", "http_502", "http_503", "mid_stream", "reset", "hang_first_byte",
         "hang_mid_stream", "malformed_chunk")


def _provider(kind: str) -> dict[str, Any]:
    errors: dict[str, Any] = {kind: 1.0, "retry_after_s": 7, "hang_max_s": 30}
    return {"name": kind.replace("_", " ").title(), "profile": profile(errors=errors)}


@pytest.fixture(scope="module")
def faulty() -> Iterator[MockServerThread]:
    providers = {k.replace("_", "-"): _provider(k) for k in KINDS}
    providers["healthy"] = {"name": "Healthy", "profile": profile()}
    providers["down"] = {"name": "Down", "profile": profile(
        outages=[{"start_s": 0, "duration_s": 3600, "status": 503}])}
    with MockServerThread(make_farm(providers, output=(30, 30))) as srv:
        yield srv


def pinned(kind: str, **fields: Any) -> dict[str, Any]:
    return chat_body(PLAIN, provider={"only": [kind.replace("_", "-")], "allow_fallbacks": False}, **fields)


@pytest.fixture()
def fc(faulty: MockServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=faulty.root_url, timeout=10) as c:
        yield c


def test_rate_limit_has_retry_after(fc: httpx.Client) -> None:
    for stream in (False, True):
        resp = fc.post("/api/v1/chat/completions", json=pinned("rate_limit", stream=stream))
        assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
        assert resp.json()["error"]["code"] == 429


@pytest.mark.parametrize(("kind", "status"), [("http_500", 500), ("http_502", 502), ("http_503", 503)])
def test_server_errors(fc: httpx.Client, kind: str, status: int) -> None:
    resp = fc.post("/api/v1/chat/completions", json=pinned(kind, stream=True))
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == status
    assert resp.headers["content-type"] == "application/json"


def test_mid_stream_error_chunk_ends_the_stream(fc: httpx.Client) -> None:
    resp = fc.post("/api/v1/chat/completions", json=pinned("mid_stream", stream=True))
    assert resp.status_code == 200
    data, _ = parse_sse(resp.content)
    last = json.loads(data[-1])
    assert last["error"]["code"] == 502 and last["choices"][0]["finish_reason"] == "error"
    assert "[DONE]" not in data
    contents = [json.loads(d)["choices"][0]["delta"].get("content") for d in data[1:-1]]
    assert contents and all(contents)  # at least one token before the error
    whole = fc.post("/api/v1/chat/completions", json=pinned("mid_stream"))
    assert whole.status_code == 502


def test_reset_drops_the_connection(fc: httpx.Client) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)), \
            fc.stream("POST", "/api/v1/chat/completions", json=pinned("reset", stream=True)) as r:
        r.read()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        fc.post("/api/v1/chat/completions", json=pinned("reset"))


def test_malformed_chunk_then_the_stream_goes_on(fc: httpx.Client) -> None:
    resp = fc.post("/api/v1/chat/completions", json=pinned("malformed_chunk", stream=True))
    data, _ = parse_sse(resp.content)
    bad = []
    for d in data:
        if d == "[DONE]":
            continue
        try:
            json.loads(d)
        except json.JSONDecodeError:
            bad.append(d)
    assert len(bad) == 1 and bad[0].startswith("{")
    assert data[-1] == "[DONE]"
    whole = fc.post("/api/v1/chat/completions", json=pinned("malformed_chunk"))
    assert whole.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(whole.content)


def _wait_idle(srv: MockServerThread) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        stats = srv.stats()
        if stats["requests_in_flight"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def test_hang_before_first_byte_ends_on_disconnect(faulty: MockServerThread) -> None:
    timeout = httpx.Timeout(10, read=0.3)
    with httpx.Client(base_url=faulty.root_url, timeout=timeout) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/api/v1/chat/completions", json=pinned("hang_first_byte", stream=True))
    assert _wait_idle(faulty)["requests_in_flight"] == 0


def test_hang_mid_stream_ends_on_disconnect(faulty: MockServerThread) -> None:
    received = b""
    body = pinned("hang_mid_stream", stream=True)
    with httpx.Client(base_url=faulty.root_url, timeout=httpx.Timeout(10, read=0.3)) as c, \
            pytest.raises(httpx.ReadTimeout), c.stream("POST", "/api/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        for part in r.iter_raw():
            received += part
    assert b'"content":"' in received and b"[DONE]" not in received
    stats = _wait_idle(faulty)
    assert stats["requests_in_flight"] == 0
    assert stats["providers"]["hang-mid-stream"]["in_flight"] == 0  # the slot came back


def test_hang_is_bounded_by_hang_max_s() -> None:
    prof = profile(errors={"hang_first_byte": 1.0, "hang_max_s": 0.2})
    body = json.dumps(chat_body()).encode()
    with MockServerThread(make_farm({"h": {"name": "H", "profile": prof}})) as srv, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b"
                  % (len(body), body))
        start = time.monotonic()
        with contextlib.suppress(ConnectionResetError):  # aborted: a reset, or a plain close
            assert s.recv(100) == b""  # closed without a single byte
        assert time.monotonic() - start < 4


def test_errors_are_counted_by_kind(faulty: MockServerThread, fc: httpx.Client) -> None:
    fc.post("/api/v1/chat/completions", json=pinned("http_502"))
    stats = faulty.stats()["providers"]
    assert stats["http-502"]["errors"]["http_502"] >= 1
    assert stats["http-502"]["requests"] >= stats["http-502"]["errors"]["http_502"]


def test_scheduled_outage_window(fc: httpx.Client, faulty: MockServerThread) -> None:
    resp = fc.post("/api/v1/chat/completions", json=pinned("down"))
    assert resp.status_code == 503 and resp.json()["error"]["code"] == 503
    assert faulty.stats()["providers"]["down"]["outage"] == 503
    window = OutageWindow(start_s=10, duration_s=5, every_s=60, status=502)
    assert [window.active(t) for t in (0, 9.9, 10, 14.9, 15, 69, 70, 74.9, 75)] == [
        False, False, True, True, False, False, True, True, False]
    once = OutageWindow(start_s=1, duration_s=2)
    assert [once.active(t) for t in (0.5, 1, 2.9, 3, 500)] == [False, True, True, False, False]


def test_runtime_outage_via_control_api(fc: httpx.Client, faulty: MockServerThread) -> None:
    ok = pinned("healthy")
    assert fc.post("/api/v1/chat/completions", json=ok).status_code == 200
    toggled = fc.post("/_mock/outage", json={"provider": "healthy", "active": True, "status": 502})
    assert toggled.status_code == 200 and toggled.json()["active"] is True
    assert fc.post("/api/v1/chat/completions", json=ok).status_code == 502
    assert faulty.stats()["providers"]["healthy"]["outage"] == 502
    fc.post("/_mock/outage", json={"provider": "healthy", "active": False})
    assert fc.post("/api/v1/chat/completions", json=ok).status_code == 200
    faulty.set_outage("healthy", True, status=500)
    assert fc.post("/api/v1/chat/completions", json=ok).status_code == 500
    faulty.set_outage("healthy", False)
    assert fc.post("/api/v1/chat/completions", json=ok).status_code == 200
