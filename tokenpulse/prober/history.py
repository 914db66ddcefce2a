"""Bounded in-memory history of each target, for the status page and `/api/status`.

Why not keep every result: the prober runs for months and may watch a thousand targets, so memory
must not grow with time. Uptime is kept as counts in fixed time buckets (one-minute buckets for the
last hour, fifteen-minute buckets for the last day); latency and speed keep the last
`RECENT_SUCCESSES` successful probes; failures keep the last `RECENT_FAILURES` with their class and a
short redacted message. Prometheus holds the long-term record; this is the at-a-glance view.

Uptime follows OpenRouter's definition: successes / (successes + provider-side failures), so
`rate_limited` and `client_error` results count in neither (DESIGN.md §4).
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from tokenpulse.core.outcomes import counts_against_availability
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.redact import clip, redact

RECENT_SUCCESSES = 60
RECENT_FAILURES = 10
FAILURE_MESSAGE_LIMIT = 160
HOUR_S = 3600.0
DAY_S = 86400.0


class BucketRing:
    """Success and failure counts in `count` buckets of `width_s` seconds, reused round-robin.

    Each slot remembers which bucket it holds, so a slot left over from a previous lap is ignored
    without any sweeping. A window's total covers the buckets that overlap it (so its edge is accurate
    to one bucket width).
    """

    __slots__ = ("_width", "_count", "_ids", "_ok", "_bad")

    def __init__(self, width_s: float, count: int) -> None:
        self._width = width_s
        self._count = count
        self._ids = array("q", [-1]) * count
        self._ok = array("I", [0]) * count
        self._bad = array("I", [0]) * count

    def add(self, t: float, ok: bool) -> None:
        bucket = int(t // self._width)
        slot = bucket % self._count
        if self._ids[slot] != bucket:
            self._ids[slot] = bucket
            self._ok[slot] = 0
            self._bad[slot] = 0
        if ok:
            self._ok[slot] += 1
        else:
            self._bad[slot] += 1

    def totals(self, now: float, window_s: float) -> tuple[int, int]:
        """(successes, failures) in the buckets overlapping [now - window_s, now]."""
        last = int(now // self._width)
        first = max(int((now - window_s) // self._width) + 1, last - self._count + 1)
        ok = bad = 0
        ids, oks, bads = self._ids, self._ok, self._bad
        for bucket in range(first, last + 1):
            slot = bucket % self._count
            if ids[slot] == bucket:
                ok += oks[slot]
                bad += bads[slot]
        return ok, bad


@dataclass(frozen=True, slots=True)
class Failure:
    """One recent failure, as shown on the status page. `message` is redacted and clipped."""

    at: float
    error_class: str
    http_status: int | None
    message: str
    counts_against_availability: bool


class TargetHistory:
    """What the status page shows about one target."""

    __slots__ = ("_minutes", "_quarters", "_successes", "failures", "last_at", "last_ok",
                 "last_error_class", "probes", "_secrets")

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._minutes = BucketRing(60.0, 61)
        self._quarters = BucketRing(900.0, 97)
        #: (wall time, TTFT s, output tokens/s or NaN) of recent successful probes
        self._successes: deque[tuple[float, float, float]] = deque(maxlen=RECENT_SUCCESSES)
        self.failures: deque[Failure] = deque(maxlen=RECENT_FAILURES)
        self.last_at: float | None = None
        self.last_ok: bool | None = None
        self.last_error_class: str | None = None
        self.probes = 0
        self._secrets = tuple(secrets)

    def record(self, at: float, result: StreamResult) -> None:
        """Add one finished probe that ended at wall-clock time `at`."""
        self.probes += 1
        self.last_at = at
        self.last_ok = result.ok
        error_class = result.error_class
        self.last_error_class = error_class.value if error_class else None
        if result.ok:
            self._minutes.add(at, True)
            self._quarters.add(at, True)
            speed = result.output_tokens_per_s
            self._successes.append((at, result.ttft_s if result.ttft_s is not None else math.nan,
                                    speed if speed is not None else math.nan))
            return
        provider_side = counts_against_availability(error_class)
        if provider_side:
            self._minutes.add(at, False)
            self._quarters.add(at, False)
        message = clip(redact(result.error_message or "", self._secrets), FAILURE_MESSAGE_LIMIT)
        self.failures.append(Failure(at, self.last_error_class or "", result.http_status, message, provider_side))

    def uptime(self, now: float, window_s: float) -> float | None:
        """Share of provider-side results that succeeded over the window; None without any."""
        ring = self._minutes if window_s <= HOUR_S else self._quarters
        ok, bad = ring.totals(now, window_s)
        return ok / (ok + bad) if ok + bad else None

    def latency(self, now: float, window_s: float = HOUR_S) -> dict[str, float | None]:
        """Last and median TTFT and output tokens/s of the successful probes within the window."""
        recent = [s for s in self._successes if s[0] >= now - window_s]
        last = self._successes[-1] if self._successes else None
        return {
            "last_ttft_s": _finite(last[1]) if last else None,
            "median_ttft_s": _median([s[1] for s in recent]),
            "last_tokens_per_s": _finite(last[2]) if last else None,
            "median_tokens_per_s": _median([s[2] for s in recent]),
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else None
