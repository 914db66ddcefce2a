"""One probe: driver -> metrics -> confirmed state -> history. It never raises.

Why one place: every scheduled probe and every `--once` probe goes through `ProbeRunner.probe`, so a
result is recorded identically whichever mode ran it. Timing and token figures come from the
recorder through the driver, untouched; metric definitions come from `tokenpulse.metrics`.

The prober's own bugs are its own: an unexpected exception while measuring or recording a probe is
counted in `tokenpulse_prober_errors_total` and logged, and the probe is not booked at all (no
request counted, no state change), so it can never lower a provider's availability. Only a request
that really failed gets a failure result (`failure_result`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tokenpulse.config import SLO, ConfirmThresholds
from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.recorder import StreamResult, failure_result
from tokenpulse.core.redact import clip, redact
from tokenpulse.core.schema_check import judge_response
from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.history import TargetHistory
from tokenpulse.prober.state import DOWN, TargetState, Transition
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
                 confirm: ConfirmThresholds, secrets: tuple[str, ...] = (), blind_after_intervals: int = 3,
                 on_transition: Callable[[TrackedTarget, float, Transition], None] | None = None,
                 on_recorded: Callable[[ProbeTarget, StreamResult, float | None], None] | None = None) -> None:
        self._driver = driver
        self._metrics = metrics
        self._slo = slo
        self._confirm = confirm
        self._secrets = secrets
        self._blind_after_intervals = blind_after_intervals
        self._on_transition = on_transition
        #: Called with each recorded probe and the cost counted for it (the /generation lookups).
        self._on_recorded = on_recorded
        self.tracked: dict[str, TrackedTarget] = {}
        self.tally = Tally()
        self.prober_errors = 0
        #: Saved histories (store.py) by target key, restored when the target is first tracked.
        self.preload: dict[str, dict[str, Any]] = {}

    def track(self, probe: ProbeTarget) -> TrackedTarget:
        """Register a target: its series exist at zero and its state is `unknown` before any probe."""
        tracked = self.tracked.get(probe.key)
        if tracked is None:
            state = TargetState(self._confirm, self._slo.ttft_s, interval_s=probe.interval_s,
                                blind_after_intervals=self._blind_after_intervals, since=time.time())
            tracked = TrackedTarget(probe, state, TargetHistory(self._secrets))
            saved = self.preload.pop(probe.key, None)
            if saved is not None:
                try:
                    tracked.history.restore(saved)
                except (TypeError, ValueError, KeyError) as exc:  # a row from an older or broken store
                    log.warning("saved history of %s not restored: %s", probe.key, type(exc).__name__)
            self.tracked[probe.key] = tracked
            labels = probe.labels
            m = self._metrics
            m.requests.touch(labels)
            m.consecutive_failures.labels(**labels).set(0)
            m.interval.labels(**labels).set(probe.interval_s)
            m.prober_errors.labels(**labels)
            m.set_state(labels, tracked.state.state)
        return tracked

    def forget(self, key: str) -> TrackedTarget | None:
        """Stop tracking a target (a retired provider); its series are removed by the caller."""
        return self.tracked.pop(key, None)

    async def probe(self, probe: ProbeTarget) -> StreamResult | None:
        """Send one probe, record it everywhere, return its result; None when the prober itself failed
        (counted in prober_errors_total, nothing booked). Never raises (but can be cancelled)."""
        tracked = self.track(probe)
        result = await self._measure(probe)
        if result is None:
            return None
        if self.tracked.get(probe.key) is not tracked:
            return result  # retired while it ran: its series are gone and must stay gone
        try:
            self._record(tracked, result)
        except Exception as exc:  # a recording bug must not kill the job; say so once per probe
            self._prober_error(probe, "recording", exc)
        return result

    async def _measure(self, probe: ProbeTarget) -> StreamResult | None:
        t0 = time.monotonic_ns()
        try:
            async with asyncio.timeout(probe.timeouts.total + DEADLINE_GRACE_S if probe.timeouts.total else None):
                return await self._driver.run(probe.request, probe.timeouts,
                                              keep_text=probe.target.profile.response_schema is not None)
        except TimeoutError:  # the request really ran past its total timeout (and the grace)
            return failure_result(t0, time.monotonic_ns(), ErrorClass.TIMEOUT_TOTAL,
                                  "probe exceeded its total timeout", secrets=self._secrets)
        except Exception as exc:  # the driver classifies transport errors; anything else is our bug
            self._prober_error(probe, "measuring", exc)
            return None

    def _prober_error(self, probe: ProbeTarget, doing: str, exc: BaseException) -> None:
        self.prober_errors += 1
        try:
            self._metrics.prober_errors.labels(**probe.labels).inc()
        finally:
            log.error("prober error while %s the probe of %s (not counted against the provider): %s",
                      doing, probe.key, self._safe(f"{type(exc).__name__}: {exc}"))

    def _judge(self, probe: ProbeTarget, result: StreamResult) -> None:
        """A structured profile's verdict on the answer (core/schema_check.py), counted by kind and verdict."""
        profile = probe.target.profile
        kind, judge = profile.structured_kind, profile.judge()
        if kind is None or judge is None:
            return
        judgement = judge_response(judge, kind, ok=result.ok, text=result.text, tool_calls=result.tool_calls,
                                   finish_reason=result.finish_reason, tool_required=profile.tool_choice == "required")
        if judgement is not None:
            self._metrics.structured.labels(**probe.labels, kind=kind, verdict=judgement.verdict.value).inc()

    def check_blind(self, now: float) -> None:
        """Re-judge `blind` by the clock for every target (probes that stopped finishing). Cheap: a few
        comparisons per target; run every few seconds by the service."""
        for tracked in self.tracked.values():
            transition = tracked.state.check(now)
            if transition.changed:
                self._publish(tracked, now, transition)

    def _record(self, tracked: TrackedTarget, result: StreamResult) -> None:
        probe = tracked.probe
        labels = probe.labels
        m = self._metrics
        cost = result.cost_usd
        if cost is None and not result.usage_invalid:  # invalid usage: the spend is unknown, not estimated
            cost = probe.cost_usd(result.prompt_tokens, result.output_tokens)
        m.requests.observe(labels, result, cost_usd=cost)
        self._judge(probe, result)
        now = time.time()
        m.last_probe.labels(**labels).set(now)
        if result.ok:
            m.last_success.labels(**labels).set(now)
            self.tally.ok += 1
        else:
            self.tally.failed[result.error_class.value if result.error_class else "unknown"] += 1
        transition = tracked.state.observe(result.ok, result.error_class, result.ttft_s,
                                           http_status=result.http_status, at=now)
        m.consecutive_failures.labels(**labels).set(tracked.state.consecutive_failures)
        tracked.history.record(now, result)
        if not result.ok:
            self._log_failure(probe, result, tracked.state.consecutive_failures)
        if transition.changed:
            self._publish(tracked, now, transition)
        if self._on_recorded is not None:
            self._on_recorded(probe, result, cost)

    def _publish(self, tracked: TrackedTarget, now: float, transition: Transition) -> None:
        self._metrics.set_state(tracked.probe.labels, transition.state, transition.reason)
        tracked.history.transition(now, transition.previous, transition.state, transition.reason)
        self._log_transition(tracked.probe, transition)
        if self._on_transition is not None:
            self._on_transition(tracked, now, transition)

    def _log_failure(self, probe: ProbeTarget, result: StreamResult, in_a_row: int) -> None:
        error_class = result.error_class.value if result.error_class else "unknown"
        log.warning("probe failed: endpoint=%s model=%s provider=%s profile=%s class=%s status=%s "
                    "failures_in_a_row=%d: %s", probe.endpoint, probe.model, probe.provider, probe.profile,
                    error_class, result.http_status if result.http_status is not None else "-", in_a_row,
                    self._safe(result.error_message or ""))

    def _log_transition(self, probe: ProbeTarget, transition: Transition) -> None:
        level = logging.WARNING if transition.state in (DOWN, "blind") else logging.INFO
        reason = f" ({transition.reason})" if transition.reason else ""
        log.log(level, "state changed: endpoint=%s model=%s provider=%s profile=%s %s -> %s%s", probe.endpoint,
                probe.model, probe.provider, probe.profile, transition.previous, transition.state, reason)

    def _safe(self, text: str) -> str:
        return clip(redact(text, self._secrets), 200)
