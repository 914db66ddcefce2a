"""APScheduler jobs for probes: one job per target, jitter on a fixed grid, a global in-flight cap.

Why these choices:

- One `AsyncIOScheduler` job per target with `max_instances=1`: a slow or hung target can never
  overlap itself, and its skipped runs are counted, while every other target keeps its own schedule.
- `GridIntervalTrigger`: APScheduler 3's `IntervalTrigger` adds each run's jitter to the previous,
  already jittered, fire time, so a 60 s interval with 5 s jitter drifts to 62.5 s on average. Here
  the n-th run fires at `start + n * interval + uniform(0, jitter)`: cadence holds, and targets still
  do not fire together.
- First runs are staggered evenly over each target's interval (the grid's origin is the first run,
  given to APScheduler as `next_run_time`), so a thousand targets do not start in one burst.
- A global in-flight cap (`InFlightCap`, admission.py) bounds the probes working at once; a probe
  that runs past `overdue_s` gives its slot back, so hung targets cannot starve healthy ones, and
  `max_instances=1` bounds what runs uncounted to one probe per target. Scheduler lag is measured
  when a probe actually starts (after the cap), against its scheduled (jittered) time, so queueing
  behind the cap shows up as lag instead of hiding.
- Housekeeping jobs (credits, discovery, the summary) run on the same scheduler; `stop()` cancels
  them first, so a request that hangs there never delays shutdown.
- Misfires: runs skipped because the previous run of the target was still going
  (`EVENT_JOB_MAX_INSTANCES`), runs started later than `misfire_grace_time` (`EVENT_JOB_MISSED`),
  and grid slots merged by `coalesce=True` (counted from the gap between consecutive scheduled
  times, since APScheduler reports no event for them).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.admission import InFlightCap
from tokenpulse.prober.runner import ProbeRunner
from tokenpulse.prober.targets import ProbeTarget

log = logging.getLogger(__name__)

#: Recent lag samples kept for the summary log and /api/status (the histogram keeps them all).
LAG_SAMPLES = 4096


class GridIntervalTrigger(IntervalTrigger):
    """An interval trigger whose jitter does not accumulate (see the module docstring)."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = self.start_date.timestamp()
        step = self.interval_length
        if previous_fire_time is not None:
            # previous = start + k*step + jitter with jitter < step/2, so this recovers k exactly.
            slot = math.floor((previous_fire_time.timestamp() - start) / step + 1e-3) + 1
        elif self.start_date > now:
            slot = 0
        else:
            slot = math.ceil((now.timestamp() - start) / step)
        fire = start + slot * step
        if self.jitter:
            fire += random.uniform(0, self.jitter)
        if self.end_date and fire > self.end_date.timestamp():
            return None
        return datetime.fromtimestamp(fire, tz=self.timezone)


class _LoopScheduler(AsyncIOScheduler):
    """AsyncIOScheduler whose own timer wakes it at most once per due time.

    Why: the event loop's timers have millisecond resolution and may fire up to a millisecond early
    (uvloop rounds the delay and measures it from the time cached at the start of a loop iteration).
    APScheduler then finds no job due, re-arms for the sub-millisecond remainder, and wakes again:
    measured five wake-ups per probe at 1,000 targets, each also bounced through
    `call_soon_threadsafe` (`wakeup` is meant for other threads). Here the timer waits a whole
    millisecond longer than asked, rounded up (probes start at most ~2 ms later, inside the jitter), and
    calls the scheduler directly on the loop. Everything else (`wakeup` from other threads, jobs,
    executors, events) is APScheduler's own.
    """

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None:
            delay = math.ceil(wait_seconds * 1000.0) / 1000.0 + 0.001
            self._timeout = self._eventloop.call_later(delay, self._wakeup_on_loop)

    def _wakeup_on_loop(self) -> None:
        """`wakeup` without the hop through `call_soon_threadsafe`: the timer runs on the loop."""
        self._stop_timer()
        self._start_timer(self._process_jobs())


