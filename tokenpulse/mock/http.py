"""A small HTTP/1.1 server protocol on raw asyncio: request parsing, keep-alive, chunked responses.

Why not a framework: the mock must pace 1,000+ concurrent SSE streams on one core, and DESIGN.md §6
measured a raw asyncio.Protocol at ~140k chunks/s against ~110k for Starlette/uvicorn. The subset
needed is small: one request at a time per connection (pipelined requests wait in the buffer),
Content-Length bodies only (a chunked request body gets 411), responses either with Content-Length or
`Transfer-Encoding: chunked`. A client disconnect cancels the request's task at once, which is what
ends an injected hang.

Idle connections are bounded two ways (`ConnectionLimits`), since every open connection holds a file
descriptor and enough idle ones used to leave none for new clients: a connection that has no request
in progress must deliver a complete request within `idle_timeout_s` (measured from when it became
idle; bytes of a partial request do not extend it, so a slow trickle cannot hold it either), and at
`max_connections` a new connection closes the longest-idle one (or is refused when none is idle).
The idle check is one lazily re-armed timer per connection: a request start or end only stores a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

__all__ = ["ConnectionLimits", "Connections", "Handler", "HttpConnection", "Request", "Responder"]

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
#: nginx's keep-alive timeout, far past the keep-alive expiry of common clients (httpx's and the
#: prober's: 5 s), so a client seldom sends on a connection that the mock is closing.
DEFAULT_IDLE_TIMEOUT_S = 75.0
_TIMER_SLACK_S = 0.002  # uvloop timers may fire up to a millisecond early
_REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    411: "Length Required", 413: "Content Too Large", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 524: "A Timeout Occurred",
    529: "Site Overloaded",
}


@dataclass(slots=True)
class Request:
    """One parsed request. Header names are lowercase; `recv_ns` is time.monotonic_ns() at the moment
    the last byte of the body arrived (the ground-truth t0 of the server side)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    recv_ns: int
    keep_alive: bool


