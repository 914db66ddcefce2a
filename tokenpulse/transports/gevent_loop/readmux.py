"""One epoll set per gevent loop, through which the raw transport pushes every stream's reads.

Why: a greenlet that waits for its own socket pays, for every SSE event, a libev watcher start and
stop, a switch into the hub and a switch back, on top of the read itself: 9-25 % of the CPU per event
at 256-1,024 streams of 50 tokens/s (benchmarks/client_lag.py, gevent-raw against gevent-raw-pull in
the same run). Here the streams' sockets sit in one epoll set, which gevent watches as a
single file descriptor; when it turns readable the hub asks the set which sockets are ready and calls
each one's handler in turn, with no greenlet switch. The more streams are ready at once, the less
each pays for the wake-up: the way an asyncio event loop reads its sockets.

Handlers run in the hub greenlet, so they must never block and never raise (the raw transport's
handler reads, decodes the HTTP framing and hands the bytes to the driver, which feeds the recorder:
all of it CPU work); a request's greenlet sleeps until its handler wakes it at the end of the body.

Linux only (`select.epoll`); elsewhere `multiplexer()` returns None and each greenlet reads its own
socket as before.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

import gevent
from gevent import monkey

#: The real `select.epoll`: gevent's monkey-patching (which Locust applies) removes it from `select`,
#: since a blocking `poll` would stall the hub; here it is only ever polled with a zero timeout.
try:
    _epoll: Any = monkey.get_original("select", "epoll")
except AttributeError:  # not Linux
    _epoll = None

_READ = 1  # libev's EV_READ
_EPOLLIN = getattr(select, "EPOLLIN", 1)

#: One multiplexer per gevent loop (a loop per thread that runs gevent), keyed by id(loop); the entry
#: keeps the loop alive so the id cannot be reused while it is here.
_BY_LOOP: dict[int, tuple[object, ReadMultiplexer]] = {}


class ReadMultiplexer:
    """Calls `handler()` in the hub whenever its file descriptor has bytes to read (level-triggered:
    a handler that read only part of what is waiting is called again on the next loop iteration)."""

    __slots__ = ("_epoll", "_handlers", "_watcher", "loop")

    def __init__(self, loop: object) -> None:
        self.loop = loop
        self._epoll = _epoll()
        self._handlers: dict[int, Callable[[], None]] = {}
        # Started only while a stream is registered: an active watcher keeps the hub's loop alive, as
        # a greenlet's own read watcher would.
        self._watcher = loop.io(self._epoll.fileno(), _READ)  # type: ignore[attr-defined]

    def add(self, fd: int, handler: Callable[[], None]) -> None:
        self._epoll.register(fd, _EPOLLIN)
        self._handlers[fd] = handler
        if len(self._handlers) == 1:
            self._watcher.start(self._dispatch)

    def discard(self, fd: int) -> None:
        """Stop watching `fd` (idempotent; must happen before the socket is closed, since its number
        can be reused by the next socket)."""
        if self._handlers.pop(fd, None) is None:
            return
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):  # already closed: the kernel dropped it from the set
            pass
        if not self._handlers:
            self._watcher.stop()

    def _dispatch(self) -> None:
        handlers = self._handlers
        for fd, _ in self._epoll.poll(0):
            handler = handlers.get(fd)
            if handler is not None:  # a handler earlier in this batch may have ended its own stream only
                handler()

    def __len__(self) -> int:
        return len(self._handlers)


def multiplexer() -> ReadMultiplexer | None:
    """The current gevent loop's multiplexer, created on first use; None where epoll is unavailable."""
    if _epoll is None:
        return None
    loop = gevent.get_hub().loop
    entry = _BY_LOOP.get(id(loop))
    if entry is None or entry[0] is not loop:
        entry = (loop, ReadMultiplexer(loop))
        _BY_LOOP[id(loop)] = entry
    return entry[1]
