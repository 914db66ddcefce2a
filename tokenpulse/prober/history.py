"""Bounded in-memory history of each target, for the status page and `/api/status`.

Why not keep every result: the prober runs for months and may watch a thousand targets, so memory
must not grow with time. Uptime is kept as counts in fixed time buckets (one-minute buckets for the
last hour, fifteen-minute buckets for the last day); latency and speed keep the last
`RECENT_SUCCESSES` successful probes; failures keep the last `RECENT_FAILURES` with their class and a
short redacted message. Prometheus holds the long-term record; this is the at-a-glance view.

Uptime follows OpenRouter's definition: successes / (successes + provider-side failures), so
`rate_limited` and `client_error` results count in neither (DESIGN.md §4); buckets count them apart
(`caller`), so a bar of the status page can say "we could not measure" instead of "it was up".

Repeated identical failures (same class, status and message) are one entry with a count and a time
span, so one hour-long outage does not push every other failure out. State changes are kept too
(`RECENT_TRANSITIONS`), for the incident list. `to_dict` / `restore` carry all of it through the
SQLite store (store.py) across a restart.
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenpulse.core.outcomes import counts_against_availability
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.redact import clip, redact

RECENT_SUCCESSES = 60
RECENT_FAILURES = 10
RECENT_TRANSITIONS = 50
FAILURE_MESSAGE_LIMIT = 160
MINUTE_BUCKETS = 61
QUARTER_S = 900.0
QUARTER_BUCKETS = 97
HOUR_S = 3600.0
DAY_S = 86400.0


class BucketRing:
    """Success and failure counts in `count` buckets of `width_s` seconds, reused round-robin.

    Each slot remembers which bucket it holds, so a slot left over from a previous lap is ignored
    without any sweeping. A window's total covers the buckets that overlap it (so its edge is accurate
    to one bucket width).
    """

    __slots__ = ("_width", "_count", "_ids", "_ok", "_bad", "_caller")

    def __init__(self, width_s: float, count: int) -> None:
        self._width = width_s
        self._count = count
        self._ids = array("q", [-1]) * count
        self._ok = array("I", [0]) * count
        self._bad = array("I", [0]) * count
        self._caller = array("I", [0]) * count

    def add(self, t: float, ok: bool, caller: bool = False) -> None:
        """Count one result: a success, a provider-side failure, or (`caller`) a caller-side one."""
        bucket = int(t // self._width)
        slot = bucket % self._count
        if self._ids[slot] != bucket:
            self._ids[slot] = bucket
            self._ok[slot] = 0
            self._bad[slot] = 0
            self._caller[slot] = 0
        if ok:
            self._ok[slot] += 1
        elif caller:
            self._caller[slot] += 1
        else:
            self._bad[slot] += 1

    def buckets(self, now: float, count: int) -> list[tuple[float, int, int, int]]:
        """The last `count` buckets up to `now`, oldest first: (start time, ok, failed, caller-side)."""
        last = int(now // self._width)
        out = []
        for bucket in range(last - min(count, self._count) + 1, last + 1):
            slot = bucket % self._count
            held = self._ids[slot] == bucket
            out.append((bucket * self._width, self._ok[slot] if held else 0, self._bad[slot] if held else 0,
                        self._caller[slot] if held else 0))
        return out

    def to_list(self) -> list[list[int]]:
        return [[self._ids[i], self._ok[i], self._bad[i], self._caller[i]] for i in range(self._count)
                if self._ids[i] >= 0]

    def restore(self, rows: Sequence[Sequence[int]]) -> None:
        for bucket, ok, bad, caller in rows:
            slot = int(bucket) % self._count
            if int(bucket) >= self._ids[slot]:
                self._ids[slot], self._ok[slot], self._bad[slot], self._caller[slot] = (
                    int(bucket), int(ok), int(bad), int(caller))

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


@dataclass(slots=True)
class Failure:
    """Recent failures of one kind, as shown on the status page: `count` identical ones (same class,
    status and message) with no other failure between them (successes may lie between), from
    `first_at` to `at`. `message` is redacted and clipped."""

    at: float
    error_class: str
    http_status: int | None
    message: str
    counts_against_availability: bool
    count: int = 1
    first_at: float | None = None

    def same_as(self, error_class: str, http_status: int | None, message: str) -> bool:
        return (self.error_class, self.http_status, self.message) == (error_class, http_status, message)


@dataclass(frozen=True, slots=True)
class StateChange:
    """A change of a target's published state (the incident list is built from these)."""

    at: float
    previous: str
    state: str
    reason: str | None


