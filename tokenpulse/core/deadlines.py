"""Which deadline governs a request now, shared by the sync and async drivers.

Before the first token the TTFT deadline applies (a provider may legitimately stay silent while it
queues or reasons); after it, the idle timeout (silence between reads). The total deadline always
applies. Keeping this in one place means both drivers classify a timeout identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.request import Timeouts

_NS = 1_000_000_000

Deadline = tuple[int | None, ErrorClass]


@dataclass(slots=True)
class DeadlineClock:
    """Deadlines in monotonic nanoseconds, measured from t0.

    Both drivers' lazy timers call `current` when they fire (and once at the first token), so
    everything that does not depend on the latest read is computed once here: before the first token it
    returns a precomputed tuple, after it one addition and one comparison."""

    t0_ns: int
    timeouts: Timeouts
    _total_ns: int | None = field(init=False, repr=False)
    _idle_ns: int | None = field(init=False, repr=False)
    _before_first: Deadline = field(init=False, repr=False)
    _total_only: Deadline = field(init=False, repr=False)

    def __post_init__(self) -> None:
        t = self.timeouts
        self._total_ns = None if t.total is None else self.t0_ns + int(t.total * _NS)
        self._idle_ns = None if t.idle is None else int(t.idle * _NS)
        self._total_only = (self._total_ns, ErrorClass.TIMEOUT_TOTAL)
        ttft_ns = None if t.ttft is None else self.t0_ns + int(t.ttft * _NS)
        # Ties go to the total deadline, as they always did (it was the first candidate of a `min`).
        if ttft_ns is not None and (self._total_ns is None or ttft_ns < self._total_ns):
            self._before_first = (ttft_ns, ErrorClass.TIMEOUT_TTFT)
        else:
            self._before_first = self._total_only

    def current(self, last_read_ns: int | None) -> Deadline:
        """The absolute deadline in force, and the error class if it expires (None: no deadline,
        reported as TIMEOUT_TOTAL), for a request whose latest read after the first token came at
        `last_read_ns` (None: no token yet)."""
        if last_read_ns is None:
            return self._before_first
        idle_ns = self._idle_ns
        if idle_ns is None:
            return self._total_only
        idle = last_read_ns + idle_ns
        total = self._total_ns
        if total is not None and total <= idle:
            return self._total_only
        return idle, ErrorClass.TIMEOUT_IDLE

    @staticmethod
    def describe(error_class: ErrorClass, timeouts: Timeouts) -> str:
        seconds = {
            ErrorClass.TIMEOUT_TOTAL: timeouts.total,
            ErrorClass.TIMEOUT_TTFT: timeouts.ttft,
            ErrorClass.TIMEOUT_IDLE: timeouts.idle,
            ErrorClass.TIMEOUT_CONNECT: timeouts.connect,
        }.get(error_class)
        return f"{error_class.value.replace('_', ' ')} after {seconds:g} s" if seconds else error_class.value
