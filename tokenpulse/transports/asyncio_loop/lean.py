"""A lean HTTP/1.1 transport for httpx on raw asyncio streams: the async driver's default transport.

Why: at a thousand targets the prober's CPU went mostly to httpcore's connection-pool bookkeeping and
its h11/anyio layers (profiled: ~4.5 ms of CPU per probe, over half of it there), as DESIGN.md §6
measured for httpx's pool. The probe path needs little of that machinery: one request per connection
at a time, keep-alive reuse, Content-Length or chunked bodies, TLS. This transport does only that and
plugs in under `AsyncStreamDriver` (which still stamps every read and feeds the recorder). The wire
layer (tokenpulse/core/wire/) reads the response head (interim 1xx responses dropped, bare LF, obs-fold,
limits) and frames the body, exactly as for the load test's raw transport. The driver's entry point
is `open`, which returns a `LeanResponse` (the async driver's response shape, `AsyncResponse`) and
raises only the wire layer's `WireError`s, classified by `tokenpulse.core.wire.classify` like the raw
transport's; httpx's own callers (credits, discovery) go through `handle_async_request`, which wraps
the same response in an `httpx.Response` and translates the errors to httpx's exception types.

It yields the payload of each socket read as it arrives (after removing the body's framing with the
same `BodyFraming` as the load test's raw-socket transport, framing.py), so the driver's receipt timestamps mean
what they meant over httpcore. It can also *push* the body: `LeanResponse.push` hands each read's
payload, with its receipt time, to the driver from the connection's `data_received`, with no buffer,
future, task wake-up or async iterator per SSE event (see `_PushReader`).

Receipt times, not resume times: the response head is stamped when the bytes that completed it were
delivered (`data_received`), and handed over as `LeanResponse.received_ns`; body bytes that
came with the head carry the time they were delivered too. Before, both were stamped when the request's
coroutine resumed, late by however long the event loop was busy with other probes in between; a
server that holds its head until the first token (common behind proxies) sends that token in the same
read, so the TTFT was late by as much.

A connection goes back to the pool only with its body read to the end of its framing and nothing
else waiting (no unread bytes, no EOF), and is checked again before reuse: bytes left in it would be
read as the next request's answer (the next target's, when targets share an origin). Proxies are not
supported: `new_async_client` uses httpx's default transport when proxy environment variables are set.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import SupportsIndex

import httpx

from tokenpulse.core.wire import (
    BodyFraming,
    ClosedBeforeResponse,
    ConnectFailed,
    ConnectionDropped,
    ConnectTimeout,
    HeadReader,
    IncompleteBody,
    ProtocolViolation,
    ResponseHead,
    WireError,
)

READ_SIZE = 64 * 1024
KEEPALIVE_EXPIRY_S = 5.0
MAX_IDLE_PER_ORIGIN = 256

Origin = tuple[str, str, int]

#: A body consumer: `sink(data, received_ns)` gets each read's payload and its receipt time
#: (`time.monotonic_ns`) and returns False to stop early.
Sink = Callable[[bytes, int], bool]


class LeanResponse:
    """A response as the async driver sees it (`AsyncResponse` in driver.py): the final head, when
    it arrived, the connection phase, and the body to push. Raises only the wire layer's errors."""

    __slots__ = ("_stream", "connect_ns", "headers", "reason", "received_ns", "reused", "status", "tls_ns")

    def __init__(self, head: ResponseHead, stream: _BodyStream, received_ns: int,
                 phases: tuple[int | None, int | None]) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers: Iterable[tuple[str, str]] = head.headers
        self.received_ns: int | None = received_ns
        #: This request's TCP connect (DNS included) and TLS handshake in ns; None on a reused connection.
        self.connect_ns: int | None = phases[0]
        self.tls_ns: int | None = phases[1]
        self.reused: bool | None = phases[0] is None
        self._stream = stream

    async def push(self, sink: Sink) -> None:
        """The body, read by read, into `sink` until it ends or `sink` returns False (`_BodyStream.push`)."""
        await self._stream.push(sink)

    async def aclose(self) -> None:
        await self._stream.aclose()


