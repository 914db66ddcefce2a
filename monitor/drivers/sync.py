"""Sync driver for Locust users (gevent greenlets), over a pluggable byte transport.

The loop here is the whole driver: read t0, open, stamp each read with the monotonic clock at receipt,
feed the recorder, stop on the recorder's word or on a deadline. A transport only knows how to open a
streaming POST and hand back bytes as they arrive; swapping httpx for geventhttpclient (or a raw socket
reader) never touches timing or token logic. Deadlines use `gevent.Timeout`, so the transport's blocking
reads must be gevent-cooperative (geventhttpclient always is; httpx is under Locust's monkey-patching).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

import gevent

from monitor.drivers.deadlines import DeadlineClock
from monitor.drivers.request import PreparedRequest, Timeouts
from monitor.outcomes import ErrorClass
from monitor.recorder import DEFAULT_MAX_RESPONSE_BYTES, StreamRecorder, StreamResult

_NS = 1e-9


class TransportError(Exception):
    """A transport failure already classified (connect error, reset, protocol violation...)."""

    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class


class SyncResponse(Protocol):
    status: int
    headers: Iterable[tuple[str, str]]

    def read_some(self) -> bytes:
        """Block until some body bytes arrive and return them; b"" at the end of the body."""
        ...

    def close(self, *, complete: bool) -> None:
        """Release the connection; `complete` is False when the body was abandoned mid-way."""
        ...


class SyncTransport(Protocol):
    name: str

    def open(self, request: PreparedRequest, timeouts: Timeouts) -> SyncResponse:
        """Connect (reusing a kept-alive connection when possible), send, and read the response head."""
        ...

    def close(self) -> None: ...


class _Expired(BaseException):
    """Raised into the greenlet by gevent.Timeout; BaseException so transports cannot swallow it."""


class SyncStreamDriver:
    """One per Locust user: owns its transport (and so its kept-alive connection)."""

    def __init__(self, transport: SyncTransport, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.transport = transport
        self._max_bytes = max_response_bytes

    def close(self) -> None:
        self.transport.close()

    def run(self, request: PreparedRequest, timeouts: Timeouts, *, keep_text: bool = False) -> StreamResult:
        clock = time.monotonic_ns
        t0 = clock()
        recorder = StreamRecorder(t0, secrets=request.secrets, max_response_bytes=self._max_bytes,
                                  keep_text=keep_text, prompt_tokens_hint=request.prompt_tokens_hint)
        deadlines = DeadlineClock(t0, timeouts)
        response: SyncResponse | None = None
        complete = False
        deadline_ns, expiry = deadlines.next_deadline(t0, False)
        try:
            with _timer(deadline_ns, t0):
                response = self.transport.open(request, timeouts)
            recorder.on_headers(clock(), response.status, response.headers)
            now = clock()
            while True:
                deadline_ns, expiry = deadlines.next_deadline(now, recorder.first_token_seen)
                with _timer(deadline_ns, now):
                    data = response.read_some()
                now = clock()
                if not data:
                    complete = True
                    recorder.on_eof(now)
                    break
                recorder.on_bytes(now, data)
                if recorder.finished:
                    break
        except _Expired:
            recorder.on_failure(clock(), expiry, DeadlineClock.describe(expiry, timeouts))
        except TransportError as exc:
            recorder.on_failure(clock(), exc.error_class, str(exc))
        finally:
            if response is not None:
                response.close(complete=complete)
        return recorder.result()


class _timer:
    """`with _timer(deadline_ns, now_ns):` raises _Expired in this greenlet at the deadline."""

    __slots__ = ("_timeout",)

    def __init__(self, deadline_ns: int | None, now_ns: int) -> None:
        if deadline_ns is None:
            self._timeout = None
        else:
            self._timeout = gevent.Timeout(max(deadline_ns - now_ns, 0) * _NS, _Expired)

    def __enter__(self) -> None:
        if self._timeout is not None:
            self._timeout.start()

    def __exit__(self, *exc: object) -> None:
        if self._timeout is not None:
            self._timeout.close()
