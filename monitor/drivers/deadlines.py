"""Which deadline governs the next read, shared by the sync and async drivers.

Before the first token the TTFT deadline applies (a provider may legitimately stay silent while it
queues or reasons); after it, the idle timeout (silence between reads). The total deadline always
applies. Keeping this in one place means both drivers classify a timeout identically.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.drivers.request import Timeouts
from monitor.outcomes import ErrorClass

_NS = 1_000_000_000


@dataclass(slots=True)
class DeadlineClock:
    """Deadlines in monotonic nanoseconds, measured from t0."""

    t0_ns: int
    timeouts: Timeouts

    def next_deadline(self, now_ns: int, first_token_seen: bool) -> tuple[int | None, ErrorClass]:
        """The absolute deadline for the next read and the error class if it expires."""
        candidates: list[tuple[int, ErrorClass]] = []
        t = self.timeouts
        if t.total is not None:
            candidates.append((self.t0_ns + int(t.total * _NS), ErrorClass.TIMEOUT_TOTAL))
        if not first_token_seen:
            if t.ttft is not None:
                candidates.append((self.t0_ns + int(t.ttft * _NS), ErrorClass.TIMEOUT_TTFT))
        elif t.idle is not None:
            candidates.append((now_ns + int(t.idle * _NS), ErrorClass.TIMEOUT_IDLE))
        if not candidates:
            return None, ErrorClass.TIMEOUT_TOTAL
        return min(candidates, key=lambda c: c[0])

    @staticmethod
    def describe(error_class: ErrorClass, timeouts: Timeouts) -> str:
        seconds = {
            ErrorClass.TIMEOUT_TOTAL: timeouts.total,
            ErrorClass.TIMEOUT_TTFT: timeouts.ttft,
            ErrorClass.TIMEOUT_IDLE: timeouts.idle,
            ErrorClass.TIMEOUT_CONNECT: timeouts.connect,
        }.get(error_class)
        return f"{error_class.value.replace('_', ' ')} after {seconds:g} s" if seconds else error_class.value
