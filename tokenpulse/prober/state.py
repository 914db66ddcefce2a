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

`blind` lies over that machine: the prober cannot measure the target, so showing its last state (often
a green `up`) would be a lie. A target is blind when

- its last `failures_before_down` results were all caller-side failures (the same confirmation count
  as `down`; this wins over `down`: a dead key hides whether the outage is still on), or
- no probe succeeded for `blind_after_intervals` probe intervals (counted from its last success, or
  from when it was first tracked) and no provider-side failure explains it (none since the last
  success, so not `down` or on the way there): probes whose results never arrive (the prober's own
  errors, a stalled scheduler) or only caller-side ones short of the streak.

Its reason (`BLIND_REASONS`) comes from the latest caller-side failure's HTTP status: 401 and 403 are
`key_rejected`, 402 `no_credits`, 429 `rate_limited`; anything else is `no_success`. One success ends it.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from tokenpulse.config import ConfirmThresholds
from tokenpulse.core.outcomes import CALLER_SIDE_CLASSES, ErrorClass, counts_against_availability
from tokenpulse.metrics import BLIND_REASONS, TARGET_STATES

#: The state names are the metric's label values (metrics.TARGET_STATES), defined once there.
UP, DEGRADED, DOWN, UNKNOWN, BLIND = TARGET_STATES
KEY_REJECTED, NO_CREDITS, RATE_LIMITED, NO_SUCCESS = BLIND_REASONS
_REASON_BY_STATUS = {401: KEY_REJECTED, 403: KEY_REJECTED, 402: NO_CREDITS, 429: RATE_LIMITED}


def blind_reason(http_status: int | None) -> str:
    """The `reason` label of a blind target whose latest caller-side failure had this HTTP status."""
    return _REASON_BY_STATUS.get(http_status, NO_SUCCESS) if http_status is not None else NO_SUCCESS
#: Successful probes whose median TTFT decides `up` vs `degraded`: a median of three ignores one slow
#: outlier, so a provider near the SLO does not flap with every probe.
TTFT_WINDOW = 3


@dataclass(frozen=True, slots=True)
class Transition:
    previous: str
    state: str
    previous_reason: str | None = None
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.previous != self.state or self.previous_reason != self.reason


class TargetState:
    """Feed it each probe result in order; it keeps the counters and the confirmed state."""

    __slots__ = ("_failures_before_down", "_successes_before_up", "_ttft_slo_s", "_blind_after_s", "health",
                 "consecutive_failures", "consecutive_successes", "consecutive_caller_failures", "_ttfts",
                 "_since", "_last_caller_status", "blind_reason")

    def __init__(self, thresholds: ConfirmThresholds, ttft_slo_s: float, *, interval_s: float = 60.0,
                 blind_after_intervals: int = 3, since: float = 0.0) -> None:
        self._failures_before_down = thresholds.failures_before_down
        self._successes_before_up = thresholds.successes_before_up
        self._ttft_slo_s = ttft_slo_s
        self._blind_after_s = interval_s * blind_after_intervals
        #: The provider-side state machine (up / degraded / down / unknown); `state` lays `blind` over it.
        self.health = UNKNOWN
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.consecutive_caller_failures = 0
        self._ttfts: deque[float] = deque(maxlen=TTFT_WINDOW)
        #: Wall time of the last success, or of the start of tracking before any.
        self._since = since
        self._last_caller_status: int | None = None
        self.blind_reason: str | None = None

    @property
    def state(self) -> str:
        """The published state: `blind` while blind, else the provider-side state."""
        return BLIND if self.blind_reason is not None else self.health

    def observe(self, ok: bool, error_class: ErrorClass | None, ttft_s: float | None, *,
                http_status: int | None = None, at: float | None = None) -> Transition:
        previous, previous_reason = self.state, self.blind_reason
        if ok:
            self._success(ttft_s)
            if at is not None:
                self._since = at
            self.consecutive_caller_failures = 0
        elif counts_against_availability(error_class):
            self._failure()
            self.consecutive_caller_failures = 0
        elif error_class is not None and ErrorClass(error_class) in CALLER_SIDE_CLASSES:
            self.consecutive_caller_failures += 1
            self._last_caller_status = http_status
        self._judge_blind(at)
        return Transition(previous, self.state, previous_reason, self.blind_reason)

    def check(self, now: float) -> Transition:
        """Re-judge `blind` by the clock alone (for targets whose probes stopped finishing)."""
        previous, previous_reason = self.state, self.blind_reason
        self._judge_blind(now)
        return Transition(previous, self.state, previous_reason, self.blind_reason)

    def _judge_blind(self, now: float | None) -> None:
        if self.consecutive_caller_failures >= self._failures_before_down:
            self.blind_reason = blind_reason(self._last_caller_status)
        elif self.health == DOWN or self.consecutive_failures:
            self.blind_reason = None  # provider-side failures explain the missing successes
        elif now is not None and now - self._since >= self._blind_after_s:
            recent_caller = self.consecutive_caller_failures > 0
            self.blind_reason = blind_reason(self._last_caller_status) if recent_caller else NO_SUCCESS
        else:
            self.blind_reason = None

    def _failure(self) -> None:
        self.consecutive_failures += 1
        self.consecutive_successes = 0
        if self.consecutive_failures >= self._failures_before_down:
            self.health = DOWN
        elif self.health != DOWN:
            self.health = DEGRADED

    def _success(self, ttft_s: float | None) -> None:
        self.consecutive_successes += 1
        self.consecutive_failures = 0
        if ttft_s is not None:
            self._ttfts.append(ttft_s)
        if self.health == DOWN and self.consecutive_successes < self._successes_before_up:
            return
        self.health = DEGRADED if self.slow else UP

    @property
    def slow(self) -> bool:
        """True when the median TTFT of the recent successes exceeds the SLO."""
        return bool(self._ttfts) and statistics.median(self._ttfts) > self._ttft_slo_s
