"""Raw-socket HTTP/1.1 transport for the sync driver: the fastest correct reader under gevent.

Why: with geventhttpclient each SSE event costs two `readline` calls (the data line and the blank line),
each with its own driver deadline and recorder call, about 40-70 µs per event in all; one Locust process
then tops out near 250 streams of 50 tokens/s (benchmarks/locust_capacity.py). Here one `recv` returns
everything the kernel has received, de-chunked, so an event costs one read. Nothing is held back: the
bytes handed to the driver are exactly those that arrived, and the driver stamps them at once (the
recorder's SSE decoder copes with events split across reads or several in one).

Scope: what an OpenAI-compatible streaming API needs: POST with a body, HTTP/1.1 keep-alive (one
connection per origin, owned by one Locust user), `Transfer-Encoding: chunked`, `Content-Length` or
close-delimited bodies, TLS through the standard `ssl` module (gevent-cooperative), TCP_NODELAY so the
request is never delayed by Nagle's algorithm. A kept-alive connection that the server closed while idle
is detected before the request is sent (the socket is readable: EOF, or bytes nobody asked for) and
then never reused; when the close races the request (no byte of a response before EOF) the request is
sent again once on a new connection. The response head is read by the wire layer's `HeadReader`, the
body by its `BodyFraming`, and every failure is one of its `WireError`s (tokenpulse/core/wire/).

Receipt times from the kernel: on plain TCP the socket asks for receive timestamps (`SO_TIMESTAMPNS`)
and each read returns, with its bytes, the time the kernel received the last of them
(`read_stamped`). Why: a Locust process stamps a token only when its greenlet runs, and when many
requests end and start in the same millisecond (users in lock-step against a server without jitter)
the turnover work delays every other stream's stamp by milliseconds (benchmarks/locust_capacity.py
showed lag p99 of 11-12 ms at 512 streams from such herds alone). The kernel's time does not move with
the generator's load. It is CLOCK_REALTIME, so it is converted to the monotonic clock with the offset
between the two clocks read at the same moment, and clamped between the previous stamp and now (a
clock step can never produce a time in the future or out of order). Several events coalesced in one
read share the latest one's time, as with user-space stamps. TLS sockets stamp in user space.
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from gevent import socket as gsocket
from gevent.hub import Waiter

from tokenpulse.core.request import PreparedRequest, Timeouts
from tokenpulse.core.wire import (
    BodyFraming,
    ClosedBeforeResponse,
    ConnectFailed,
    ConnectionDropped,
    ConnectTimeout,
    HeadReader,
    ResponseHead,
)
from tokenpulse.transports.gevent_loop.readmux import multiplexer

_RECV = 65536
#: Reads a closing response takes from what the socket already holds to finish the body's framing
#: (a server that keeps streaming past the answer's end loses the connection instead).
_DRAIN_READS = 4
#: Linux's SO_TIMESTAMPNS (Python does not name it): a `struct timespec` of CLOCK_REALTIME per recvmsg.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_TIMESPEC_SIZE = _TIMESPEC.size
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC_SIZE)


class _Connection:
    """A connection and its fastest ways to read.

    gevent's `socket.recv` first tries a non-blocking `recv`, which on a paced stream almost always fails
    with EWOULDBLOCK (a raised and caught exception plus a wasted syscall), then waits and tries again.
    On a plain TCP socket we wait for readability first and then read once: a third less work per SSE
    event. That read (`read_now`, non-blocking) is a `recvmsg` that also returns the kernel's receive
    time (module docstring) when `kernel_stamps` is on; the body of a response is read with it, either
    by the request's greenlet after waiting (`recv_stamped`) or from the hub when the loop's
    `ReadMultiplexer` reports the socket ready (`_RawResponse.push`). TLS sockets keep the ordinary path
    and user-space stamps (decrypted bytes may already sit in the TLS buffer, so the file descriptor's
    readability says nothing) and have no `read_now`."""

    __slots__ = ("fileno", "raw", "read_now", "recv_stamped", "sock", "used")

    def __init__(self, sock: socket.socket, *, tls: bool = False, kernel_stamps: bool = False) -> None:
        self.sock = sock
        self.used = False
        self.recv_stamped = self._user_stamped
        self.read_now: Callable[[int], tuple[bytes, int]] | None = None
        self.fileno = -1
        raw = self.raw = getattr(sock, "_sock", None)
        wait = getattr(sock, "_wait", None)
        read_event = getattr(sock, "_read_event", None)
        if not tls and raw is not None and wait is not None and read_event is not None:
            read_now = self.read_now = _stamped_read(raw, kernel_stamps and _enable_kernel_stamps(raw))
            self.fileno = raw.fileno()

            def recv_stamped(size: int) -> tuple[bytes, int]:
                while True:
                    wait(read_event)
                    try:
                        return read_now(size)
                    except BlockingIOError:
                        continue  # woken without data (rare): wait again
            self.recv_stamped = recv_stamped

    def idle_and_open(self) -> bool:
        """True when nothing is waiting to be read: neither EOF (the server closed the kept-alive
        connection) nor bytes (part of an earlier answer, which the next request must never read).
        A non-blocking peek, once per reuse."""
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return False  # decrypted bytes already in the TLS buffer
        raw = self.raw
        if raw is None:
            return True
        try:
            raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # EOF (b"") or unread bytes

    def _user_stamped(self, size: int) -> tuple[bytes, int]:
        data = self.sock.recv(size)
        return data, time.monotonic_ns()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _enable_kernel_stamps(sock: socket.socket) -> bool:
    """Ask for receive timestamps; False where this is not Linux (option 35 means other things
    elsewhere) or the socket refuses."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _stamped_read(raw: socket.socket, kernel_stamps: bool) -> Callable[[int], tuple[bytes, int]]:
    """A non-blocking read of what the socket holds (BlockingIOError when nothing), with its receipt
    time on the monotonic clock: the kernel's (module docstring) when `kernel_stamps`, else now."""
    monotonic_ns = time.monotonic_ns
    if not kernel_stamps:
        recv = raw.recv

        def read_now(size: int) -> tuple[bytes, int]:
            data = recv(size)
            return data, monotonic_ns()
        return read_now

    recvmsg, unpack, time_ns = raw.recvmsg, _TIMESPEC.unpack_from, time.time_ns
    last = [0]

    def read_kernel_stamped(size: int) -> tuple[bytes, int]:
        data, ancillary, _, _ = recvmsg(size, _ANCILLARY)
        now = monotonic_ns()
        stamp = now
        if ancillary:  # only SO_TIMESTAMPNS is enabled: one message (none at EOF)
            payload = ancillary[0][2]
            if len(payload) >= _TIMESPEC_SIZE:
                sec, nsec = unpack(payload)
                kernel = sec * 1_000_000_000 + nsec - (time_ns() - now)
                if last[0] <= kernel < now:
                    stamp = kernel
        last[0] = stamp
        return data, stamp

    return read_kernel_stamped