Handler = Callable[[Request, "Responder"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a connection may sit without a complete request, and how many may be open."""

    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_connections: int = 10_000


class Connections:
    """The server's open connections, admitted under `limits` (see the module docstring)."""

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits or ConnectionLimits()
        self.open: set[HttpConnection] = set()

    def admit(self, conn: HttpConnection) -> bool:
        """Register a new connection; at the cap, make room by closing the longest-idle one. False
        (refuse the newcomer) when every open connection is busy with a request."""
        if len(self.open) >= self.limits.max_connections:
            idle = [c for c in self.open if c.idle_since is not None]
            if not idle:
                return False
            idlest = min(idle, key=lambda c: c.idle_since or 0.0)
            self.open.discard(idlest)
            idlest.close()
        self.open.add(conn)
        return True

    def discard(self, conn: HttpConnection) -> None:
        self.open.discard(conn)


class Responder:
    """Writes the single response to one request: either `send()` a whole body, or
    `start_stream()` + `write()`* + `end_stream()`, or `abort()` the connection (a reset)."""

    __slots__ = ("_conn", "finished", "keep_alive", "started")

    def __init__(self, conn: HttpConnection, keep_alive: bool) -> None:
        self._conn = conn
        self.keep_alive = keep_alive
        self.started = False
        self.finished = False

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}", "Server: tokenpulse-mock"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append("Connection: keep-alive" if self.keep_alive else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None,
             content_type: str = "application/json") -> None:
        """A complete response with Content-Length."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = self.finished = True
        hdrs = [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])]
        self._conn.write(self._head(status, hdrs) + body)

    def start_stream(self, status: int, headers: list[tuple[str, str]],
                     content_type: str = "text/event-stream") -> None:
        """Send the head of a chunked response; the body follows with write()."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        hdrs = [("Content-Type", content_type), ("Transfer-Encoding", "chunked"), *headers]
        self._conn.write(self._head(status, hdrs))

    def write(self, data: bytes) -> None:
        """One chunk of the chunked body (never empty: an empty chunk would end the body).
        Called for every SSE event of every stream, hence straight to the transport."""
        conn = self._conn
        if data and conn.writable:
            conn.transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    def end_stream(self) -> None:
        self.finished = True
        self._conn.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drop the connection without a proper end: the client sees a reset."""
        self.keep_alive = False
        self._conn.abort()

    @property
    def paused(self) -> bool:
        return self._conn.write_paused

    async def drain(self) -> None:
        """Wait while the client reads slower than we write (transport flow control)."""
        await self._conn.drain()


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests one at a time and runs `handler` for each in a task."""

    def __init__(self, handler: Handler, connections: Connections) -> None:
        self._handler = handler
        self._connections = connections
        self._idle_timeout_s = connections.limits.idle_timeout_s
        #: When the connection last became idle (no request running), by time.monotonic(), the clock
        #: of loop.time() (uvloop's is cached per iteration and in whole ms: ties would hide which
        #: connection is the longest idle); None while busy.
        self.idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)  # set by connection_made
        self.writable = False  # connected, and neither closing nor aborted
        self.closed = False  # connection_lost has run
        self.write_paused = False
        self._buf = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._continue_sent = False
        self._drain_waiter: asyncio.Future[None] | None = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task of the request being served, if any."""
        return self._task

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of it
        if not self._connections.admit(self):
            self.transport.abort()  # at max_connections and none idle: the client sees a reset
            return
        self.transport.set_write_buffer_limits(high=256 * 1024)
        self.writable = True
        self.idle_since = time.monotonic()
        self._idle_timer = asyncio.get_running_loop().call_at(self.idle_since + self._idle_timeout_s,
                                                              self._idle_check)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._task is None:
            self._next_request()
        elif len(self._buf) > MAX_HEAD + MAX_BODY:
            self.transport.pause_reading()  # a client pipelining far ahead: let TCP push back

    def eof_received(self) -> bool:
        # HTTP clients do not half-close; EOF means the peer is gone. Closing now cancels its stream.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable = False
        self._connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._task is not None:
            self._task.cancel()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # -- used by Responder ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.writable:
            self.transport.write(data)

    def abort(self) -> None:
        if self.writable:
            self.writable = False
            self.transport.abort()

    def close(self) -> None:
        if self.writable:
            self.writable = False
            self.transport.close()

    async def drain(self) -> None:
        if self.closed or not self.write_paused:
            return
        if self._drain_waiter is None or self._drain_waiter.done():
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter

    def _idle_check(self) -> None:
        """The idle timer: close a connection idle for `idle_timeout_s`; otherwise look again when it
        could first be (a busy connection: one timeout from now)."""
        self._idle_timer = None
        if self.closed:
            return
        now = time.monotonic()
        since = self.idle_since
        if since is not None and now >= since + self._idle_timeout_s - _TIMER_SLACK_S:
            self._buf.clear()
            self.close()
            return
        due = (now if since is None else since) + self._idle_timeout_s
        self._idle_timer = asyncio.get_running_loop().call_at(due, self._idle_check)

    def _wake_drain(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- parsing ----------------------------------------------------------------------------------
    def _reject(self, status: int, message: str) -> None:
        """Answer a request we cannot parse and close: the rest of the byte stream is unusable."""
        body = json.dumps({"error": {"code": status, "message": message, "metadata": {}}}).encode()
        Responder(self, keep_alive=False).send(status, body)
        self._buf.clear()
        self.close()

    def _next_request(self) -> None:
        """Parse one complete request from the buffer, if there is one, and start its handler."""
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                self._reject(431, "request head too large")
            return
        try:
            method, target, version, headers = _parse_head(bytes(self._buf[:end]))
        except ValueError as exc:
            self._reject(400, str(exc))
            return
        if "transfer-encoding" in headers:
            self._reject(411, "chunked request bodies are not supported; send Content-Length")
            return
        declared = headers.get("content-length", "0")
        if not declared.isdigit() or not declared.isascii():  # int() would take "+5", " 5" or "1_0"
            self._reject(400, "invalid Content-Length")
            return
        length = int(declared)
        if length > MAX_BODY:
            self._reject(413, "request body too large")
            return
        start = end + 4
        if len(self._buf) - start < length:
            if headers.get("expect", "").lower() == "100-continue" and not self._continue_sent:
                self._continue_sent = True
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        recv_ns = time.monotonic_ns()
        body = bytes(self._buf[start:start + length])
        del self._buf[:start + length]
        self._continue_sent = False
        conn_hdr = headers.get("connection", "").lower()
        keep_alive = ("close" not in conn_hdr) if version == "HTTP/1.1" else ("keep-alive" in conn_hdr)
        path, _, query = target.partition("?")
        request = Request(method, path, query, headers, body, recv_ns, keep_alive)
        self.idle_since = None
        self._task = asyncio.get_running_loop().create_task(self._run(request))

    async def _run(self, request: Request) -> None:
        resp = Responder(self, request.keep_alive)
        try:
            await self._handler(request, resp)
        except asyncio.CancelledError:
            resp.keep_alive = False
            raise
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.path)
            resp.keep_alive = False
            if not resp.started:
                resp.send(500, b'{"error":{"code":500,"message":"mock internal error","metadata":{}}}')
        finally:
            self._task = None
            if not self.closed:
                if not resp.keep_alive or not resp.finished:
                    self.close()
                else:
                    self.idle_since = time.monotonic()
                    self.transport.resume_reading()
                    if self._buf:
                        self._next_request()


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers. Raises ValueError with a client-safe message."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise ValueError("malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0") or not method.isalpha() or not target.startswith("/"):
        raise ValueError("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise ValueError("malformed header line")
        key = name.decode("latin-1").lower()
        val = value.strip().decode("latin-1")
        if key in headers:
            if key == "content-length" and headers[key] != val:
                raise ValueError("conflicting Content-Length headers")
            if key != "content-length":
                headers[key] = f"{headers[key]}, {val}"
        else:
            headers[key] = val
    return method, target, version, headers
