"""The prober's in-flight cap: `max_in_flight` slots, each held by a probe for at most `overdue_s`.

Why not a plain semaphore: a hung provider's probe holds its slot until its timeout (a minute by
default), doing nothing. With a semaphore, enough hung targets fill every slot and the healthy ones
queue behind them: 100 hung targets out of 200 left the healthy half 25 % of its probes and a
scheduler lag p99 of 70 s. What the cap is for is bounding the probes that are *working* at once (a
burst of streams to parse); a probe that has run past `overdue_s` (the TTFT objective: it is late
already, and waits on the provider, not on us) gives its slot back and runs on uncounted until it
ends, which its own timeouts guarantee. What bounds those is the scheduler's other rule: never two
probes of one target at once, so no more probes run than there are targets.

So a hung target occupies a slot for `overdue_s` per probe, not for its timeout: the cap fills with
hung probes only when `hung targets x overdue_s / interval` approaches `max_in_flight`. Waiting for
a slot is FIFO.

Cost: the fast path (a free slot, nobody waiting) is a deque append and a few comparisons, like a
semaphore's; overdue slots are reclaimed lazily at each acquire, and a timer is armed only while a
probe waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

#: uvloop timers may fire up to a millisecond early; waking a little late avoids re-arming in a loop.
_TIMER_SLACK_S = 0.002
#: Connection-pool size for an HTTP client whose probes pass this cap: the probes it no longer counts
#: still hold connections, so the pool (httpx's, when a proxy is set) must not be a second, hidden cap.
#: At most one probe per target runs; this only has to exceed any realistic target count.
CLIENT_MAX_CONNECTIONS = 10_000


@dataclass(slots=True, eq=False)
class Slot:
    """One running probe's hold on the cap; `counted` turns False when released or overdue."""

    started: float
    counted: bool = True


class InFlightCap:
    """At most `capacity` probes younger than `overdue_s` at once; every probe runs (see the module)."""

    def __init__(self, capacity: int, overdue_s: float) -> None:
        if capacity < 1 or overdue_s <= 0:
            raise ValueError("capacity must be >= 1 and overdue_s > 0")
        self.capacity = capacity
        self.overdue_s = overdue_s
        #: Probes holding a slot, and every probe between acquire and release.
        self.counted = 0
        self.running = 0
        self._order: deque[Slot] = deque()  # slots by start time: the oldest is the next to be overdue
        self._waiters: deque[asyncio.Future[Slot]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> Slot:
        """A slot, at once when one is free (or an overdue one can be reclaimed), else in FIFO order."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._expire(now)
        if self.counted < self.capacity and not self._waiters:
            return self._grant(now)
        future: asyncio.Future[Slot] = loop.create_future()
        self._waiters.append(future)
        self._wake()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(future.result())  # granted, but the waiter was cancelled meanwhile
            raise

    def release(self, slot: Slot) -> None:
        self.running -= 1
        if slot.counted:
            slot.counted = False
            self.counted -= 1
            if self._waiters:
                self._wake()

    def _grant(self, now: float) -> Slot:
        slot = Slot(now)
        self.counted += 1
        self.running += 1
        self._order.append(slot)
        return slot

    def _expire(self, now: float) -> None:
        """Drop released slots from the front, and uncount those that have become overdue."""
        order = self._order
        limit = now - self.overdue_s
        while order:
            head = order[0]
            if head.counted and head.started > limit:
                return
            order.popleft()
            if head.counted:
                head.counted = False
                self.counted -= 1

    def _wake(self) -> None:
        """Grant slots to waiters while there are slots; keep a timer for the next overdue one."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._expire(now)
        waiters = self._waiters
        while waiters and self.counted < self.capacity:
            future = waiters.popleft()
            if not future.done():
                future.set_result(self._grant(now))
        while waiters and waiters[0].done():  # cancelled waiters
            waiters.popleft()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiters and self._order:
            at = self._order[0].started + self.overdue_s + _TIMER_SLACK_S
            self._timer = loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()
