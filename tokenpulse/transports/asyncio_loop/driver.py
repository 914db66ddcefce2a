"""Async driver over httpx, used by the prober and `tokenpulse measure`.

It only sends, reads bytes, stamps them with the monotonic clock at receipt and feeds the recorder.
Deadlines are enforced by one lazily re-armed loop timer (`_Deadline`, no task and no new timer per
read), and are chosen by `DeadlineClock` so that an expiry is classified as TTFT, idle or total.

Every transport hands the driver one response shape, `AsyncResponse` (status, headers, when the head
arrived, the connection phase, and `push(sink)` for the body), as the sync driver's transports hand it
`SyncResponse`. `LeanTransport`, the default, pushes each read's bytes, with the time they were
delivered, from the connection's `data_received`: stamps at receipt, no await per SSE event. httpx's
own transport (behind a proxy) is adapted by `_IteratedResponse`: its body is iterated with
`aiter_raw()`, each read stamped when the iterator yields it, and its head when the response arrives.

The default client runs on `LeanTransport` (lean.py): httpx's own pool (httpcore) degrades
past ~100 streams in one pool (DESIGN.md §6; benchmarks/client_lag.py, variant async-httpcore), the
lean transport carries what the bare reader carries within a small factor. httpx's transport is used
only when a proxy is configured, since the lean transport does not speak to proxies.

Every failure, whichever transport raised it (the lean transport's wire errors, httpx's exceptions
behind a proxy), is classified by the one map of the wire layer, `tokenpulse.core.wire.classify`, as the sync
driver's are: the same bytes give the same class on the prober and the Locust path.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import time
import urllib.request
from collections.abc import Iterable
from typing import Any, Protocol

import httpx

from tokenpulse.core.deadlines import DeadlineClock
from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.recorder import DEFAULT_MAX_RESPONSE_BYTES, StreamRecorder, StreamResult
from tokenpulse.core.request import PreparedRequest, Timeouts
from tokenpulse.core.wire import MAX_HEAD_BYTES, ProtocolViolation, classify, describe
from tokenpulse.transports.asyncio_loop.lean import LeanTransport, Sink
from tokenpulse.transports.contract import ReceivedHead

_NS = 1e-9

def new_async_client(*, max_connections: int = 100) -> httpx.AsyncClient:
    """The driver's client: `LeanTransport`, or httpx's default transport when a proxy is configured in
    the environment. No overall httpx timeouts (the driver's are finer), keep-alive, no redirects, and
    no cookies: measured requests are independent, and a sticky-session cookie set by one answer must
    not pin the next request to the same backend."""
    if uses_proxy():
        client = httpcore_async_client(max_connections=max_connections)
    else:
        client = LeanAsyncClient(LeanTransport())
    client.cookies = _NoCookies()  # a CookieJar is kept as is (a Cookies object would be copied)
    return client


class LeanAsyncClient(httpx.AsyncClient):
    """An httpx client over `LeanTransport` whose measured requests skip the client's own layers.

    Other requests (credits, discovery) go through httpx as usual. `AsyncStreamDriver` hands its
    requests straight to `lean_transport`: httpx's per-request machinery (merging defaults, the auth
    flow, cookie extraction through urllib compatibility objects, event hooks, redirect handling) cost
    about as much CPU per probe as the transport itself (benchmarks/prober_scale.py, py-spy), and none
    of it applies to a client built here: no auth, no hooks, no redirects, no cookies."""

    def __init__(self, transport: LeanTransport) -> None:
        super().__init__(transport=transport, timeout=httpx.Timeout(None), follow_redirects=False)
        self.lean_transport = transport


def httpcore_async_client(*, max_connections: int = 100) -> httpx.AsyncClient:
    """httpx's own transport (httpcore pool), for side-by-side benchmarks against the default."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(timeout=httpx.Timeout(None), limits=limits, follow_redirects=False)


def uses_proxy() -> bool:
    """True when a proxy is configured in the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, ...)."""
    return any(scheme != "no" for scheme in urllib.request.getproxies())


class AsyncResponse(ReceivedHead, Protocol):
    """What an async transport returns to the driver; raises only what `tokenpulse.core.wire.classify` maps."""

    async def push(self, sink: Sink) -> None:
        """Hand every read of the body to `sink(data, received_ns)` until the body ends or `sink`
        returns False."""
        ...

    async def aclose(self) -> None: ...


