"""Sync driver for Locust users (gevent greenlets), over a byte transport (rawsocket.py).

The driver is this: read t0, open, take each read with its receipt time (the transport stamps it with
the monotonic clock: the kernel's receive time where it can, else when the read returned), feed the
recorder, stop on the recorder's word (a terminal error, or the answer's end: `[DONE]`, even when the
server keeps the body open) or on a deadline. A transport only knows how to open a streaming POST and
hand back bytes as they arrive, raising the wire layer's errors, which `tokenpulse.core.wire.classify` maps to
error classes as it does for the async driver: timing, token and error logic never live in a
transport. Bytes come either pulled (`read_some`, in the request's greenlet)
or pushed: a response with a `push(consumer)` method calls the driver's per-read function itself, for
the raw transport from the hub as sockets turn readable (readmux.py), which spares two greenlet switches
and a watcher start and stop per SSE event. Both feed the same function. Deadlines are raised into the
request's greenlet by a hub timer (`_Watchdog`), so the transport's blocking reads must be
gevent-cooperative (the raw transport reads gevent sockets).
"""

from __future__ import annotations

import time
from typing import Protocol

import gevent

from tokenpulse.core.deadlines import DeadlineClock
from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.recorder import DEFAULT_MAX_RESPONSE_BYTES, StreamRecorder, StreamResult
from tokenpulse.core.request import PreparedRequest, Timeouts
from tokenpulse.core.wire import classify, describe
from tokenpulse.transports.contract import ReceivedHead

_NS = 1e-9


class SyncResponse(ReceivedHead, Protocol):
    """What a gevent transport returns to the driver; raises only what `tokenpulse.core.wire.classify` maps."""

    def read_some(self) -> tuple[bytes, int]:
        """Block until some body bytes arrive; return them and their receipt time (`time.monotonic_ns`):
        the kernel's receive time when the transport can get it (rawsocket.py), else the moment the
        read returned. b"" at the end of the body."""
        ...

    def close(self, *, complete: bool) -> None:
        """Release the connection; `complete` is False when the answer was abandoned mid-way (an error
        or a deadline). True with a body whose framing has not ended (the answer's `[DONE]` came first):
        the transport keeps the connection only if the rest is already there, never waiting for it."""
        ...

    # Optional: `push(consumer: Callable[[bytes, int], bool]) -> None` hands every read (and b"" at
    # the end of the body) to `consumer` until it returns False, blocking the request's greenlet until
    # then and raising the wire layer's errors as `read_some` would. The driver prefers it when present.


class SyncTransport(Protocol):
    name: str

    def open(self, request: PreparedRequest, timeouts: Timeouts) -> SyncResponse:
        """Connect (reusing a kept-alive connection when possible), send, and read the final response
        head (interim 1xx responses dropped); raise a `tokenpulse.core.wire.WireError` on failure."""
        ...

    def close(self) -> None: ...


class RequestCancelled(gevent.GreenletExit):
    """The request's greenlet was killed mid-request (Locust stopping a user after its drain): raised
    in place of the `GreenletExit`, so the greenlet still ends as killed, carrying the `cancelled`
    result with the timings the request reached, for the caller to record before it goes."""

    def __init__(self, result: StreamResult) -> None:
        super().__init__("cancelled")
        self.result = result


