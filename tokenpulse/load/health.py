"""The load generator's own health: CPU share of its process and client lag (gevent hub timer lateness).

Why: DESIGN.md §6 measured that every client stack keeps its lag p99 under 5 ms while its core is below
~60 % busy and jumps to tens of ms above ~75 %. Past that point the figures measure the generator, not
the target. So each Locust process samples itself, writes the samples next to its records and sends them
to the master (Prometheus), and the report warns when CPU or lag crossed the line.

Lag: a greenlet sleeps `interval` over and over and records how late it woke up. Every token a user
reads is delivered through the same hub, so a late timer means late timestamps by about as much.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import psutil

from tokenpulse.core.stats import percentile

LAG_INTERVAL_S = 0.01
SAMPLE_PERIOD_S = 1.0


@dataclass(slots=True)
class HealthSample:
    """One second of one process: CPU ratio (of one core), lag summary, requests in flight."""

    time: float
    t_s: float
    worker: str
    cpu: float | None  # None when the sample closes a period too short to measure CPU over
    lag_p50_s: float | None
    lag_p99_s: float | None
    lag_max_s: float | None
    in_flight: int
    users: int
    lags: list[float] = field(default_factory=list)
    #: Open loop only: arrivals scheduled but not yet taken by a user (at the end: never sent).
    arrivals_pending: int | None = None

    def to_record(self) -> dict[str, Any]:
        return {"time": round(self.time, 3), "t_s": round(self.t_s, 3), "worker": self.worker,
                "cpu": None if self.cpu is None else round(self.cpu, 4), "lag_p50_s": _r(self.lag_p50_s),
                "lag_p99_s": _r(self.lag_p99_s),
                "lag_max_s": _r(self.lag_max_s), "in_flight": self.in_flight, "users": self.users,
                # every lag sample (about 100 per second): the report's lag percentiles are exact per step
                "lags_s": [round(v, 6) for v in self.lags], "arrivals_pending": self.arrivals_pending}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


class HealthMonitor:
    """Runs two greenlets in the process: the lag probe and the once-a-second sampler."""

    def __init__(self, worker: str, *, run_start: float, on_sample: Callable[[HealthSample], None],
                 in_flight: Callable[[], int], users: Callable[[], int],
                 arrivals_pending: Callable[[], int | None] = lambda: None) -> None:
        self.worker = worker
        self.run_start = run_start
        self._on_sample = on_sample
        self._in_flight = in_flight
        self._users = users
        self._arrivals_pending = arrivals_pending
        self._lags: list[float] = []
        self._process = psutil.Process(os.getpid())
        self._greenlets: list[gevent.Greenlet] = []
        self._last_sample = time.monotonic()

    def start(self) -> None:
        self._process.cpu_percent(None)  # prime: the first call always returns 0
        self._last_sample = time.monotonic()
        self._greenlets = [gevent.spawn(self._lag_loop), gevent.spawn(self._sample_loop)]

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=False)
        self._greenlets = []

    def _lag_loop(self) -> None:
        clock = time.monotonic
        while True:
            expected = clock() + LAG_INTERVAL_S
            gevent.sleep(LAG_INTERVAL_S)
            self._lags.append(max(0.0, clock() - expected))

    def _sample_loop(self) -> None:
        while True:
            gevent.sleep(SAMPLE_PERIOD_S)
            self._on_sample(self.sample())

    def sample(self) -> HealthSample:
        lags, self._lags = self._lags, []
        ordered = sorted(lags)
        now = time.time()
        mono = time.monotonic()
        # CPU share over a very short period (the final sample at the stop) is noise: leave it out.
        cpu = self._process.cpu_percent(None) / 100.0 if mono - self._last_sample >= 0.5 else None
        self._last_sample = mono
        return HealthSample(
            time=now, t_s=now - self.run_start, worker=self.worker, cpu=cpu,
            lag_p50_s=percentile(ordered, 50), lag_p99_s=percentile(ordered, 99),
            lag_max_s=ordered[-1] if ordered else None,
            in_flight=self._in_flight(), users=self._users(), lags=lags,
            arrivals_pending=self._arrivals_pending(),
        )