class _RawResponse:
    __slots__ = ("_conn", "_framing", "_head_ns", "_owner", "_pending", "_recv", "connect_ns", "headers",
                 "received_ns", "reused", "status", "tls_ns")

    def __init__(self, owner: RawSocketTransport, conn: _Connection, head: ResponseHead, framing: BodyFraming,
                 rest: bytes, received_ns: int, phases: tuple[int | None, int | None]) -> None:
        self._owner = owner
        self._conn = conn
        self._recv = conn.recv_stamped  # bound once: read_some runs once per SSE event
        self.status = head.status
        self.headers: Iterable[tuple[str, str]] = head.headers
        #: When the read that completed the head arrived; body bytes that came with it share the time.
        self.received_ns: int | None = received_ns
        self._head_ns = received_ns
        #: This request's TCP connect (DNS included) and TLS handshake, in ns; None on a reused connection.
        self.connect_ns: int | None = phases[0]
        self.tls_ns: int | None = phases[1]
        self.reused: bool | None = phases[0] is None
        self._framing = framing
        self._pending = framing.payload(rest) if rest else b""

    def read_some(self) -> tuple[bytes, int]:
        if self._pending:  # body bytes that came with the head, received with it
            data, self._pending = self._pending, b""
            return data, self._head_ns
        recv = self._recv
        framing = self._framing
        while not framing.complete:
            try:
                data, stamp = recv(_RECV)
            except OSError as exc:
                raise _dropped(exc) from None
            if not data:
                framing.at_eof()  # a close-delimited body ends here; a framed one raises IncompleteBody
                return b"", stamp
            out = framing.payload(data)
            if out:
                return out, stamp
        return b"", time.monotonic_ns()

    def push(self, consumer: Callable[[bytes, int], bool]) -> None:
        """Hand every read to `consumer(payload, receipt_ns)` until it returns False; b"" marks the end
        of the body (the consumer returns False then). Blocks the calling greenlet until done; raises
        the wire layer's errors as `read_some` does.

        On plain TCP under Linux the reads happen in the hub, called by the loop's `ReadMultiplexer`
        (readmux.py) when the socket turns readable, and the consumer runs there too: it must not block.
        Elsewhere this is the `read_some` loop, in the calling greenlet."""
        read_now = self._conn.read_now
        mux = multiplexer() if read_now is not None and self._owner.multiplex else None
        if mux is None:
            read = self.read_some
            while consumer(*read()):
                pass
            return
        if self._pending:  # body bytes that came with the head, received with it
            data, self._pending = self._pending, b""
            if not consumer(data, self._head_ns):
                return
        framing = self._framing
        if framing.complete:
            consumer(b"", time.monotonic_ns())
            return
        fd = self._conn.fileno
        run_callback = mux.loop.run_callback  # type: ignore[attr-defined]
        waiter = Waiter()
        payload, monotonic_ns = framing.payload, time.monotonic_ns

        def finish(error: BaseException | None) -> None:
            mux.discard(fd)
            # Woken after the hub has served the rest of this batch: the request's greenlet may start
            # its next request at once, and other streams' reads should not wait for that.
            if error is None:
                run_callback(waiter.switch, None)
            else:
                run_callback(waiter.throw, error)

        def on_ready() -> None:
            try:
                try:
                    data, stamp = read_now(_RECV)  # type: ignore[misc]
                except BlockingIOError:
                    return  # readiness without data (rare): wait for the next report
                except OSError as exc:
                    raise _dropped(exc) from None
                if not data:
                    framing.at_eof()
                    consumer(b"", stamp)
                    finish(None)
                    return
                out = payload(data)
                if out and not consumer(out, stamp):
                    finish(None)
                elif framing.complete:
                    consumer(b"", monotonic_ns())
                    finish(None)
            except Exception as exc:  # noqa: BLE001 - raised in the request's greenlet, never in the hub
                finish(exc)

        mux.add(fd, on_ready)
        try:
            waiter.get()
        finally:  # also when a deadline or a kill ends the wait: no handler may run after this
            mux.discard(fd)

    def close(self, *, complete: bool) -> None:
        """Keep the connection only when the body was read to its end and nothing else is waiting. A
        driver that stopped at the answer's end (`[DONE]`) before the body's framing ended takes what
        the socket already holds, without waiting; a server that keeps the body open loses the
        connection, never the next request's answer."""
        framing = self._framing
        if complete and not framing.complete:
            self._drain_ready()
        if complete and framing.complete and framing.reusable:
            self._owner.release(self._conn)
        else:
            self._owner.discard(self._conn)

    def _drain_ready(self) -> None:
        read_now = self._conn.read_now
        if read_now is None:
            return  # TLS: its readiness says nothing (decrypted bytes may sit in its buffer); not reused
        framing = self._framing
        try:
            for _ in range(_DRAIN_READS):
                if framing.complete:
                    return
                data, _ = read_now(_RECV)
                if not data:
                    framing.at_eof()
                    return
                framing.payload(data)
            framing.reusable = framing.complete and framing.reusable
        except Exception:  # noqa: BLE001 - nothing more to read yet (BlockingIOError), or not HTTP: not reused
            framing.reusable = False