class _PushReader(asyncio.StreamReader):
    """A StreamReader that can hand what the socket delivers straight to a callback.

    Why: read through the buffer, each SSE event of a probe cost a buffer copy, a future, a task wake-up
    and the resumption of four nested async iterators (httpx's and ours) before the driver could stamp
    it: about half of the prober's CPU per probe (benchmarks/prober_scale.py). With a `sink` set,
    `data_received` calls it at once: the response head's reader (`_HeadSink`, which stamps the head
    when its last bytes arrive) and then the driver's body sink (which stamps each read there, at
    receipt). Without one (a body being iterated) it is an ordinary StreamReader.
    """

    sink: _Sink | _HeadSink | None = None
    #: When bytes were last delivered into the buffer, and when the delivery that completed the response
    #: head came (None until it has; `_exchange` resets it before each request).
    fed_ns: int = 0
    head_ns: int | None = None

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:  # StreamReader's type; the protocol feeds bytes
        sink = self.sink
        if sink is None:
            super().feed_data(data)
            self.fed_ns = time.monotonic_ns()
        else:
            sink.data(data if isinstance(data, bytes) else bytes(data))

    def buffer_bytes(self, data: bytes, received_ns: int) -> None:
        """Put bytes that arrived at `received_ns` in the buffer (the body's start, after the head)."""
        super().feed_data(data)
        self.fed_ns = received_ns

    def feed_eof(self) -> None:
        super().feed_eof()
        if self.sink is not None:
            self.sink.eof()

    def set_exception(self, exc: Exception) -> None:  # StreamReader's type (connection_lost passes one)
        super().set_exception(exc)
        if self.sink is not None:
            self.sink.error(exc)

    def idle(self) -> bool:
        """Nothing buffered, no EOF, no error: the connection holds nothing of an earlier answer."""
        return not self._buffer and not self.at_eof() and self.exception() is None  # type: ignore[attr-defined]

    def take_buffered(self) -> bytes:
        """Whatever sits in the buffer (bytes that came with the head), leaving it empty."""
        data = bytes(self._buffer)  # type: ignore[attr-defined]
        self._buffer.clear()  # type: ignore[attr-defined]
        self._maybe_resume_transport()  # type: ignore[attr-defined]
        return data


