"""A lean HTTP/1.1 transport for httpx on raw asyncio streams: the async driver's default transport.

Why: at a thousand targets the prober's CPU went mostly to httpcore's connection-pool bookkeeping and
its h11/anyio layers (profiled: ~4.5 ms of CPU per probe, over half of it there), as DESIGN.md §6
measured for httpx's pool. The probe path needs little of that machinery: one request per connection
at a time, keep-alive reuse, Content-Length or chunked bodies, TLS. This transport does only that and
plugs in under the unchanged `AsyncStreamDriver` (which still stamps every read and feeds the
recorder), raising httpx's own exception types so the driver classifies failures exactly as before.

It yields the payload of each socket read as it arrives (after removing the body's framing with the
same `BodyFraming` as the load test's raw-socket transport, framing.py), so the driver's receipt timestamps mean
what they meant over httpcore. It can also *push* the body: the response's `PUSH_BODY` extension hands
each read's payload, with its receipt time, to the driver from the connection's `data_received`, with
no buffer, future, task wake-up or async iterator per SSE event (see `_PushReader`).

Receipt times, not resume times: the response head is stamped when the bytes that completed it were
delivered (`data_received`), and handed over as the response extension `RECEIVED_NS`; body bytes that
came with the head carry the time they were delivered too. Before, both were stamped when the request's
coroutine resumed, late by however long the event loop was busy with other probes in between; a
server that holds its head until the first token (common behind proxies) sends that token in the same
read, so the TTFT was late by as much. A connection reset inside a body is
an `httpx.ReadError` (so `connect_error`, which DESIGN.md §4 defines to include resets), where
httpcore reports some resets as an incomplete body; a clean close before the end of a framed body is
a `RemoteProtocolError` (`truncated`), as with httpcore. Proxies are not supported: `new_async_client`
uses httpx's default transport when proxy environment variables are set.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from monitor.drivers.framing import BodyFraming, FramingError, IncompleteBody

MAX_HEAD_BYTES = 64 * 1024
READ_SIZE = 64 * 1024
KEEPALIVE_EXPIRY_S = 5.0
MAX_IDLE_PER_ORIGIN = 256

Origin = tuple[str, str, int]

#: Response extension of a transport that can push the body: `async (sink) -> None`, where
#: `sink(data, received_ns)` gets each read's payload and its receipt time (`time.monotonic_ns`) as it
#: arrives and returns False to stop early (`_BodyStream.push`).
PUSH_BODY = "tokenpulse.push_body"
PushBody = Callable[[Callable[[bytes, int], bool]], Awaitable[None]]
#: Response extension: when the bytes that completed the response head arrived (`time.monotonic_ns`).
RECEIVED_NS = "tokenpulse.received_ns"


class _PushReader(asyncio.StreamReader):
    """A StreamReader that can hand what the socket delivers straight to a callback.

    Why: read through the buffer, each SSE event of a probe cost a buffer copy, a future, a task wake-up
    and the resumption of four nested async iterators (httpx's and ours) before the driver could stamp
    it: about half of the prober's CPU per probe (benchmarks/prober_scale.py). With a `sink` set,
    `data_received` calls it at once, and the driver stamps each read there, at receipt. Without one
    (the response head, credit and discovery requests) it is an ordinary StreamReader.
    """

    sink: _Sink | None = None
    #: When bytes were last delivered into the buffer, and when the delivery that completed the response
    #: head came (None until it has; `_exchange` resets it before each request).
    fed_ns: int = 0
    head_ns: int | None = None

    def feed_data(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            now = time.monotonic_ns()
            super().feed_data(data)
            self.fed_ns = now
            if self.head_ns is None:
                buffer = self._buffer  # type: ignore[attr-defined]
                if buffer.find(b"\r\n\r\n", max(0, len(buffer) - len(data) - 3)) >= 0:
                    self.head_ns = now
        else:
            sink.data(data)

    def feed_eof(self) -> None:
        super().feed_eof()
        if self.sink is not None:
            self.sink.eof()

    def set_exception(self, exc: BaseException) -> None:
        super().set_exception(exc)
        if self.sink is not None:
            self.sink.error(exc)

    def take_buffered(self) -> bytes:
        """Whatever sits in the buffer (bytes that came with the head), leaving it empty."""
        data = bytes(self._buffer)  # type: ignore[attr-defined]
        self._buffer.clear()  # type: ignore[attr-defined]
        self._maybe_resume_transport()  # type: ignore[attr-defined]
        return data


@dataclass(eq=False, slots=True)
class _Connection:
    origin: Origin
    reader: _PushReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)
    reused: bool = False

    def usable(self, now: float) -> bool:
        return (now - self.idle_since < KEEPALIVE_EXPIRY_S and not self.writer.is_closing()
                and not self.reader.at_eof())

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class _Retry(Exception):
    """A reused keep-alive connection was already closed by the server; try a fresh one."""


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio streams with a per-origin keep-alive pool."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
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
            if conn is None:
                conn = await self._connect(origin, connect_timeout)
            try:
                return await self._exchange(conn, request, payload)
            except _Retry:
                conn.close()
            except BaseException:
                conn.close()
                raise
        raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)

    async def _exchange(self, conn: _Connection, request: httpx.Request, payload: bytes) -> httpx.Response:
        conn.reader.head_ns = None
        try:
            conn.writer.write(payload)
            await conn.writer.drain()
        except OSError as exc:
            if conn.reused:
                raise _Retry from exc
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc
        try:
            raw_head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if conn.reused and not exc.partial:
                raise _Retry from exc
            raise httpx.RemoteProtocolError("server disconnected without sending a response",
                                            request=request) from exc
        except asyncio.LimitOverrunError as exc:
            raise httpx.RemoteProtocolError("response head too large", request=request) from exc
        except OSError as exc:
            if conn.reused and isinstance(exc, ConnectionResetError):
                raise _Retry from exc
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        status, reason, headers = _parse_head(raw_head, request)
        lower = {k.lower(): v for k, v in headers}
        length = lower.get(b"content-length")
        try:
            framing = BodyFraming(status, connection=lower.get(b"connection", b"").decode("latin-1"),
                                  transfer_encoding=lower.get(b"transfer-encoding", b"").decode("latin-1"),
                                  content_length=None if length is None else length.decode("latin-1"),
                                  head_request=request.method == "HEAD")
        except FramingError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        stream = _BodyStream(self, conn, request, framing)
        received_ns = conn.reader.head_ns
        return httpx.Response(status, headers=headers, stream=stream,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason,
                                          PUSH_BODY: stream.push,
                                          RECEIVED_NS: time.monotonic_ns() if received_ns is None else received_ns})

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        reader = _PushReader(limit=MAX_HEAD_BYTES, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            async with asyncio.timeout(timeout):  # asyncio.open_connection, with our reader
                transport, _ = await loop.create_connection(
                    lambda: protocol, host, port, ssl=context, server_hostname=host if context else None)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        return _Connection(origin, reader, asyncio.StreamWriter(transport, protocol, reader, loop))

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
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
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

    def _payload(self, data: bytes) -> bytes:
        """The body bytes of one read, framing removed (`framing.complete` tells when it has ended)."""
        try:
            return self._framing.payload(data)
        except FramingError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=self._request) from None

    def _at_eof(self) -> None:
        """The peer closed: the end of a close-delimited body, else an incomplete body."""
        try:
            self._framing.at_eof()
        except IncompleteBody:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                            request=self._request) from None

    def _read_error(self, exc: BaseException) -> httpx.ReadError:
        return httpx.ReadError(str(exc) or type(exc).__name__, request=self._request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        framing = self._framing
        while not framing.complete:
            try:
                data = await reader.read(READ_SIZE)
            except OSError as exc:
                raise self._read_error(exc) from exc
            if not data:
                self._at_eof()
                return
            payload = self._payload(data)
            if payload:
                yield payload

    async def push(self, sink: Callable[[bytes, int], bool]) -> None:
        """Hand the body to `sink` read by read, with each read's receipt time, from the connection's
        `data_received`, until it is complete or `sink` returns False; raises what iterating would
        raise. The same payloads as `__aiter__`, without an await per read (see `_PushReader`). Bytes
        that came before the push began (with the head) carry the time of the latest delivery."""
        reader = self._conn.reader
        framing = self._framing
        if not framing.complete:
            received_ns = reader.fed_ns
            buffered = reader.take_buffered()
            if buffered:
                payload = self._payload(buffered)
                if payload and not sink(payload, received_ns):
                    return
        if framing.complete:
            return
        error = reader.exception()
        if error is not None:
            raise self._read_error(error) from error
        if reader.at_eof():
            self._at_eof()
            return
        receiver = _Sink(self, sink, asyncio.get_running_loop().create_future())
        reader.sink = receiver
        try:
            await receiver.done
        finally:
            reader.sink = None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._framing.complete and self._framing.reusable:
            self._transport.release(self._conn)
        else:
            self._conn.close()


class _Sink:
    """Receives one body in push mode (`_PushReader.sink`) and resolves `done` when it is over."""

    __slots__ = ("_body", "_deliver", "done")

    def __init__(self, body: _BodyStream, deliver: Callable[[bytes, int], bool], done: asyncio.Future[None]) -> None:
        self._body = body
        self._deliver = deliver
        self.done = done

    def data(self, data: bytes) -> None:
        received_ns = time.monotonic_ns()  # the transport just delivered these bytes: their receipt time
        if self.done.done():
            return  # the consumer stopped early; the connection is closed, not reused
        try:
            payload = self._body._payload(data)
            if (payload and not self._deliver(payload, received_ns)) or self._body._framing.complete:
                self.done.set_result(None)
        except Exception as exc:  # noqa: BLE001 - a framing error or the consumer's: the body ends with it
            self.done.set_exception(exc)

    def eof(self) -> None:
        if self.done.done():
            return
        try:
            self._body._at_eof()
        except httpx.RemoteProtocolError as exc:
            self.done.set_exception(exc)
        else:
            self.done.set_result(None)

    def error(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(self._body._read_error(exc))


def _parse_head(raw: bytes, request: httpx.Request) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"invalid status line {lines[0][:80]!r}", request=request)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError("invalid response header", request=request)
        headers.append((name, value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else b"", headers