class RawSocketTransport:
    """One kept-alive connection per origin, for one Locust user (not shared between greenlets)."""

    name = "raw"

    def __init__(self, *, kernel_stamps: bool = True, multiplex: bool = True) -> None:
        self._kernel_stamps = kernel_stamps
        #: Read bodies through the loop's `ReadMultiplexer` (readmux.py) where it exists; False keeps every
        #: read in the request's greenlet (benchmarks/client_lag.py compares the two).
        self.multiplex = multiplex
        self._idle: dict[tuple[str, str, int], _Connection] = {}
        self._origin_of: dict[int, tuple[str, str, int]] = {}
        self._tls: ssl.SSLContext | None = None

    def _connect(self, scheme: str, host: str, port: int,
                 timeout: float | None) -> tuple[_Connection, tuple[int | None, int | None]]:
        """A new connection, and how long its TCP connect (DNS included) and TLS handshake took."""
        clock = time.monotonic_ns
        t_start = clock()
        tls_ns: int | None = None
        try:
            family = _ip_family(host)
            if family is None:
                sock = gsocket.create_connection((host, port), timeout=timeout)
            else:  # an address: no getaddrinfo (gevent runs it on a thread-pool thread, ~0.3 ms per connect)
                sock = gsocket.socket(family, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect((host, port))
                except BaseException:
                    sock.close()
                    raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t_connected = clock()
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                    self._tls.set_alpn_protocols(["http/1.1"])
                from gevent import ssl as gssl

                sock = gssl.SSLContext.wrap_socket(self._tls, sock, server_hostname=host)
                tls_ns = clock() - t_connected
            sock.settimeout(None)  # the driver's deadlines bound every read
        except TimeoutError:
            raise ConnectTimeout(f"connect timeout after {timeout:g} s") from None
        except OSError as exc:  # ssl.SSLError and socket.gaierror included
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        conn = _Connection(sock, tls=scheme == "https", kernel_stamps=self._kernel_stamps)
        return conn, (t_connected - t_start, tls_ns)

    def open(self, request: PreparedRequest, timeouts: Timeouts) -> _RawResponse:
        parts = urlsplit(request.url)
        scheme = parts.scheme or "http"
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = port == (443 if scheme == "https" else 80)
        host_header = (f"[{host}]" if ":" in host else host) + ("" if default_port else f":{port}")
        lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}", f"Content-Length: {len(request.body)}"]
        lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in ("host", "content-length")]
        wire = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body
        origin = (scheme, host, port)
        for attempt in (0, 1):
            conn = self._idle.pop(origin, None)
            if conn is not None and not conn.idle_and_open():
                self.discard(conn)
                conn = None
            reused = conn is not None
            phases: tuple[int | None, int | None] = (None, None)
            if conn is None:
                conn, phases = self._connect(scheme, host, port, timeouts.connect)
            self._origin_of[id(conn)] = origin
            try:
                try:
                    conn.sock.sendall(wire)
                except OSError as exc:  # the server closed the connection before taking the request
                    raise ClosedBeforeResponse(f"{type(exc).__name__}: {exc}") from None
                head, rest, head_ns = self._read_head(conn.recv_stamped)
                framing = BodyFraming.for_head(head)
                response = _RawResponse(self, conn, head, framing, rest, head_ns, phases)
            except ClosedBeforeResponse:
                self.discard(conn)
                if reused and attempt == 0:
                    continue  # the server closed the idle connection as we sent: once more on a new one
                raise
            except BaseException:  # a wire error, a deadline (`_Expired`) or a kill: the connection is unusable
                self.discard(conn)
                raise
            conn.used = True
            return response
        raise ClosedBeforeResponse("connection closed before a response")

    @staticmethod
    def _read_head(recv_stamped: Callable[[int], tuple[bytes, int]]) -> tuple[ResponseHead, bytes, int]:
        """The final head (interim 1xx ones dropped), the body bytes that came with it, and the receipt
        time of the read that completed it (the kernel's where the connection has it): the response's
        TTFB, and the time of those body bytes too."""
        reader = HeadReader()
        while True:
            try:
                data, stamp = recv_stamped(_RECV)
            except OSError as exc:  # a reset: before any byte of the answer, the race with an idle close
                raise (ConnectionDropped if reader.received else ClosedBeforeResponse)(
                    f"{type(exc).__name__}: {exc}") from None
            if not data:
                reader.at_eof()  # raises
            head = reader.feed(data)
            if head is not None:
                return head, reader.rest, stamp

    def release(self, conn: _Connection) -> None:
        origin = self._origin_of.get(id(conn))
        if origin is None or origin in self._idle:
            self.discard(conn)
            return
        self._idle[origin] = conn

    def discard(self, conn: _Connection) -> None:
        self._origin_of.pop(id(conn), None)
        conn.close()

    def close(self) -> None:
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()
        self._origin_of.clear()


def _dropped(exc: OSError) -> ConnectionDropped:
    return ConnectionDropped(f"{type(exc).__name__}: {exc}")


def _ip_family(host: str) -> int | None:
    """The address family of an IP address literal, None for a host name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None
