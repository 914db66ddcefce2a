"""The confirmed state of one target: up, degraded, down or unknown, with flap damping.

Why confirmation: one failed probe of a provider is noise, three in a row is an outage. Uptime
monitors (and OpenRouter's own status) damp flapping the same way, and the provider-down alert relies
on this state rather than on single results.

Definitions (only *provider-side* results count; caller-side classes `rate_limited` and
`client_error` say something about our key or request, so they neither add to nor reset the counts,
and leave the state as it was):

- `unknown`: no provider-side result yet.
- `down`: the last `failures_before_down` provider-side results were failures, and the target has
  not since succeeded `successes_before_up` times in a row.
- `degraded`: not down, and either the latest provider-side result was a failure that is not yet
  confirmed (fewer than `failures_before_down` in a row), or the latest was a success but the median
  TTFT of the last `TTFT_WINDOW` successful probes exceeds the TTFT SLO (slow, but serving).
- `up`: not down, the latest provider-side result was a success, and that median TTFT meets the SLO.

Leaving `down` takes `successes_before_up` successes in a row; leaving `degraded` after an unconfirmed
failure takes one success. A target that starts failing goes unknown -> degraded -> down.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from tokenpulse.config import ConfirmThresholds
from tokenpulse.core.outcomes import ErrorClass, counts_against_availability
from tokenpulse.metrics import TARGET_STATES

#: The state names are the metric's label values (metrics.TARGET_STATES), defined once there.
UP, DEGRADED, DOWN, UNKNOWN = TARGET_STATES
#: Successful probes whose median TTFT decides `up` vs `degraded`: a median of three ignores one slow
#: outlier, so a provider near the SLO does not flap with every probe.
TTFT_WINDOW = 3


@dataclass(frozen=True, slots=True)
class Transition:
    previous: str
    state: str

    @property
    def changed(self) -> bool:
        return self.previous != self.state


class TargetState:
    """Feed it each probe result in order; it keeps the counters and the confirmed state."""

    __slots__ = ("_failures_before_down", "_successes_before_up", "_ttft_slo_s", "state",
                 "consecutive_failures", "consecutive_successes", "_ttfts")

    def __init__(self, thresholds: ConfirmThresholds, ttft_slo_s: float) -> None:
        self._failures_before_down = thresholds.failures_before_down
        self._successes_before_up = thresholds.successes_before_up
        self._ttft_slo_s = ttft_slo_s
        self.state = UNKNOWN
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self._ttfts: deque[float] = deque(maxlen=TTFT_WINDOW)

    def observe(self, ok: bool, error_class: ErrorClass | None, ttft_s: float | None) -> Transition:
        previous = self.state
        if ok:
            self._success(ttft_s)
        elif counts_against_availability(error_class):
            self._failure()
        return Transition(previous, self.state)

    def _failure(self) -> None:
        self.consecutive_failures += 1
        self.consecutive_successes = 0
        if self.consecutive_failures >= self._failures_before_down:
            self.state = DOWN
        elif self.state != DOWN:
            self.state = DEGRADED

    def _success(self, ttft_s: float | None) -> None:
        self.consecutive_successes += 1
        self.consecutive_failures = 0
        if ttft_s is not None:
            self._ttfts.append(ttft_s)
        if self.state == DOWN and self.consecutive_successes < self._successes_before_up:
            return
        self.state = DEGRADED if self.slow else UP

    @property
    def slow(self) -> bool:
        """True when the median TTFT of the recent successes exceeds the SLO."""
        return bool(self._ttfts) and statistics.median(self._ttfts) > self._ttft_slo_s
