"""One probe: driver -> metrics -> confirmed state -> history. It never raises.

Why one place: every scheduled probe and every `--once` probe goes through `ProbeRunner.probe`, so a
result is recorded identically whichever mode ran it. Timing and token figures come from the
recorder through the driver, untouched; metric definitions come from `tokenpulse.metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from tokenpulse.config import SLO, ConfirmThresholds
from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.recorder import StreamRecorder, StreamResult
from tokenpulse.core.redact import clip, redact
from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.history import TargetHistory
from tokenpulse.prober.state import TargetState, Transition
from tokenpulse.prober.targets import ProbeTarget
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver

log = logging.getLogger("tokenpulse.prober")

#: Seconds past a probe's own total timeout before the runner gives up on the driver. The driver
#: enforces every deadline itself; this only guards against a bug that would park a job forever.
DEADLINE_GRACE_S = 5.0


@dataclass(slots=True)
class TrackedTarget:
    """Everything the prober keeps about one target between probes."""

    probe: ProbeTarget
    state: TargetState
    history: TargetHistory


@dataclass(slots=True)
class Tally:
    """Counts since the last periodic summary (logged at INFO)."""

    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)

    def take(self) -> Tally:
        taken = Tally(self.ok, self.failed)
        self.ok = 0
        self.failed = Counter()
        return taken


class ProbeRunner:
    """Runs probes and records their results. Safe to call concurrently for different targets."""

    def __init__(self, driver: AsyncStreamDriver, metrics: ProberMetrics, *, slo: SLO,
                 confirm: ConfirmThresholds, secrets: tuple[str, ...] = ()) -> None:
        self._driver = driver
        self._metrics = metrics
        self._slo = slo
        self._confirm = confirm
        self._secrets = secrets
        self.tracked: dict[str, TrackedTarget] = {}
        self.tally = Tally()

    def track(self, probe: ProbeTarget) -> TrackedTarget:
        """Register a target: its series exist at zero and its state is `unknown` before any probe."""
        tracked = self.tracked.get(probe.key)
        if tracked is None:
            tracked = TrackedTarget(probe, TargetState(self._confirm, self._slo.ttft_s),
                                    TargetHistory(self._secrets))
            self.tracked[probe.key] = tracked
            labels = probe.labels
            m = self._metrics
            m.requests.touch(labels)
            m.consecutive_failures.labels(**labels).set(0)
            m.interval.labels(**labels).set(probe.interval_s)
            m.set_state(labels, tracked.state.state)
        return tracked

    async def probe(self, probe: ProbeTarget) -> StreamResult:
        """Send one probe, record it everywhere, return its result. Never raises (but can be cancelled)."""
        tracked = self.track(probe)
        result = await self._measure(probe)
        try:
            self._record(tracked, result)
        except Exception as exc:  # a recording bug must not kill the job; say so once per probe
            log.error("recording the probe of %s failed: %s", probe.key, self._safe(repr(exc)))
        return result

    async def _measure(self, probe: ProbeTarget) -> StreamResult:
        t0 = time.monotonic_ns()
        try:
            async with asyncio.timeout(probe.timeouts.total + DEADLINE_GRACE_S if probe.timeouts.total else None):
                return await self._driver.run(probe.request, probe.timeouts)
        except TimeoutError:
            return self._failed(t0, ErrorClass.TIMEOUT_TOTAL, "probe exceeded its total timeout")
        except Exception as exc:  # the driver classifies transport errors; anything else is a bug
            return self._failed(t0, ErrorClass.PROTOCOL_ERROR,
                                f"unexpected client error: {type(exc).__name__}: {exc}")

    def _failed(self, t0_ns: int, error_class: ErrorClass, message: str) -> StreamResult:
        """A result for a probe the driver could not finish, built by the recorder like any other."""
        recorder = StreamRecorder(t0_ns, secrets=self._secrets)
        recorder.on_failure(time.monotonic_ns(), error_class, message)
        return recorder.result()

    def _record(self, tracked: TrackedTarget, result: StreamResult) -> None:
        probe = tracked.probe
        labels = probe.labels
        m = self._metrics
        cost = result.cost_usd
        if cost is None:
            cost = probe.cost_usd(result.prompt_tokens, result.output_tokens)
        m.requests.observe(labels, result, cost_usd=cost)
        now = time.time()
        m.last_probe.labels(**labels).set(now)
        if result.ok:
            m.last_success.labels(**labels).set(now)
            self.tally.ok += 1
        else:
            self.tally.failed[result.error_class.value if result.error_class else "unknown"] += 1
        transition = tracked.state.observe(result.ok, result.error_class, result.ttft_s)
        m.consecutive_failures.labels(**labels).set(tracked.state.consecutive_failures)
        if transition.changed:
            m.set_state(labels, transition.state)
        tracked.history.record(now, result)
        if not result.ok:
            self._log_failure(probe, result, tracked.state.consecutive_failures)
        if transition.changed:
            self._log_transition(probe, transition)

    def _log_failure(self, probe: ProbeTarget, result: StreamResult, in_a_row: int) -> None:
        error_class = result.error_class.value if result.error_class else "unknown"
        log.warning("probe failed: endpoint=%s model=%s provider=%s profile=%s class=%s status=%s "
                    "failures_in_a_row=%d: %s", probe.endpoint, probe.model, probe.provider, probe.profile,
                    error_class, result.http_status if result.http_status is not None else "-", in_a_row,
                    self._safe(result.error_message or ""))

    def _log_transition(self, probe: ProbeTarget, transition: Transition) -> None:
        level = logging.WARNING if transition.state == "down" else logging.INFO
        log.log(level, "state changed: endpoint=%s model=%s provider=%s profile=%s %s -> %s", probe.endpoint,
                probe.model, probe.provider, probe.profile, transition.previous, transition.state)

    def _safe(self, text: str) -> str:
        return clip(redact(text, self._secrets), 200)