class _Expired(BaseException):
    """Raised into the request's greenlet by its `_Watchdog`; BaseException so transports cannot
    swallow it. Carries the error class of the deadline that expired (TTFT, idle or total)."""

    def __init__(self, error_class: ErrorClass) -> None:
        super().__init__(error_class.value)
        self.error_class = error_class


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
                                  keep_text=keep_text, prompt_tokens_hint=request.prompt_tokens_hint,
                                  pin=request.pin)
        deadlines = DeadlineClock(t0, timeouts)
        response: SyncResponse | None = None
        complete = False
        watchdog = _Watchdog(deadlines)
        on_bytes = recorder.on_bytes

        def on_read(data: bytes, now: int) -> bool:
            """One read (b"" at the end of the body): record it, move the idle deadline; False once no
            more is wanted. Runs for every SSE event of every stream, in the hub when the transport
            pushes. A read only stores its time once the first token has arrived (the watchdog derives
            the idle deadline from it when its timer fires; before the first token the deadline is fixed)."""
            nonlocal complete
            if not data:
                complete = True
                recorder.on_eof(now)
                return False
            on_bytes(now, data)
            if recorder.finished:  # a terminal error, or the answer's end ([DONE])
                return False
            if watchdog.last_read_ns is not None:
                watchdog.last_read_ns = now
            elif recorder.first_token_seen:
                watchdog.first_token(now)
            return True

        try:
            response = self.transport.open(request, timeouts)
            head_ns = response.received_ns
            recorder.on_headers(clock() if head_ns is None else head_ns, response.status, response.headers)
            push = getattr(response, "push", None)
            if push is not None:
                push(on_read)
            else:
                read = response.read_some
                while on_read(*read()):
                    pass
            if not complete:  # stopped on the recorder's word: the end of what it will read
                recorder.on_eof(clock())
                complete = True  # the transport keeps the connection if the body's framing allows
        except gevent.GreenletExit:
            recorder.cancel(clock(), "cancelled: the load test stopped waiting for the response")
            raise RequestCancelled(recorder.result()) from None
        except _Expired as expired:
            error_class = expired.error_class
            recorder.on_failure(clock(), error_class, DeadlineClock.describe(error_class, timeouts))
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise  # not a transport failure: a bug, never booked as the provider's
            recorder.on_failure(clock(), failure, describe(exc))
        finally:
            watchdog.cancel()
            if response is not None:
                response.close(complete=complete)
        result = recorder.result()
        if response is not None:
            result.connect_s = None if response.connect_ns is None else response.connect_ns * _NS
            result.tls_s = None if response.tls_ns is None else response.tls_ns * _NS
            result.connection_reused = response.reused
        return result


class _Watchdog:
    """The request's deadline, enforced by one hub timer that is re-armed lazily.

    Why not a `gevent.Timeout` per read: creating, starting and closing one costs about 3 µs, paid on
    every read of every stream, a tenth of what a Locust process can spend per SSE event at 512 streams.
    Here a read after the first token only stores its time in `last_read_ns` (before it, the TTFT or
    total deadline is fixed). The timer fires at the earliest deadline it was armed for and asks
    `DeadlineClock` for the deadline that applies now; if that has moved later (the idle deadline, pushed
    forward by every read) it re-arms for it, otherwise it raises `_Expired` in the request's greenlet,
    as `gevent.Timeout` does. The first token can move the deadline *earlier* (from the TTFT to the
    idle deadline): `first_token` re-arms at once. So expiries happen at the same instants, with the
    same error classes, as with a timeout per read.
    """

    __slots__ = ("_deadlines", "_done", "_fire_ns", "_greenlet", "_loop", "_timer", "last_read_ns")

    def __init__(self, deadlines: DeadlineClock) -> None:
        self._loop = gevent.get_hub().loop
        self._greenlet = gevent.getcurrent()
        self._deadlines = deadlines
        self._timer: object | None = None
        self._fire_ns: int | None = None
        self._done = False
        #: None until the first token; then the time of the latest read (the idle deadline counts from it).
        self.last_read_ns: int | None = None
        deadline_ns, _ = self._deadlines.current(self.last_read_ns)
        if deadline_ns is not None:
            self._arm(deadline_ns, deadlines.t0_ns)

    def first_token(self, now_ns: int) -> None:
        self.last_read_ns = now_ns
        deadline_ns, _ = self._deadlines.current(self.last_read_ns)
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
        if self._done:
            return
        deadline_ns, error_class = self._deadlines.current(self.last_read_ns)
        if deadline_ns is None:
            return
        now = time.monotonic_ns()
        if now >= deadline_ns:
            self._done = True
            self._greenlet.throw(_Expired(error_class))
        else:
            self._arm(deadline_ns, now)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        self._fire_ns = None
        if timer is not None:
            timer.stop()  # type: ignore[attr-defined]
            timer.close()  # type: ignore[attr-defined]

    def cancel(self) -> None:
        """Disarm for good (always called before the request returns: nothing may fire later)."""
        self._done = True
        self._stop_timer()