class TargetHistory:
    """What the status page shows about one target."""

    __slots__ = ("_minutes", "_quarters", "_successes", "failures", "transitions", "last_at", "last_ok",
                 "last_error_class", "probes", "first_at", "dirty", "_secrets")

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._minutes = BucketRing(60.0, MINUTE_BUCKETS)
        self._quarters = BucketRing(QUARTER_S, QUARTER_BUCKETS)
        #: (wall time, TTFT s, output tokens/s or NaN) of recent successful probes
        self._successes: deque[tuple[float, float, float]] = deque(maxlen=RECENT_SUCCESSES)
        self.failures: deque[Failure] = deque(maxlen=RECENT_FAILURES)
        self.transitions: deque[StateChange] = deque(maxlen=RECENT_TRANSITIONS)
        self.last_at: float | None = None
        self.last_ok: bool | None = None
        self.last_error_class: str | None = None
        self.probes = 0
        #: Wall time of the first probe ever recorded (kept across restarts): what the uptimes cover.
        self.first_at: float | None = None
        #: Changed since the store last saved it.
        self.dirty = False
        self._secrets = tuple(secrets)

    def record(self, at: float, result: StreamResult) -> None:
        """Add one finished probe that ended at wall-clock time `at`."""
        self.probes += 1
        self.dirty = True
        if self.first_at is None:
            self.first_at = at
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
        self._minutes.add(at, False, caller=not provider_side)
        self._quarters.add(at, False, caller=not provider_side)
        message = clip(redact(result.error_message or "", self._secrets), FAILURE_MESSAGE_LIMIT)
        kind = self.last_error_class or ""
        last = self.failures[-1] if self.failures else None
        if last is not None and last.same_as(kind, result.http_status, message):
            if last.first_at is None:
                last.first_at = last.at
            last.count += 1
            last.at = at
        else:
            self.failures.append(Failure(at, kind, result.http_status, message, provider_side))

    def transition(self, at: float, previous: str, state: str, reason: str | None) -> None:
        self.transitions.append(StateChange(at, previous, state, reason))
        self.dirty = True

    def uptime(self, now: float, window_s: float) -> float | None:
        """Share of provider-side results that succeeded over the window; None without any."""
        ring = self._minutes if window_s <= HOUR_S else self._quarters
        ok, bad = ring.totals(now, window_s)
        return ok / (ok + bad) if ok + bad else None

    def covered_s(self, now: float, window_s: float) -> float:
        """How much of the last `window_s` the history covers (since the first probe ever recorded)."""
        return 0.0 if self.first_at is None else max(0.0, min(window_s, now - self.first_at))

    def bars(self, now: float) -> list[tuple[float, int, int, int]]:
        """The last day in quarter-hour buckets, oldest first: (start, ok, failed, caller-side)."""
        return self._quarters.buckets(now, QUARTER_BUCKETS - 1)

    # ----------------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """Everything above as plain JSON-able data (bounded: fixed-size rings and deques)."""
        return {
            "v": 1, "probes": self.probes, "first_at": self.first_at, "last_at": self.last_at,
            "last_ok": self.last_ok, "last_error_class": self.last_error_class,
            "minutes": self._minutes.to_list(), "quarters": self._quarters.to_list(),
            "successes": [[a, _nan_none(t), _nan_none(v)] for a, t, v in self._successes],
            "failures": [[f.at, f.error_class, f.http_status, f.message, f.counts_against_availability, f.count,
                          f.first_at] for f in self.failures],
            "transitions": [[c.at, c.previous, c.state, c.reason] for c in self.transitions],
        }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Load what `to_dict` saved (a previous run of the prober). Unknown versions are ignored."""
        if doc.get("v") != 1:
            return
        self.probes = int(doc.get("probes") or 0)
        self.first_at = doc.get("first_at")
        self.last_at = doc.get("last_at")
        self.last_ok = doc.get("last_ok")
        self.last_error_class = doc.get("last_error_class")
        self._minutes.restore(doc.get("minutes") or [])
        self._quarters.restore(doc.get("quarters") or [])
        for at, ttft, speed in doc.get("successes") or []:
            self._successes.append((at, math.nan if ttft is None else ttft, math.nan if speed is None else speed))
        for at, kind, status, message, provider_side, count, first_at in doc.get("failures") or []:
            self.failures.append(Failure(at, kind, status, message, provider_side, count, first_at))
        for at, previous, state, reason in doc.get("transitions") or []:
            self.transitions.append(StateChange(at, previous, state, reason))

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


def _nan_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else None
