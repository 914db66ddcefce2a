"""The raw-socket transport under the sync driver: chunked decoding, framing, keep-alive, stale
connections, errors; and sound figures against the mock. Each case runs both
ways a body is read: pushed from the hub by the loop's `ReadMultiplexer` (the default) and pulled by the
request's greenlet (`multiplex=False`, the path where epoll is missing)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from gevent.server import StreamServer
from paced_server import SSE_EVENTS, paced_server

from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.request import ChatRequest, Timeouts, prepare
from tokenpulse.core.wire.chunked import ChunkedDecoder
from tokenpulse.mock import MockServerThread
from tokenpulse.transports.gevent_loop import make_sync_transport
from tokenpulse.transports.gevent_loop.driver import SyncStreamDriver
from tokenpulse.transports.gevent_loop.rawsocket import RawSocketTransport

MODEL = "nvidia/nemotron-3-super-120b-a12b"
TIMEOUTS = Timeouts(connect=5, ttft=10, idle=5, total=20)


def test_chunked_decoder_any_split() -> None:
    wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    whole = ChunkedDecoder()
    assert whole.feed(wire) == b"hello world" and whole.done
    bytewise = ChunkedDecoder()
    out = b"".join(bytewise.feed(wire[i:i + 1]) for i in range(len(wire)))
    assert out == b"hello world" and bytewise.done
    for bad in (b"zz\r\n", b"3\r\nabcX\r\n"):
        with pytest.raises(ValueError):
            ChunkedDecoder().feed(bad)


SSE_BODY = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in SSE_EVENTS) + b"data: [DONE]\n\n"


def chunked(body: bytes, parts: int = 3, terminate: bool = True) -> bytes:
    step = max(1, len(body) // parts)
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step]) for i in range(0, len(body), step))
    return out + (b"0\r\n\r\n" if terminate else b"")


class Server:
    """A gevent StreamServer answering each request with `respond(n) -> (bytes, close_after)`."""

    def __init__(self, respond: Callable[[int], tuple[bytes, bool]]) -> None:
        self.respond = respond
        self.requests = 0
        self.connections = 0
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def _handle(self, sock, _addr) -> None:  # type: ignore[no-untyped-def]
        self.connections += 1
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += sock.recv(65536)
            buf = rest[length:]
            self.requests += 1
            payload, close = self.respond(self.requests)
            sock.sendall(payload)
            if close:
                sock.close()
                return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"


@pytest.fixture()
def serve() -> Iterator[Callable[[Callable[[int], tuple[bytes, bool]]], Server]]:
    servers: list[Server] = []

    def start(respond: Callable[[int], tuple[bytes, bool]]) -> Server:
        srv = Server(respond)
        srv.server.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.server.stop()


def sse_response(body: bytes, *, framing: str = "chunked") -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Generation-Id: gen-9\r\n"
    if framing == "chunked":
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body)
    if framing == "length":
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    return head + b"Connection: close\r\n\r\n" + body


READ_MODES = pytest.mark.parametrize("multiplex", [True, False], ids=["push", "pull"])


def run(url: str, transport: RawSocketTransport | None = None, *,  # type: ignore[no-untyped-def]
        multiplex: bool = True):
    driver = SyncStreamDriver(transport or RawSocketTransport(multiplex=multiplex))
    return driver.run(prepare(url, ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])), TIMEOUTS)


@READ_MODES
@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
def test_framings_give_the_same_result(serve, framing: str, multiplex: bool) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda n: (sse_response(SSE_BODY, framing=framing), framing == "close"))
    result = run(srv.url, multiplex=multiplex)
    assert result.ok, result.error_message
    assert result.output_tokens == 2 and result.chunk_count == 2 and result.generation_id == "gen-9"


@READ_MODES
def test_keep_alive_reuses_one_connection_and_retries_a_stale_one(serve, multiplex: bool) -> None:  # type: ignore[no-untyped-def]
    # The server closes the connection after its 2nd response, as servers do with idle connections.
    srv = serve(lambda n: (sse_response(SSE_BODY), n == 2))
    transport = RawSocketTransport(multiplex=multiplex)
    results = [run(srv.url, transport) for _ in range(4)]
    assert all(r.ok for r in results), [r.error_message for r in results]
    assert srv.requests == 4 and srv.connections == 2  # 1-2 on the first, 3 retried onto a new one, 4 reused


@READ_MODES
def test_dropped_stream_and_error_status(serve, multiplex: bool) -> None:  # type: ignore[no-untyped-def]
    cut = SSE_BODY[: len(SSE_BODY) // 2]
    srv = serve(lambda n: (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + chunked(cut, terminate=False), True))
    dropped = run(srv.url, multiplex=multiplex)  # the chunked body never ended: the connection dropped
    assert dropped.error_class is ErrorClass.CONNECT_ERROR and "before the body was complete" in dropped.error_message
    body = json.dumps({"error": {"code": 429, "message": "slow down"}}).encode()
    srv2 = serve(lambda n: (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 3\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(body) + body, False))
    limited = run(srv2.url, multiplex=multiplex)
    assert limited.error_class is ErrorClass.RATE_LIMITED and limited.retry_after_s == 3
    assert "slow down" in (limited.error_message or "")
    bad = serve(lambda n: (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", True))
    assert run(bad.url, multiplex=multiplex).error_class is ErrorClass.PROTOCOL_ERROR


@READ_MODES
def test_empty_error_bodies_and_bad_lengths(serve, multiplex: bool) -> None:  # type: ignore[no-untyped-def]
    """`Content-Length: 0` ends the body at once (no wait for bytes that never come), and the
    connection is reused; an invalid Content-Length is a protocol error."""
    srv = serve(lambda n: (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n", False))
    transport = RawSocketTransport(multiplex=multiplex)
    results = [run(srv.url, transport) for _ in range(2)]
    assert [r.error_class for r in results] == [ErrorClass.RATE_LIMITED] * 2
    assert results[0].e2e_s is not None and results[0].e2e_s < TIMEOUTS.ttft
    assert srv.connections == 1
    bad = serve(lambda n: (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 1x\r\n\r\n", True))
    assert run(bad.url, multiplex=multiplex).error_class is ErrorClass.PROTOCOL_ERROR


def test_refused_connection_is_a_connect_error() -> None:
    srv = StreamServer(("127.0.0.1", 0), lambda s, a: None)
    srv.start()
    port = srv.server_port
    srv.stop()
    assert run(f"http://127.0.0.1:{port}/v1").error_class is ErrorClass.CONNECT_ERROR


def test_sound_figures_against_the_mock() -> None:
    with MockServerThread() as mock:
        request = prepare(mock.base_url, ChatRequest(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                     max_tokens=24, provider="swiftinfer", min_tokens=24,
                                                     ignore_eos=True, reasoning={"enabled": False}))
        driver = SyncStreamDriver(make_sync_transport("raw"))
        rs = [driver.run(request, TIMEOUTS) for _ in range(3)]
        driver.close()
    assert all(r.ok for r in rs), [r.error_message for r in rs]
    assert [r.output_tokens for r in rs] == [24, 24, 24]
    assert all(r.ttft_s is not None and r.ttfb_s is not None and r.ttfb_s <= r.ttft_s for r in rs)
    assert all(r.chunk_count >= 12 for r in rs)  # 1-2 tokens per chunk (the mock's swiftinfer profile)
    assert rs[0].connection_reused is False and rs[0].connect_s is not None
    assert all(r.connection_reused and r.connect_s is None for r in rs[1:])  # one kept-alive connection


FAULTS = {"rate_limit": ErrorClass.RATE_LIMITED, "http_502": ErrorClass.SERVER_ERROR,
          "mid_stream": ErrorClass.MID_STREAM_ERROR, "reset": ErrorClass.CONNECT_ERROR,
          "hang_first_byte": ErrorClass.TIMEOUT_TTFT, "hang_mid_stream": ErrorClass.TIMEOUT_IDLE,
          "malformed_chunk": ErrorClass.PROTOCOL_ERROR}


@pytest.fixture(scope="module")
def fault_farm() -> Iterator[MockServerThread]:
    from tokenpulse.mock.farm import farm_from_data

    def profile(**errors: object) -> dict[str, object]:
        return {"ttft": {"median_ms": 30, "p99_ms": 40},
                "decode": {"tokens_per_s": 400, "request_jitter": 0, "chunk_jitter": 0},
                "capacity": 64, "keepalive_ms": 0, "errors": {"hang_max_s": 20, **errors}}

    providers: dict[str, object] = {"clean": {"name": "Clean", "profile": profile()}}
    for fault in FAULTS:
        providers[fault.replace("_", "-")] = {"name": f"Fault {fault}", "profile": profile(**{fault: 1.0})}
    data = {"seed": 3, "models": {"raw/plain": {"name": "Raw plain", "context_length": 4096,
                                                "pricing": {"prompt": 1.0, "completion": 2.0},
                                                "output_tokens": {"min": 30, "max": 30}, "providers": providers}}}
    with MockServerThread(farm_from_data(data, "raw-farm")) as srv:
        yield srv


@READ_MODES
@pytest.mark.parametrize("fault", ["clean", *FAULTS])
def test_raw_transport_classifies_the_mocks_faults(fault_farm: MockServerThread, fault: str, multiplex: bool) -> None:
    """The same fault matrix tests/core/test_drivers.py runs on the other transports, on one kept-alive
    raw transport (a fault must not poison the next request on it)."""
    transport = RawSocketTransport(multiplex=multiplex)
    driver = SyncStreamDriver(transport)
    timeouts = Timeouts(connect=2, ttft=0.6, idle=0.6, total=10)

    def request(provider: str) -> object:
        return prepare(fault_farm.base_url, ChatRequest(model="raw/plain", messages=[{"role": "user", "content": "x"}],
                                                        max_tokens=30, provider=provider), want_ground_truth=True)

    result = driver.run(request(fault.replace("_", "-")), timeouts)  # type: ignore[arg-type]
    if fault == "clean":
        assert result.ok and result.output_tokens == 30 and result.truth_lags_s is not None
    else:
        assert result.error_class is FAULTS[fault], (result.error_class, result.error_message)
    after = driver.run(request("clean"), timeouts)  # type: ignore[arg-type]
    assert after.ok, after.error_message
    driver.close()
    assert _mux_streams() == 0  # every stream, failed or not, left the epoll set


@READ_MODES
@pytest.mark.parametrize("head_with_token", [False, True], ids=["token-alone", "token-with-head"])
@pytest.mark.parametrize("kernel_stamps", [True, False])
def test_a_busy_generator_does_not_delay_kernel_stamped_tokens(kernel_stamps: bool, head_with_token: bool,
                                                                 multiplex: bool) -> None:
    """The first token arrives while the Locust process is busy (its hub blocked for 120 ms, as a herd
    of finishing requests can block it): with the kernel's receive time the measured TTFT is the true
    one, also when the token comes in the same read as the response head (then TTFB is true too);
    stamped in user space it is late by the time the process was busy."""
    import time

    import gevent

    sent_ns: list[int] = []
    listener, port = paced_server(sent_ns, head_with_token=head_with_token)
    driver = SyncStreamDriver(RawSocketTransport(kernel_stamps=kernel_stamps, multiplex=multiplex))

    def busy() -> None:
        gevent.sleep(0.01)
        time.sleep(0.12)  # blocks the whole hub, not just this greenlet

    try:
        blocker = gevent.spawn(busy)
        request = prepare(f"http://127.0.0.1:{port}/v1", ChatRequest(model=MODEL, messages=[], max_tokens=2))
        result = driver.run(request, TIMEOUTS)
        blocker.join()
    finally:
        driver.close()
        listener.close()
    assert result.ok and result.ttft_s is not None and result.ttfb_s is not None and sent_ns
    error_s = result.ttft_s - (sent_ns[0] - result.t0_ns) * 1e-9
    if kernel_stamps:
        assert -0.001 < error_s < 0.01
        if head_with_token:
            assert result.ttfb_s == result.ttft_s  # one read: the head's time is the token's
    else:
        assert error_s > 0.05


def _mux_streams() -> int:
    from tokenpulse.transports.gevent_loop.readmux import multiplexer

    mux = multiplexer()
    return 0 if mux is None else len(mux)


def test_push_runs_the_consumer_in_the_hub_and_leaves_nothing_registered() -> None:
    """Bytes that came with the head go to the consumer at once, the rest from the hub as they arrive,
    then b"" once; the socket leaves the multiplexer with the body."""
    import gevent

    sent_ns: list[int] = []
    listener, port = paced_server(sent_ns)
    transport = RawSocketTransport()
    calls: list[tuple[bytes, bool]] = []

    def consumer(data: bytes, receipt_ns: int) -> bool:
        calls.append((data, gevent.getcurrent() is gevent.get_hub()))
        return bool(data)

    try:
        request = prepare(f"http://127.0.0.1:{port}/v1", ChatRequest(model=MODEL, messages=[], max_tokens=2))
        response = transport.open(request, TIMEOUTS)
        response.push(consumer)
        response.close(complete=True)
    finally:
        transport.close()
        listener.close()
    events = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in SSE_EVENTS] + [b"data: [DONE]\n\n"]
    assert b"".join(data for data, _ in calls) == b"".join(events)
    assert calls[-1][0] == b"" and [data for data, _ in calls].count(b"") == 1
    assert any(in_hub for _, in_hub in calls[1:])  # the paced events were read by the hub
    assert _mux_streams() == 0


def test_a_consumer_error_is_raised_in_the_requests_greenlet() -> None:
    sent_ns: list[int] = []
    listener, port = paced_server(sent_ns)
    transport = RawSocketTransport()
    seen: list[bytes] = []

    def consumer(data: bytes, receipt_ns: int) -> bool:
        seen.append(data)
        if len(seen) == 2:
            raise ValueError("consumer bug")
        return True

    try:
        request = prepare(f"http://127.0.0.1:{port}/v1", ChatRequest(model=MODEL, messages=[], max_tokens=2))
        response = transport.open(request, TIMEOUTS)
        with pytest.raises(ValueError, match="consumer bug"):
            response.push(consumer)
        response.close(complete=False)
    finally:
        transport.close()
        listener.close()
    assert len(seen) == 2 and _mux_streams() == 0


def test_a_killed_request_leaves_the_multiplexer(fault_farm: MockServerThread) -> None:
    """Locust stops users by killing their greenlets mid-request: the stream must leave the epoll set
    (a later socket may reuse its file descriptor number)."""
    import gevent

    driver = SyncStreamDriver(RawSocketTransport())
    request = prepare(fault_farm.base_url, ChatRequest(model="raw/plain", messages=[{"role": "user", "content": "x"}],
                                                       max_tokens=30, provider="hang-mid-stream"))
    job = gevent.spawn(driver.run, request, Timeouts(connect=2, ttft=5, idle=5, total=10))
    deadline = gevent.Timeout(5)
    deadline.start()
    try:
        while _mux_streams() == 0:  # the body is being pushed
            gevent.sleep(0.01)
    finally:
        deadline.close()
    job.kill()
    driver.close()
    assert job.dead and _mux_streams() == 0


def test_the_multiplexer_survives_gevents_monkey_patching() -> None:
    """Locust monkey-patches `select`, which removes `select.epoll`: the multiplexer must still exist."""
    import subprocess
    import sys

    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import select; assert not hasattr(select, 'epoll')\n"
            "from tokenpulse.transports.gevent_loop.readmux import multiplexer\n"
            "assert multiplexer() is not None\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