class ProbeScheduler:
    """Owns the APScheduler instance, the in-flight cap and the prober's own health figures."""

    def __init__(self, runner: ProbeRunner, metrics: ProberMetrics, *, max_in_flight: int,
                 overdue_s: float) -> None:
        self._runner = runner
        self._metrics = metrics
        self._cap = InFlightCap(max_in_flight, overdue_s)
        self._scheduler = _LoopScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_event,
                                     EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._probes: dict[str, ProbeTarget] = {}
        self._scheduled: dict[str, float] = {}
        self._last_slot: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._housekeeping: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.first_done: set[str] = set()
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self.misfires = 0
        self.in_flight = 0

    # ------------------------------------------------------------------------------ setup
    def add_probes(self, probes: list[ProbeTarget]) -> None:
        """Schedule probes, their first runs spread evenly over their intervals from now.

        Every target is tracked (its series created: ~226 per target) before the clock is read: at
        1,000 targets that takes seconds on a busy machine, and first runs planned from a clock read
        before it would all be late by the time it took (benchmarks/prober_scale.py's lag p99)."""
        new: list[tuple[int, ProbeTarget]] = []
        for i, probe in enumerate(probes):
            if probe.key in self._probes:
                continue
            self._probes[probe.key] = probe
            self._runner.track(probe)
            new.append((i, probe))
        now = datetime.now(UTC)
        count = len(probes)
        for i, probe in new:
            first = now + timedelta(seconds=probe.interval_s * i / max(count, 1))
            trigger = GridIntervalTrigger(seconds=probe.interval_s, start_date=first,
                                          jitter=probe.jitter_s or None, timezone=UTC)
            self._scheduler.add_job(
                self._job, trigger, args=(probe.key,), id=probe.key, name=probe.key, max_instances=1,
                coalesce=True, misfire_grace_time=max(1, math.ceil(probe.interval_s)), next_run_time=first,
            )
        self._metrics.targets.set(len(self._probes))

    def remove_probe(self, key: str) -> bool:
        """Unschedule a target (a retired provider); a probe of it already running finishes. False if
        it was not scheduled."""
        if self._probes.pop(key, None) is None:
            return False
        try:
            self._scheduler.remove_job(key)
        except JobLookupError:
            pass
        self._scheduled.pop(key, None)
        self._last_slot.pop(key, None)
        self.first_done.discard(key)
        self._metrics.targets.set(len(self._probes))
        return True

    def add_periodic(self, func: Callable[[], Awaitable[Any]], interval_s: float, *, name: str,
                     first_delay_s: float = 0.0) -> None:
        """A housekeeping job (credits, discovery, summary): same scheduler, never overlapping. Its
        errors are logged (without detail that could hold a key) and never stop later runs."""

        async def job() -> None:
            task = asyncio.current_task()
            assert task is not None  # APScheduler's asyncio executor runs coroutine jobs as tasks
            self._housekeeping.add(task)
            try:
                await func()
            except asyncio.CancelledError:
                return  # shutdown
            except Exception as exc:
                log.error("%s failed: %s", name, type(exc).__name__)
            finally:
                self._housekeeping.discard(task)

        start = datetime.now(UTC) + timedelta(seconds=first_delay_s)
        self._scheduler.add_job(job, GridIntervalTrigger(seconds=interval_s, start_date=start, timezone=UTC),
                                id=f"_{name}", name=name, max_instances=1, coalesce=True,
                                misfire_grace_time=None, next_run_time=start)

    @property
    def probes(self) -> dict[str, ProbeTarget]:
        return self._probes

    @property
    def running(self) -> bool:
        return self._scheduler.running and not self._stopping

    @property
    def first_round_done(self) -> bool:
        return bool(self._probes) and len(self.first_done) >= len(self._probes)

    def start(self) -> None:
        self._scheduler.start()

    # --------------------------------------------------------------------------- running
    async def _job(self, key: str) -> None:
        """The APScheduler job. The probe runs in a task of our own, so stopping the scheduler (which
        cancels its job tasks) never cuts a probe short; shutdown waits for these tasks instead."""
        task = asyncio.create_task(self._run(key, self._scheduled.pop(key, None)), name=f"probe {key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            return  # only at shutdown; the probe task itself is awaited (or cancelled) by stop()

    async def _run(self, key: str, scheduled: float | None) -> None:
        probe = self._probes.get(key)
        if probe is None:  # retired while this run was being submitted
            return
        slot = await self._cap.acquire()
        try:
            if self._stopping:
                return
            started = time.time()
            if scheduled is not None:
                lag = max(0.0, started - scheduled)
                self._metrics.scheduler_lag.observe(lag)
                self.lags.append(lag)
            self.in_flight += 1
            self._metrics.in_flight.set(self.in_flight)
            try:
                await self._runner.probe(probe)
            finally:
                self.in_flight -= 1
                self._metrics.in_flight.set(self.in_flight)
        finally:
            self._cap.release(slot)
        if key in self._probes:
            self.first_done.add(key)

    def _on_event(self, event: JobEvent) -> None:
        probe = self._probes.get(event.job_id)
        if probe is None:
            return
        if isinstance(event, JobSubmissionEvent):
            run_time = event.scheduled_run_times[-1].timestamp()
            if event.code == EVENT_JOB_SUBMITTED:
                self._scheduled[probe.key] = run_time
            else:  # EVENT_JOB_MAX_INSTANCES: the previous run is still going
                self._misfire(probe, 1)
            self._account_slot(probe, run_time)
        elif isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
            self._misfire(probe, 1)

    def _account_slot(self, probe: ProbeTarget, run_time: float) -> None:
        """Count grid slots that coalescing merged away between two consecutive scheduled runs."""
        last = self._last_slot.get(probe.key)
        if last is not None and run_time > last:
            skipped = round((run_time - last) / probe.interval_s) - 1
            if skipped > 0:
                self._misfire(probe, skipped)
        if last is None or run_time > last:
            self._last_slot[probe.key] = run_time

    def _misfire(self, probe: ProbeTarget, count: int) -> None:
        self.misfires += count
        self._metrics.misfires.labels(**probe.labels).inc(count)

    # -------------------------------------------------------------------------- stopping
    async def stop(self, grace_s: float) -> int:
        """Stop scheduling, give in-flight probes up to `grace_s` to finish (each is bounded by its own
        timeouts too), cancel what is left. Returns how many probes had to be cancelled."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()
        housekeeping = set(self._housekeeping)
        for task in housekeeping:
            task.cancel()
        if housekeeping:
            await asyncio.wait(housekeeping, timeout=5.0)
        pending = set(self._tasks)
        cancelled = 0
        if pending:
            log.info("waiting up to %.0f s for %d in-flight probe(s)", grace_s, len(pending))
            _, still = await asyncio.wait(pending, timeout=grace_s)
            for task in still:
                task.cancel()
            cancelled = len(still)
            if still:
                await asyncio.wait(still, timeout=5.0)
        await asyncio.sleep(0)  # let the job wrappers return before the executor is shut down
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # the shutdown is scheduled on the loop
        return cancelled