class _HeadSink:
    """Receives the response head in `data_received` (`_PushReader.sink`): feeds the wire layer's
    `HeadReader`, stamps the delivery that completed the head, buffers the body bytes after it, and
    resolves `done` with the head or the wire error."""

    __slots__ = ("_head", "_reader", "done")

    def __init__(self, reader: _PushReader, done: asyncio.Future[ResponseHead]) -> None:
        self._reader = reader
        self._head = HeadReader()
        self.done = done

    def data(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.done.done():
            return
        try:
            head = self._head.feed(data)
        except WireError as exc:
            self._reader.sink = None
            self.done.set_exception(exc)
            return
        if head is not None:
            reader = self._reader
            reader.sink = None
            reader.head_ns = now
            if self._head.rest:
                reader.buffer_bytes(self._head.rest, now)
            self.done.set_result(head)

    def eof(self) -> None:
        if not self.done.done():
            try:
                self._head.at_eof()
            except WireError as exc:
                self.done.set_exception(exc)

    def error(self, exc: BaseException) -> None:
        if not self.done.done():
            kind = ConnectionDropped if self._head.received else ClosedBeforeResponse
            self.done.set_exception(kind(f"{type(exc).__name__}: {exc}"))


@dataclass(eq=False, slots=True)
class _Connection:
    origin: Origin
    reader: _PushReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)
    reused: bool = False

    def usable(self, now: float) -> bool:
        return (now - self.idle_since < KEEPALIVE_EXPIRY_S and not self.writer.is_closing()
                and self.reader.idle())

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio streams with a per-origin keep-alive pool."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """httpx's transport interface (credits, discovery): `open` with httpx's exception types."""
        try:
            response = await self.open(request)
        except WireError as exc:
            raise _as_httpx(exc, request) from None
        stream = response._stream
        stream.httpx_errors = True
        return httpx.Response(response.status, headers=list(response.headers), stream=stream,
                              extensions={"http_version": b"HTTP/1.1",
                                          "reason_phrase": response.reason.encode("latin-1")})

    async def open(self, request: httpx.Request) -> LeanResponse:
        """Send `request` and read the final response head; the body follows by `push`. The driver's
        entry point: raises the wire layer's errors only."""
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise ConnectFailed(f"unsupported URL scheme {scheme!r}")
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        connect_timeout = timeouts.get("connect")
        body = await request.aread()
        head = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        payload = b"".join(head) + body
        for attempt in (0, 1):
            conn = self._checkout(origin) if attempt == 0 else None
            phases: tuple[int | None, int | None] = (None, None)
            if conn is None:
                conn, phases = await self._connect(origin, connect_timeout)
            try:
                return await self._exchange(conn, request, payload, phases)
            except ClosedBeforeResponse:
                conn.close()
                if not conn.reused:
                    raise
            except BaseException:
                conn.close()
                raise
        raise ClosedBeforeResponse("server disconnected without sending a response")

    async def _exchange(self, conn: _Connection, request: httpx.Request, payload: bytes,
                        phases: tuple[int | None, int | None]) -> LeanResponse:
        reader = conn.reader
        reader.head_ns = None
        head_sink = _HeadSink(reader, asyncio.get_running_loop().create_future())
        reader.sink = head_sink
        try:
            try:
                conn.writer.write(payload)
                await conn.writer.drain()
            except OSError as exc:
                raise ClosedBeforeResponse(f"{type(exc).__name__}: {exc}") from exc
            head = await head_sink.done
        finally:
            if reader.sink is head_sink:
                reader.sink = None
        framing = BodyFraming.for_head(head, head_request=request.method == "HEAD")
        stream = _BodyStream(self, conn, request, framing)
        received_ns = reader.head_ns
        return LeanResponse(head, stream, time.monotonic_ns() if received_ns is None else received_ns, phases)

    async def _connect(self, origin: Origin,
                       timeout: float | None) -> tuple[_Connection, tuple[int | None, int | None]]:
        """A new connection, and how long its TCP connect (DNS included) and TLS handshake took."""
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        reader = _PushReader(limit=READ_SIZE, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        clock = time.monotonic_ns
        t_start = clock()
        tls_ns: int | None = None
        try:
            async with asyncio.timeout(timeout):  # asyncio.open_connection, with our reader
                transport, _ = await loop.create_connection(lambda: protocol, host, port)
                t_connected = clock()
                writer = asyncio.StreamWriter(transport, protocol, reader, loop)
                if context is not None:
                    try:
                        await writer.start_tls(context, server_hostname=host)
                    except BaseException:
                        transport.close()
                        raise
                    tls_ns = clock() - t_connected
        except TimeoutError:
            raise ConnectTimeout(f"connect to {host}:{port} timed out after {timeout:g} s") from None
        except OSError as exc:  # ssl.SSLError and socket.gaierror included
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        return _Connection(origin, reader, writer), (t_connected - t_start, tls_ns)

    def _checkout(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable(now):
                conn.reused = True
                return conn
            conn.close()
        return None

    def release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN or not conn.reader.idle():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class _BodyStream(httpx.AsyncByteStream):
    """The response body: each socket read's payload, de-chunked, as soon as it arrives."""

    def __init__(self, transport: LeanTransport, conn: _Connection, request: httpx.Request,
                 framing: BodyFraming) -> None:
        self._transport = transport
        self._conn = conn
        self._request = request
        self._framing = framing
        self._closed = False
        #: Iteration raises httpx's exception types (set for httpx's own callers); push never does.
        self.httpx_errors = False

    def _read_error(self, exc: BaseException) -> ConnectionDropped:
        return ConnectionDropped(f"{type(exc).__name__}: {exc}")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for payload in self._iterate():
                yield payload
        except WireError as exc:
            if not self.httpx_errors:
                raise
            raise _as_httpx(exc, self._request) from None

    async def _iterate(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        framing = self._framing
        while not framing.complete:
            try:
                data = await reader.read(READ_SIZE)
            except OSError as exc:
                raise self._read_error(exc) from exc
            if not data:
                framing.at_eof()
                return
            payload = framing.payload(data)
            if payload:
                yield payload

    async def push(self, sink: Sink) -> None:
        """Hand the body to `sink` read by read, with each read's receipt time, from the connection's
        `data_received`, until it is complete or `sink` returns False; raises what iterating would
        raise. The same payloads as `__aiter__`, without an await per read (see `_PushReader`). Bytes
        that came with the head carry the head's receipt time."""
        reader = self._conn.reader
        framing = self._framing
        if not framing.complete:
            received_ns = reader.fed_ns
            buffered = reader.take_buffered()
            if buffered:
                payload = framing.payload(buffered)
                if payload and not sink(payload, received_ns):
                    return
        if framing.complete:
            return
        error = reader.exception()
        if error is not None:
            raise self._read_error(error) from error
        if reader.at_eof():
            framing.at_eof()
            return
        receiver = _Sink(self, sink, asyncio.get_running_loop().create_future())
        reader.sink = receiver
        try:
            await receiver.done
        finally:
            reader.sink = None

    def drain(self, data: bytes) -> None:
        """Bytes that came after the consumer stopped: kept count of by the framing, so that a body
        whose end follows the answer's end (`[DONE]`) can still leave its connection reusable."""
        try:
            self._framing.payload(data)
        except WireError:
            self._framing.reusable = False

    async def aclose(self) -> None:
        """Keep the connection only when the body's framing has ended, with nothing after it; a body
        the consumer left early takes what the socket already delivered, never waiting for more."""
        if self._closed:
            return
        self._closed = True
        framing = self._framing
        reader = self._conn.reader
        if not framing.complete and reader.sink is None:
            buffered = reader.take_buffered()
            if buffered:
                self.drain(buffered)
        if framing.complete and framing.reusable:
            self._transport.release(self._conn)
        else:
            self._conn.close()


class _Sink:
    """Receives one body in push mode (`_PushReader.sink`) and resolves `done` when it is over."""

    __slots__ = ("_body", "_deliver", "done")

    def __init__(self, body: _BodyStream, deliver: Sink, done: asyncio.Future[None]) -> None:
        self._body = body
        self._deliver = deliver
        self.done = done

    def data(self, data: bytes) -> None:
        received_ns = time.monotonic_ns()  # the transport just delivered these bytes: their receipt time
        if self.done.done():
            self._body.drain(data)  # the consumer stopped; the framing still counts what follows
            return
        try:
            body = self._body
            payload = body._framing.payload(data)
            if (payload and not self._deliver(payload, received_ns)) or body._framing.complete:
                self.done.set_result(None)
        except Exception as exc:  # noqa: BLE001 - a framing error or the consumer's: the body ends with it
            self.done.set_exception(exc)

    def eof(self) -> None:
        if self.done.done():
            self._body._framing.reusable = False
            return
        try:
            self._body._framing.at_eof()
        except WireError as exc:
            self.done.set_exception(exc)
        else:
            self.done.set_result(None)

    def error(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(self._body._read_error(exc))


def _as_httpx(exc: WireError, request: httpx.Request) -> httpx.TransportError:
    """A wire error as httpx's callers expect it."""
    text = str(exc)
    if isinstance(exc, ConnectTimeout):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, ConnectFailed):
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, (ProtocolViolation, ClosedBeforeResponse, IncompleteBody)):
        return httpx.RemoteProtocolError(text, request=request)  # as httpcore reports a peer that closed
    return httpx.ReadError(text, request=request)
