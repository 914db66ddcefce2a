"""After each probe of an OpenRouter endpoint: what OpenRouter measured for it (`GET /generation?id=`).

Why after, in a task of its own: the generation is readable only a while after the stream ends (404
until then), so the lookup must never hold the probe's job or its slot. Each finished probe with a
generation id starts one task (`after_probe`, called by the runner once the probe is recorded); the
task waits, asks, and retries while the answer is retryable (core/generation.py), until the deadline.
Bounded: at most `probe.generations.in_flight` requests at once, `queue` tasks pending (beyond that a
lookup is `dropped`, counted in `tokenpulse_openrouter_generation_lookups_total`), and at most
`max_rate_per_s` lookups started per second (the rest are not looked up, uncounted there: at probe
rates that never binds unless set low on purpose).

What it records (metrics.py): OpenRouter's latency and generation time per target (histograms), the
native-vs-normalized token ratio, the lookup's result; and the cost of a failed probe that OpenRouter
billed (no `usage.cost` in the stream, `total_cost` in the generation) adds to `tokenpulse_cost_usd_total`.
The key goes only to the endpoint's own host (the URL is built from its `base_url`; httpx is told not to
follow redirects).
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from tokenpulse.config import GenerationLookups
from tokenpulse.core.generation import (
    DROPPED,
    FOUND,
    MAX_BODY_BYTES,
    GenerationStats,
    RetryPolicy,
    TokenBucket,
    generation_url,
    outcome_of,
    retryable,
)
from tokenpulse.core.recorder import StreamResult
from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.discovery import auth_headers
from tokenpulse.prober.fetch import FetchError, fetch
from tokenpulse.prober.targets import ProbeTarget

log = logging.getLogger(__name__)

ATTEMPT_S = 10.0


class GenerationWatcher:
    """Looks up the generations of finished probes; `close()` cancels what is still pending."""

    def __init__(self, client: httpx.AsyncClient, metrics: ProberMetrics, settings: GenerationLookups,
                 api_keys: dict[str, str | None], *, policy: RetryPolicy | None = None) -> None:
        self._client = client
        self._metrics = metrics
        self._settings = settings
        self._keys = api_keys  # endpoint name -> key (None: no key)
        self._policy = policy or RetryPolicy(first_delay_s=settings.first_delay_s, deadline_s=settings.deadline_s)
        self._bucket = TokenBucket(settings.max_rate_per_s)
        self._slots = asyncio.Semaphore(settings.in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def after_probe(self, probe: ProbeTarget, result: StreamResult, counted_cost: float | None) -> None:
        """Start the lookup of a recorded probe (no I/O here; never raises). `counted_cost`: what the
        runner added to the cost counter for it."""
        endpoint = probe.target.endpoint
        if endpoint.kind != "openrouter" or result.generation_id is None or self._settings.max_rate_per_s <= 0:
            return
        url = generation_url(endpoint.base_url, result.generation_id)
        if url is None or not self._bucket.admit(time.monotonic()):
            return
        if len(self._tasks) >= self._settings.queue:
            self._metrics.or_generation_lookups.labels(**probe.labels, status=DROPPED).inc()
            return
        billed_late = not result.ok and result.cost_usd is None
        task = asyncio.get_running_loop().create_task(
            self._lookup(probe, url, time.monotonic(), counted_cost if billed_late else None, billed_late))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, probe: ProbeTarget, url: str, ended: float, counted: float | None,
                      billed_late: bool) -> None:
        headers = auth_headers(probe.target.endpoint, self._keys.get(probe.target.endpoint.name))
        attempt = 0
        status: int | None = None
        body = b""
        try:
            while True:
                delay = self._policy.next_delay(attempt, time.monotonic() - ended)
                if delay is None:
                    break  # the deadline: the last answer stands (404: not_found)
                await asyncio.sleep(delay)
                status, body = None, b""
                async with self._slots:
                    try:
                        got = await fetch(self._client, url, headers, total_s=ATTEMPT_S, max_bytes=MAX_BODY_BYTES)
                        status, body = got.status, got.body
                    except FetchError:
                        pass
                attempt += 1
                if not retryable(status):
                    break
            result, stats = outcome_of(status, body)
            self._metrics.or_generation_lookups.labels(**probe.labels, status=result).inc()
            if result == FOUND and stats is not None:
                self._observe(probe, stats, counted if billed_late else None, billed_late)
        except Exception as exc:  # noqa: BLE001 - a lookup bug must not surface in the event loop's log forever
            log.warning("generation lookup after a probe of %s failed: %s", probe.key, type(exc).__name__)

    def _observe(self, probe: ProbeTarget, stats: GenerationStats, counted: float | None, billed_late: bool) -> None:
        m, labels = self._metrics, probe.labels
        if stats.latency_s is not None:
            m.or_generation_latency.labels(**labels).observe(stats.latency_s)
        if stats.generation_time_s is not None:
            m.or_generation_time.labels(**labels).observe(stats.generation_time_s)
        ratio = stats.native_token_ratio
        if ratio is not None:
            m.or_native_token_ratio.labels(**labels).observe(ratio)
        if billed_late and stats.total_cost_usd:
            extra = stats.total_cost_usd - (counted or 0.0)
            if extra > 0:  # a counter only goes up: an estimate above the bill stays as counted
                m.requests.cost.labels(**labels).inc(extra)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
