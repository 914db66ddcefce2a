"""The wire contract: the same bytes give the same outcome and error class on every transport.

A loopback server on plain threads (neither gevent nor asyncio, so it keeps its pace whatever the
client's loop does) plays a byte script per request: the parts of a response, pauses, a close, a
reset, or holding the connection open. Every script runs on every transport that measures: the raw
socket transport under gevent (the Locust path), with its body pushed from the hub and pulled by the
request's greenlet, the lean asyncio transport (the prober and `tokenpulse measure`), and httpx's own
transport under the same async driver (its path behind a proxy). Scripts that
send several answers run them on one transport, so a connection left with unread bytes would show as
the next request reading the previous answer. Each case is bounded by small timeouts.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from paced_server import SSE_EVENTS
from prometheus_client import CollectorRegistry

from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.request import ChatRequest, PreparedRequest, Timeouts, prepare
from tokenpulse.metrics import RequestMetrics
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver, LeanAsyncClient, httpcore_async_client
from tokenpulse.transports.asyncio_loop.lean import LeanTransport
from tokenpulse.transports.gevent_loop.driver import SyncStreamDriver
from tokenpulse.transports.gevent_loop.rawsocket import RawSocketTransport

TIMEOUTS = Timeouts(connect=2, ttft=0.5, idle=0.5, total=3)
#: The server's longest hold: past every client deadline above, short enough to bound a case.
HOLD_S = 4.0

Step = bytes | float | str  # bytes: send; float: pause (s); "close", "reset", "hold"

EVENTS = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in SSE_EVENTS]
DONE = b"data: [DONE]\n\n"
SSE = b"".join(EVENTS) + DONE


def head(*lines: str, status: str = "200 OK", gen: int = 1, sse: bool = True, eol: bytes = b"\r\n") -> bytes:
    fields = [f"HTTP/1.1 {status}", f"X-Generation-Id: gen-{gen}"]
    if sse:
        fields.append("Content-Type: text/event-stream")
    return eol.join(f.encode() for f in [*fields, *lines]) + eol + eol


def chunks(body: bytes, *, parts: int = 3, end: bool = True) -> bytes:
    step = max(1, len(body) // parts)
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step]) for i in range(0, len(body), step))
    return out + (b"0\r\n\r\n" if end else b"")


def chunked_sse(gen: int = 1) -> bytes:
    return head("Transfer-Encoding: chunked", gen=gen) + chunks(SSE)


def trickle(data: bytes, every_s: float, times: int) -> list[Step]:
    return [part for _ in range(times) for part in (data, every_s)]


@dataclass
class Case:
    """Answers to the 1st, 2nd... request (one list of steps each), and the class each must get
    (None: ok). `gens`: the generation id each answer must carry (an answer booked to the wrong request)."""

    answers: list[list[Step]]
    expected: list[ErrorClass | None]
    timeouts: Timeouts = TIMEOUTS
    gens: list[str | None] = field(default_factory=list)
    #: The client's pause between its requests: bytes that arrived on an idle connection before the next
    #: request was sent must never be read as its answer. (Bytes that arrive after it was sent cannot be
    #: told from the answer: HTTP/1.1 has no request ids; the pause keeps the case deterministic.)
    pause_s: float = 0.0


ERROR_JSON = json.dumps({"error": {"code": 429, "message": "slow down"}}).encode()
CASES: dict[str, Case] = {
    # Valid streams, in every framing and head form a server may use.
    "chunked": Case([[chunked_sse()]], [None]),
    "content_length": Case([[head(f"Content-Length: {len(SSE)}") + SSE]], [None]),
    "close_delimited": Case([[head("Connection: close") + SSE, "close"]], [None]),
    "bare_lf_head": Case([[head("Transfer-Encoding: chunked", eol=b"\n") + chunks(SSE)]], [None]),
    "obs_fold_header": Case([[head("Transfer-Encoding: chunked", "X-Note: one,", "  two") + chunks(SSE)]], [None]),
    "continue_100": Case([[b"HTTP/1.1 100 Continue\r\n\r\n", 0.02, chunked_sse()]], [None]),
    "interim_100_and_103": Case([[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                                  + chunked_sse()]], [None]),
    "chunked_and_length": Case([[head("Transfer-Encoding: chunked", "Content-Length: 3") + chunks(SSE)]], [None]),
    "done_left_open": Case([[head("Transfer-Encoding: chunked") + chunks(SSE, end=False), "hold"]], [None]),
    "done_left_open_unframed": Case([[head() + SSE, "hold"]], [None]),
    # HTTP errors.
    "http_429": Case([[head("Retry-After: 2", f"Content-Length: {len(ERROR_JSON)}", status="429 Too Many",
                            sse=False) + ERROR_JSON]], [ErrorClass.RATE_LIMITED]),
    "http_500_no_body": Case([[head("Content-Length: 0", status="500 Internal", sse=False)]],
                             [ErrorClass.SERVER_ERROR]),
    "wrong_content_type": Case([[head("Content-Type: text/html", "Content-Length: 5", sse=False) + b"<p>x"
                                  b"\n"]], [ErrorClass.PROTOCOL_ERROR]),
    "mid_stream_error": Case([[head("Transfer-Encoding: chunked") + chunks(
        EVENTS[1] + b'data: {"error": {"code": 502, "message": "upstream"}, "choices": []}\n\n')]],
        [ErrorClass.MID_STREAM_ERROR]),
    # Framing faults.
    "bad_chunk_size": Case([[head("Transfer-Encoding: chunked") + b"zz\r\n" + SSE]], [ErrorClass.PROTOCOL_ERROR]),
    "length_longer_than_body": Case([[head("Content-Length: 500") + EVENTS[0] + EVENTS[1], "close"]],
                                    [ErrorClass.CONNECT_ERROR]),
    "length_longer_than_body_after_done": Case([[head(f"Content-Length: {len(SSE) + 100}") + SSE, "close"]],
                                               [None]),  # the answer ended ([DONE]) before the lie showed
    "length_shorter_than_body": Case([[head(f"Content-Length: {len(SSE) // 2}") + SSE]], [ErrorClass.TRUNCATED]),
    "invalid_length": Case([[head("Content-Length: 12abc") + SSE]], [ErrorClass.PROTOCOL_ERROR]),
    "conflicting_lengths": Case([[head("Content-Length: 10", "Content-Length: 20") + SSE]],
                                [ErrorClass.PROTOCOL_ERROR]),
    "length_of_5000_digits": Case([[head("Content-Length: " + "9" * 5000) + SSE]], [ErrorClass.PROTOCOL_ERROR]),
    "chunked_body_cut": Case([[head("Transfer-Encoding: chunked") + chunks(SSE[:60], end=False), "close"]],
                             [ErrorClass.CONNECT_ERROR]),
    # Head faults.
    "close_before_head": Case([["close"]], [ErrorClass.CONNECT_ERROR]),
    "close_inside_head": Case([[b"HTTP/1.1 200 OK\r\nContent-Ty", "close"]], [ErrorClass.CONNECT_ERROR]),
    "bad_status_line": Case([[b"HTTP/1.1 2OO OK\r\n\r\n" + SSE]], [ErrorClass.PROTOCOL_ERROR]),
    "not_http": Case([[b"SSH-2.0-OpenSSH_9.6\r\n\r\n"]], [ErrorClass.PROTOCOL_ERROR]),
    "bad_header_line": Case([[b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n" + SSE]], [ErrorClass.PROTOCOL_ERROR]),
    "fold_before_any_header": Case([[b"HTTP/1.1 200 OK\r\n folded\r\n\r\n" + SSE]], [ErrorClass.PROTOCOL_ERROR]),
    "oversized_head": Case([[head("X-Pad: " + "a" * 70_000, "Transfer-Encoding: chunked") + chunks(SSE)]],
                           [ErrorClass.PROTOCOL_ERROR]),
    "switching_protocols": Case([[b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "hold"]],
                                [ErrorClass.PROTOCOL_ERROR]),
    # Silence, trickles and resets.
    "hang_before_head": Case([["hold"]], [ErrorClass.TIMEOUT_TTFT]),
    "hang_mid_stream": Case([[head("Transfer-Encoding: chunked") + chunks(EVENTS[0] + EVENTS[1], end=False), "hold"]],
                            [ErrorClass.TIMEOUT_IDLE]),
    "body_without_newline_open": Case([[head("Transfer-Encoding: chunked") + chunks(b"data: " + b"x" * 3000,
                                                                                     end=False), "hold"]],
                                      [ErrorClass.TIMEOUT_TTFT]),
    "body_without_newline_closed": Case([[head("Connection: close") + b"data: " + b"x" * 3000, "close"]],
                                        [ErrorClass.TRUNCATED]),
    "slowloris_before_token": Case([[head("Connection: close"), *trickle(b"x", 0.1, 12), "hold"]],
                                   [ErrorClass.TIMEOUT_TTFT]),
    "slowloris_after_token": Case([[head("Connection: close") + EVENTS[0] + EVENTS[1], *trickle(b":", 0.1, 25),
                                    "hold"]], [ErrorClass.TIMEOUT_TOTAL],
                                  timeouts=Timeouts(connect=2, ttft=0.5, idle=0.5, total=1.2)),
    "reset_mid_body": Case([[head("Transfer-Encoding: chunked") + chunks(EVENTS[0] + EVENTS[1], end=False), 0.05,
                             "reset"]], [ErrorClass.CONNECT_ERROR]),
    # One transport, several requests: a connection must never carry an answer to the wrong request.
    "closed_keep_alive": Case([[chunked_sse(1), 0.05, "close"], [chunked_sse(2)]], [None, None],
                              gens=["gen-1", "gen-2"]),
    "continue_100_then_next_request": Case([[b"HTTP/1.1 100 Continue\r\n\r\n", 0.02, chunked_sse(1)],
                                            [chunked_sse(2)]], [None, None], gens=["gen-1", "gen-2"]),
    "surplus_after_response": Case([[chunked_sse(1) + chunked_sse(999)], [chunked_sse(2)]], [None, None],
                                   gens=["gen-1", "gen-2"]),
    "surplus_written_after_response": Case([[chunked_sse(1), chunked_sse(999)], [chunked_sse(2)]], [None, None],
                                           gens=["gen-1", "gen-2"], pause_s=0.1),
    "fault_then_next_request": Case([[head("Transfer-Encoding: chunked") + b"zz\r\n"], [chunked_sse(2)]],
                                    [ErrorClass.PROTOCOL_ERROR, None], gens=[None, "gen-2"]),
    "done_left_open_then_next_request": Case([[head("Transfer-Encoding: chunked", gen=1) + chunks(SSE, end=False),
                                               "hold"], [chunked_sse(2)]], [None, None], gens=["gen-1", "gen-2"]),
}


class ScriptServer:
    """Answers the n-th request it receives (over any connection) with `answers[n - 1]`."""

    def __init__(self, answers: list[list[Step]]) -> None:
        self.answers = answers
        self.requests = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._conns.append(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(HOLD_S)
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                request_head, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in request_head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                with self._lock:
                    self.requests += 1
                    answer = self.answers[min(self.requests, len(self.answers)) - 1]
                if not self._play(conn, answer):
                    return
        except OSError:
            pass  # the client went away (a deadline closed its side): the script ends here
        finally:
            conn.close()

    def _play(self, conn: socket.socket, steps: list[Step]) -> bool:
        """Play one answer; False when the connection is over."""
        for step in steps:
            if isinstance(step, bytes):
                conn.sendall(step)
            elif isinstance(step, float):
                time.sleep(step)
            elif step == "hold":
                self._stop.wait(HOLD_S)
                return False
            elif step == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return False
            else:
                return False  # "close"
        return True

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for conn in self._conns:  # wakes a thread blocked reading a next request that never comes
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(HOLD_S + 1)


def _request(port: int) -> PreparedRequest:
    return prepare(f"http://127.0.0.1:{port}/v1", ChatRequest(model="m", messages=[{"role": "user", "content": "x"}]))


Runner = Callable[[PreparedRequest, Timeouts, int, float], list[StreamResult]]


def run_raw(multiplex: bool) -> Runner:
    def run(request: PreparedRequest, timeouts: Timeouts, count: int, pause_s: float) -> list[StreamResult]:
        import gevent

        driver = SyncStreamDriver(RawSocketTransport(multiplex=multiplex))
        results = []
        try:
            for i in range(count):
                if i:
                    gevent.sleep(pause_s)
                results.append(driver.run(request, timeouts))
            return results
        finally:
            driver.close()
    return run


async def _run_async(driver: AsyncStreamDriver, request: PreparedRequest, timeouts: Timeouts, count: int,
                     pause_s: float) -> list[StreamResult]:
    results = []
    async with driver:
        for i in range(count):
            if i:
                await asyncio.sleep(pause_s)
            results.append(await driver.run(request, timeouts))
    return results


def run_lean(request: PreparedRequest, timeouts: Timeouts, count: int, pause_s: float) -> list[StreamResult]:
    return asyncio.run(_run_async(AsyncStreamDriver(LeanAsyncClient(LeanTransport())), request, timeouts, count,
                                  pause_s))


def run_httpcore(request: PreparedRequest, timeouts: Timeouts, count: int, pause_s: float) -> list[StreamResult]:
    async def go() -> list[StreamResult]:
        async with httpcore_async_client() as client:
            return await _run_async(AsyncStreamDriver(client), request, timeouts, count, pause_s)
    return asyncio.run(go())


TRANSPORTS: dict[str, Runner] = {"raw-push": run_raw(True), "raw-pull": run_raw(False), "lean": run_lean,
                                 "httpcore": run_httpcore}
#: Transports that report the connection phase (httpcore's pool does not say when it connects).
PHASED = ("raw-push", "raw-pull", "lean")


@pytest.fixture()
def script_server() -> Iterator[Callable[[list[list[Step]]], ScriptServer]]:
    servers: list[ScriptServer] = []

    def start(answers: list[list[Step]]) -> ScriptServer:
        server = ScriptServer(answers)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def outcome(result: StreamResult) -> str:
    return "ok" if result.ok else str(result.error_class)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_bytes_same_class(script_server: Callable[[list[list[Step]]], ScriptServer], case: str,
                               transport: str) -> None:
    spec = CASES[case]
    server = script_server(spec.answers)
    results = TRANSPORTS[transport](_request(server.port), spec.timeouts, len(spec.expected), spec.pause_s)
    got = [outcome(r) for r in results]
    assert got == ["ok" if e is None else str(e) for e in spec.expected], [r.error_message for r in results]
    for result, gen in zip(results, spec.gens, strict=False):  # gens is empty where ids are not checked
        if gen is not None:
            assert result.generation_id == gen, "an answer was booked to the wrong request"


@pytest.mark.parametrize("transport", PHASED)
def test_connect_phase_is_recorded_and_reuse_is_explicit(script_server: Callable[[list[list[Step]]], ScriptServer],
                                                         transport: str) -> None:
    """The first request pays the connect and says so; the next reuses the connection (no phase)."""
    server = script_server([[chunked_sse(1)], [chunked_sse(2)]])
    first, second = TRANSPORTS[transport](_request(server.port), TIMEOUTS, 2, 0.0)
    assert first.ok and second.ok
    assert first.connection_reused is False and first.connect_s is not None and first.connect_s >= 0
    assert first.tls_s is None  # plain TCP
    assert second.connection_reused is True and second.connect_s is None
    assert server.connections == 1
    assert first.ttfb_s is not None and first.ttfb_s >= first.connect_s  # TTFB (and so TTFT) includes it
    metrics = RequestMetrics(CollectorRegistry())
    labels = {"endpoint": "e", "model": "m", "provider": "p"}
    metrics.touch(labels)
    for result in (first, second):
        metrics.observe(labels, result)
    assert metrics.connection_phase.labels(**labels, phase="connect")._count.get() == 1  # one connection opened
    assert metrics.connection_phase.labels(**labels, phase="tls")._count.get() == 0


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_refused_connection_is_a_connect_error(transport: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening
        (result,) = TRANSPORTS[transport](_request(port), TIMEOUTS, 1, 0.0)
    assert result.error_class is ErrorClass.CONNECT_ERROR and result.connect_s is None
