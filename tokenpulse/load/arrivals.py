"""Open-loop arrivals for the fixed-rate shape: requests are *scheduled* at a rate, whatever the target does.

Why: a closed loop (each user sends its next request when the previous one ends) slows down exactly when
the target does, so a slow target receives less load and its latency looks better than users would see:
coordinated omission. Here a generator greenlet schedules arrivals at the configured rate (constant gaps
or Poisson, i.e. exponential gaps) and puts each arrival's *scheduled* time in a queue; a free user takes
the oldest one. The time between the scheduled arrival and the actual send is the request's
`queue_wait_s`: recorded per request, exported, and added to TTFT in the report's "from schedule"
figures, so a saturated target cannot hide behind a busy generator.

Arrivals still queued when the run ends were never sent; `dropped` counts them and the report shows them.
In distributed runs each process schedules `rate / workers`; the sum is the configured rate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import gevent
from gevent.queue import Empty, Queue

_NS = 1_000_000_000


class ArrivalQueue:
    """Schedules arrivals for `rate_at(t)` (per second, None to stop) and hands them to users."""

    def __init__(self, rate_at: Callable[[float], float | None], *, share: float, poisson: bool, seed: int,
                 start_mono_ns: int) -> None:
        self._rate_at = rate_at
        self._share = share
        self._poisson = poisson
        self._rng = random.Random(seed)
        self._start_ns = start_mono_ns
        self._queue: Queue = Queue()
        self._greenlet: gevent.Greenlet | None = None
        self.scheduled = 0
        self.taken = 0

    @property
    def dropped(self) -> int:
        """Arrivals scheduled but not (yet) taken by any user."""
        return self.scheduled - self.taken

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def take(self, timeout: float | None = None) -> int | None:
        """Block until an arrival is due; its scheduled monotonic time in ns (None on timeout)."""
        try:
            scheduled = self._queue.get(timeout=timeout)
        except Empty:
            return None
        self.taken += 1
        return scheduled

    def _run(self) -> None:
        clock = time.monotonic_ns
        t_ns = self._start_ns
        while True:
            elapsed = (t_ns - self._start_ns) / _NS
            rate = self._rate_at(elapsed)
            if rate is None:
                return
            per_process = rate * self._share
            gap = self._rng.expovariate(per_process) if self._poisson else 1.0 / per_process
            t_ns += int(gap * _NS)
            delay = (t_ns - clock()) / _NS
            if delay > 0:
                gevent.sleep(delay)
            if self._rate_at((t_ns - self._start_ns) / _NS) is None:
                return
            self.scheduled += 1
            self._queue.put(t_ns)