class _IteratedResponse:
    """httpx's own transport (behind a proxy) in the driver's response shape: the body iterated, each
    read stamped when the iterator yields it; no connection phase (httpcore's pool does not say)."""

    __slots__ = ("_response", "connect_ns", "headers", "received_ns", "reused", "status", "tls_ns")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        items = response.headers.multi_items()
        _check_head_size(items)
        self.headers: Iterable[tuple[str, str]] = items
        self.received_ns: int | None = None
        self.connect_ns: int | None = None
        self.tls_ns: int | None = None
        self.reused: bool | None = None

    async def push(self, sink: Sink) -> None:
        clock = time.monotonic_ns
        async for data in self._response.aiter_raw():
            if not sink(data, clock()):
                return

    async def aclose(self) -> None:
        await self._response.aclose()


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that never stores or sends anything (see `new_async_client`)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


class AsyncStreamDriver:
    """Runs one streaming request at a time per call; safe to call concurrently."""

    def __init__(self, client: httpx.AsyncClient | None = None, *,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._client = client or new_async_client()
        self._owns_client = client is None
        self._max_bytes = max_response_bytes
        self._lean: LeanTransport | None = (self._client.lean_transport if isinstance(self._client, LeanAsyncClient)
                                            else None)
        self._requests: dict[int, tuple[PreparedRequest, Timeouts, httpx.Request]] = {}

    def _lean_request(self, request: PreparedRequest, timeouts: Timeouts) -> httpx.Request:
        """The httpx.Request for `request`, built once per PreparedRequest and timeouts.

        Why: the prober sends the same PreparedRequest for a target every interval, and building an
        httpx.Request (URL parsing, header normalisation) was ~5 % of its CPU (py-spy). LeanTransport only
        reads a request (method, URL, headers, body, extensions), so one object can be sent any number
        of times, concurrently too. The entry keeps the PreparedRequest alive, so its id stays unique."""
        key = id(request)
        entry = self._requests.get(key)
        if entry is not None and entry[0] is request and entry[1] == timeouts:
            return entry[2]
        # httpx.Request adds Host and Content-Length, as the client would.
        built = httpx.Request("POST", request.url, headers=request.headers, content=request.body,
                              extensions=_extensions(timeouts))
        if len(self._requests) >= _REQUEST_CACHE_LIMIT:
            self._requests.clear()
        self._requests[key] = (request, timeouts, built)
        return built

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncStreamDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(self, request: PreparedRequest, timeouts: Timeouts, *, keep_text: bool = False) -> StreamResult:
        clock = time.monotonic_ns
        lean = self._lean
        if lean is not None:
            http_request = self._lean_request(request, timeouts)
        else:
            http_request = self._client.build_request("POST", request.url, headers=dict(request.headers),
                                                      content=request.body, extensions=_extensions(timeouts))
        t0 = clock()
        recorder = StreamRecorder(t0, secrets=request.secrets, max_response_bytes=self._max_bytes,
                                  keep_text=keep_text, prompt_tokens_hint=request.prompt_tokens_hint,
                                  pin=request.pin)
        deadline = _Deadline(DeadlineClock(t0, timeouts))
        response: AsyncResponse | None = None

        def on_bytes(data: bytes, now: int) -> bool:
            """One read and its receipt time: record, move the idle deadline; False once the recorder
            needs no more."""
            recorder.on_bytes(now, data)
            if recorder.finished:
                return False
            if deadline.last_read_ns is not None:
                deadline.last_read_ns = now
            elif recorder.first_token_seen:  # before it, the TTFT (or total) deadline is fixed
                deadline.first_token(now)
            return True

        try:
            try:
                if lean is not None:
                    response = await lean.open(http_request)
                else:
                    sent = await self._client.send(http_request, stream=True)
                    try:
                        response = _IteratedResponse(sent)
                    except BaseException:
                        await sent.aclose()
                        raise
                head_ns = response.received_ns
                recorder.on_headers(clock() if head_ns is None else head_ns, response.status, response.headers)
                await response.push(on_bytes)  # until the body ends or the recorder finishes ([DONE] too)
                recorder.on_eof(clock())
            finally:
                timed_out = deadline.close()
        except asyncio.CancelledError:
            if not timed_out:
                raise
            recorder.on_failure(clock(), deadline.expiry, DeadlineClock.describe(deadline.expiry, timeouts))
        except Exception as exc:
            error_class = classify(exc)
            if error_class is None:
                raise  # not a transport failure: a bug, never booked as the provider's
            message = (DeadlineClock.describe(error_class, timeouts) if error_class is ErrorClass.TIMEOUT_CONNECT
                       else describe(exc))
            recorder.on_failure(clock(), error_class, message)
        finally:
            if response is not None:
                await response.aclose()
        result = recorder.result()
        if response is not None:
            connect_ns, tls_ns = response.connect_ns, response.tls_ns
            result.connect_s = None if connect_ns is None else connect_ns * _NS
            result.tls_s = None if tls_ns is None else tls_ns * _NS
            result.connection_reused = response.reused
        return result


class _Deadline:
    """The request's deadline on the event loop: one timer, re-armed lazily (the asyncio twin of the
    sync driver's `_Watchdog`, which explains the scheme: a read after the first token only stores its
    time in `last_read_ns`, and the timer asks `DeadlineClock` what applies when it fires).

    Why not `asyncio.timeout` rescheduled per read, as before: that cancels a timer handle and pushes a
    new one on the loop's heap for every SSE event of every probe. An expiry cancels the request's task,
    exactly as `asyncio.timeout` does (including its `uncancel` bookkeeping, so an outside cancellation
    is never mistaken for a timeout); it is checked against the monotonic clock, so it never happens
    before the deadline.
    """

    __slots__ = ("_cancelling", "_deadlines", "_handle", "_fire_ns", "_loop", "_task", "closed", "expired",
                 "expiry", "last_read_ns")

    def __init__(self, deadlines: DeadlineClock) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("the driver must run in a task")
        self._loop = asyncio.get_running_loop()
        self._task = task
        self._cancelling = task.cancelling()
        self._deadlines = deadlines
        self._handle: asyncio.TimerHandle | None = None
        self._fire_ns: int | None = None
        self.closed = False
        self.expired = False
        #: None until the first token; then the time of the latest read (the idle deadline counts from it).
        self.last_read_ns: int | None = None
        deadline_ns, self.expiry = self._deadlines.current(self.last_read_ns)
        if deadline_ns is not None:
            self._arm(deadline_ns)

    def first_token(self, now_ns: int) -> None:
        self.last_read_ns = now_ns
        deadline_ns, self.expiry = self._deadlines.current(self.last_read_ns)
        if deadline_ns is not None and (self._fire_ns is None or deadline_ns < self._fire_ns):
            self._arm(deadline_ns)

    def _arm(self, at_ns: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._fire_ns = at_ns
        # loop.time() is time.monotonic(): the same clock as monotonic_ns.
        self._handle = self._loop.call_at(at_ns * _NS, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._fire_ns = None
        if self.closed or self.expired:
            return
        deadline_ns, self.expiry = self._deadlines.current(self.last_read_ns)
        if deadline_ns is None:
            return
        if time.monotonic_ns() >= deadline_ns:
            self.expired = True
            self._task.cancel()
        else:
            self._arm(deadline_ns)

    def close(self) -> bool:
        """Disarm for good. True when this deadline expired and no other cancellation is pending: the
        CancelledError in flight is then ours, to be reported as a timeout."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.closed = True
        return self.expired and self._task.uncancel() <= self._cancelling


#: Built requests kept by one driver (the prober's targets; a load test's unique prompts would churn it).
_REQUEST_CACHE_LIMIT = 10_000


def _check_head_size(headers: list[tuple[str, str]]) -> None:
    """The wire layer's head limit, for a transport that did not read the head with its `HeadReader`
    (httpcore, behind a proxy: h11 only limits a head that arrives in pieces), so that an oversized head
    is a protocol error on every path."""
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    if size > MAX_HEAD_BYTES:
        raise ProtocolViolation(f"response head larger than {MAX_HEAD_BYTES} bytes")


def _extensions(timeouts: Timeouts) -> dict[str, object]:
    return {"timeout": {"connect": timeouts.connect, "read": None, "write": timeouts.connect,
                        "pool": timeouts.connect}}
