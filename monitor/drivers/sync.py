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
        watchdog = _Watchdog()
        try:
            watchdog.set(deadline_ns, t0)
            response = self.transport.open(request, timeouts)
            recorder.on_headers(clock(), response.status, response.headers)
            # The per-read loop runs for every SSE event of every stream: names are bound once, and
            # the deadline is recomputed only once the first token has arrived (before it, the TTFT
            # or total deadline is fixed and already armed; after it, the idle deadline moves with
            # every read).
            next_deadline, arm = deadlines.next_deadline, watchdog.set
            read, on_bytes = response.read_some, recorder.on_bytes
            now = clock()
            while True:
                if recorder.first_token_seen:
                    deadline_ns, expiry = next_deadline(now, True)
                    arm(deadline_ns, now)
                data = read()
                now = clock()
                if not data:
                    complete = True
                    recorder.on_eof(now)
                    break
                on_bytes(now, data)
                if recorder.finished:
                    break
        except _Expired:
            recorder.on_failure(clock(), expiry, DeadlineClock.describe(expiry, timeouts))
        except TransportError as exc:
            recorder.on_failure(clock(), exc.error_class, str(exc))
        finally:
            watchdog.cancel()
            if response is not None:
                response.close(complete=complete)
        return recorder.result()


class _Watchdog:
    """The request's deadline, enforced by one hub timer that is re-armed lazily.

    Why not a `gevent.Timeout` per read: creating, starting and closing one costs about 3 µs, paid on
    every read of every stream, a tenth of what a Locust process can spend per SSE event at 512 streams.
    Here a read only stores its deadline. The timer fires at the earliest deadline it was armed for;
    if the current deadline has moved later (the idle timeout, pushed forward by every read), it re-arms
    for that, otherwise it raises `_Expired` in the request's greenlet, exactly as `gevent.Timeout` does.
    A deadline that moves *earlier* (the switch from the TTFT to the idle deadline) re-arms at once. So
    expiries happen at the same instants, with the same error classes, as with a timeout per read.
    """

    __slots__ = ("_fire_ns", "_greenlet", "_loop", "_timer", "deadline_ns")

    def __init__(self) -> None:
        self._loop = gevent.get_hub().loop
        self._greenlet = gevent.getcurrent()
        self._timer: object | None = None
        self._fire_ns: int | None = None
        self.deadline_ns: int | None = None

    def set(self, deadline_ns: int | None, now_ns: int) -> None:
        self.deadline_ns = deadline_ns
        if deadline_ns is not None and (self._fire_ns is None or deadline_ns < self._fire_ns):
            self._arm(deadline_ns, now_ns)

    def _arm(self, at_ns: int, now_ns: int) -> None:
        self._stop_timer()
        timer = self._loop.timer(max(at_ns - now_ns, 0) * _NS)
        self._timer = timer
        self._fire_ns = at_ns
        timer.start(self._fire)

    def _fire(self) -> None:
        self._stop_timer()
        deadline = self.deadline_ns
        if deadline is None:
            return
        now = time.monotonic_ns()
        if now >= deadline:
            self._greenlet.throw(_Expired)
        else:
            self._arm(deadline, now)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        self._fire_ns = None
        if timer is not None:
            timer.stop()  # type: ignore[attr-defined]
            timer.close()  # type: ignore[attr-defined]

    def cancel(self) -> None:
        """Disarm for good (always called before the request returns: nothing may fire later)."""
        self.deadline_ns = None
        self._stop_timer()
