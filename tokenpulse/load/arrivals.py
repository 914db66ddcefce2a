"""Open-loop arrivals for the fixed-rate shape: requests are *scheduled* at a rate, whatever the target does.

Why: a closed loop (each user sends its next request when the previous one ends) slows down exactly when
the target does, so a slow target receives less load and its latency looks better than users would see:
coordinated omission. Here a generator greenlet schedules arrivals at the configured rate (constant gaps,
Poisson, i.e. exponential gaps, or gamma gaps of shape K: `--burstiness K`, as `vllm bench serve` has)
and puts each arrival's *scheduled* time in a queue; a free user takes the oldest one.

Gamma gaps keep the mean gap 1/rate whatever K; their coefficient of variation is 1/sqrt(K), so K < 1
gives bursts (clusters of arrivals with long pauses between), K = 1 is exactly Poisson and K > 1 tends
to constant gaps. A trace replay (trace.py) instead hands the queue its own arrival times (already
scaled by `--speed`), each with the trace line it replays as the arrival's payload.

The time between the scheduled arrival and the actual send is the request's `queue_wait_s`: recorded
per request, exported, and added to TTFT in the report's "from schedule" figures, so a saturated target
cannot hide behind a busy generator.

Arrivals still queued when the run ends were never sent; `dropped` counts them and the report shows them.
In distributed runs each process schedules `rate / workers`; the sum is the configured rate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gevent
from gevent.queue import Empty, Queue

_NS = 1_000_000_000

GapKind = Literal["constant", "poisson", "gamma"]


def next_gap(rng: random.Random, rate: float, kind: GapKind, burstiness: float = 1.0) -> float:
    """Seconds to the next arrival at `rate` per second: constant, exponential (Poisson) or gamma with
    shape `burstiness` and scale 1 / (rate * burstiness), so the mean stays 1 / rate."""
    if kind == "constant":
        return 1.0 / rate
    if kind == "gamma" and burstiness != 1.0:
        return rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
    return rng.expovariate(rate)


class ArrivalQueue:
    """Schedules arrivals for `rate_at(t)` (per second, None to stop), or at the given `times` (seconds
    after the start, with a payload each: a trace replay), and hands them to users."""

    def __init__(self, rate_at: Callable[[float], float | None], *, share: float, poisson: bool, seed: int,
                 start_mono_ns: int, burstiness: float | None = None,
                 times: Sequence[tuple[float, Any]] | None = None) -> None:
        self._rate_at = rate_at
        self._share = share
        self._kind: GapKind = "gamma" if burstiness is not None else "poisson" if poisson else "constant"
        self._burstiness = burstiness if burstiness is not None else 1.0
        self._times = times
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

    def discard_pending(self) -> int:
        """Forget the arrivals not taken yet (`--max-requests` reached: they were never meant to be
        sent, so they must not count as offered load the target failed to take). Their number."""
        discarded = 0
        while True:
            try:
                t_ns, _ = self._queue.get_nowait()
            except Empty:
                return discarded
            self.scheduled -= 1
            discarded += 1

    def take(self, timeout: float | None = None) -> int | None:
        """Block until an arrival is due; its scheduled monotonic time in ns (None on timeout)."""
        arrival = self.take_arrival(timeout)
        return None if arrival is None else arrival[0]

    def take_arrival(self, timeout: float | None = None) -> tuple[int, Any] | None:
        """Block until an arrival is due: (scheduled monotonic ns, payload or None); None on timeout."""
        try:
            arrival: tuple[int, Any] = self._queue.get(timeout=timeout)
        except Empty:
            return None
        self.taken += 1
        return arrival

    def _run(self) -> None:
        if self._times is not None:
            self._replay(self._times)
            return
        clock = time.monotonic_ns
        t_ns = self._start_ns
        while True:
            elapsed = (t_ns - self._start_ns) / _NS
            rate = self._rate_at(elapsed)
            if rate is None:
                return
            per_process = rate * self._share
            t_ns += int(next_gap(self._rng, per_process, self._kind, self._burstiness) * _NS)
            delay = (t_ns - clock()) / _NS
            if delay > 0:
                gevent.sleep(delay)
            if self._rate_at((t_ns - self._start_ns) / _NS) is None:
                return
            self._put(t_ns, None)

    def _replay(self, times: Sequence[tuple[float, Any]]) -> None:
        """Put each given arrival in the queue at its time (ordered by time), until `rate_at` says stop."""
        clock = time.monotonic_ns
        for offset_s, payload in times:
            if self._rate_at(offset_s) is None:
                return
            t_ns = self._start_ns + int(offset_s * _NS)
            delay = (t_ns - clock()) / _NS
            if delay > 0:
                gevent.sleep(delay)
            self._put(t_ns, payload)

    def _put(self, t_ns: int, payload: Any) -> None:
        self.scheduled += 1
        self._queue.put((t_ns, payload))
