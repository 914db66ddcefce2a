"""The /generation lookups of one Locust process: a greenlet that asks OpenRouter what it measured.

Why a worker of its own: a lookup can only succeed a while after the stream ended (the endpoint answers
404 until the generation is written), so it must never sit on the request's path: a user hands the id
over (`submit`, no I/O, no wait) and sends its next request. The worker keeps a heap of lookups by when
they are due, runs at most `in_flight` at once, retries while the answer is retryable
(core/generation.py: 404, 429, 5xx, no answer) with a bounded backoff until the deadline, and writes one
line per generation to `generations-<process>.jsonl` as each answer arrives.

Bounded and counted: lookups above `max_rate_per_s` (this process's share) are `skipped`, a full queue
`drops` one, and lookups still waiting when the process ends are `abandoned`; the three counts go in the
file's last line and the report shows them. Billed failures: a failed request without `usage.cost`
whose generation says what it cost corrects the cost guard (`on_billed`), so `--max-cost` counts it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gevent
from gevent.event import Event
from gevent.pool import Pool

from tokenpulse.config import GenerationLookups
from tokenpulse.core.generation import (
    ABANDONED,
    DROPPED,
    FOUND,
    MAX_BODY_BYTES,
    SKIPPED,
    RetryPolicy,
    TokenBucket,
    generation_url,
    outcome_of,
    retryable,
)
from tokenpulse.core.recorder import StreamResult
from tokenpulse.load.context import LoadTarget
from tokenpulse.load.fetch import bounded_get
from tokenpulse.runfolder.records import JsonlAppender

log = logging.getLogger("tokenpulse.load")

#: One attempt's deadline (a lookup answer is a few KB; the total deadline is the policy's).
ATTEMPT_S = 10.0

Getter = Callable[[str, Mapping[str, str]], tuple[int | None, bytes]]


def _default_get(url: str, headers: Mapping[str, str]) -> tuple[int | None, bytes]:
    return bounded_get(url, headers, total_s=ATTEMPT_S, max_bytes=MAX_BODY_BYTES)


@dataclass(slots=True)
class Lookup:
    """One generation to look up. `counted_usd`: what the cost guard counted for a failed request
    without `usage.cost` (its late `total_cost` replaces it), else None."""

    generation_id: str
    url: str
    headers: Mapping[str, str]
    target_key: str
    target_provider: str
    ended: float  # time.monotonic() when the stream ended
    counted_usd: float | None = None
    attempts: int = 0


@dataclass
class GenerationLookupWorker:
    """Looks up the generations `submit`ted to it; `start` in the process's generator, `stop` at quit."""

    path: Path
    settings: GenerationLookups
    share: float = 1.0
    on_billed: Callable[[Lookup, float], None] | None = None
    get: Getter = _default_get
    policy: RetryPolicy = field(init=False)
    skipped: int = 0
    dropped: int = 0
    abandoned: int = 0
    found: int = 0
    written: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        self.policy = RetryPolicy(first_delay_s=s.first_delay_s, deadline_s=s.deadline_s)
        self._bucket = TokenBucket(s.max_rate_per_s * self.share)
        self._heap: list[tuple[float, int, Lookup]] = []
        self._seq = itertools.count()
        self._running = 0
        self._wake = Event()
        self._pool = Pool(s.in_flight)
        self._file: JsonlAppender | None = None
        self._loop: gevent.Greenlet | None = None
        self._stopping = False

    @property
    def pending(self) -> int:
        return len(self._heap) + self._running

    def start(self) -> None:
        self._file = JsonlAppender(self.path)
        self._loop = gevent.spawn(self._run)

    def submit(self, lookup: Lookup) -> str | None:
        """Queue a lookup (no I/O, never blocks); the status it was refused with, else None."""
        if self._stopping or self._file is None:
            self.abandoned += 1
            return ABANDONED
        now = time.monotonic()
        if not self._bucket.admit(now):
            self.skipped += 1
            return SKIPPED
        if self.pending >= self.settings.queue:
            self.dropped += 1
            return DROPPED
        delay = self.policy.next_delay(0, 0.0) or 0.0
        heapq.heappush(self._heap, (lookup.ended + delay, next(self._seq), lookup))
        self._wake.set()
        return None

    def _run(self) -> None:
        while not self._stopping:
            if not self._heap:
                self._wake.clear()
                self._wake.wait()
                continue
            due = self._heap[0][0]
            wait = due - time.monotonic()
            if wait > 0:
                self._wake.clear()
                self._wake.wait(timeout=wait)
                continue
            _, _, lookup = heapq.heappop(self._heap)
            self._running += 1
            self._pool.spawn(self._attempt, lookup)  # blocks while `in_flight` lookups run

    def _attempt(self, lookup: Lookup) -> None:
        try:
            status, body = self.get(lookup.url, lookup.headers)
            lookup.attempts += 1
            if retryable(status):
                delay = self.policy.next_delay(lookup.attempts, time.monotonic() - lookup.ended)
                if delay is not None and not self._stopping:
                    heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), lookup))
                    self._wake.set()
                    return
            result, stats = outcome_of(status, body)
            if status is not None and status != 404 and result != FOUND:
                log.debug("generation lookup %s: HTTP %s", lookup.generation_id, status)
            line: dict[str, object] = {"generation_id": lookup.generation_id, "status": result,
                                       "http_status": status, "attempts": lookup.attempts,
                                       "target_provider": lookup.target_provider,
                                       "after_s": round(time.monotonic() - lookup.ended, 3)}
            if stats is not None:
                self.found += 1
                line.update(stats.to_fields())
                if (lookup.counted_usd is not None and stats.total_cost_usd is not None
                        and self.on_billed is not None):
                    self.on_billed(lookup, stats.total_cost_usd)
            self._write(line)
        except Exception as exc:  # noqa: BLE001 - a lookup bug must not kill the worker; it is counted
            log.warning("generation lookup %s failed: %s", lookup.generation_id, type(exc).__name__)
            self._write({"generation_id": lookup.generation_id, "status": "failed", "http_status": None,
                         "attempts": lookup.attempts, "target_provider": lookup.target_provider})
        finally:
            self._running -= 1

    def _write(self, line: dict[str, object]) -> None:
        if self._file is not None:
            self._file.write(line)
            self.written += 1

    def stop(self, wait_s: float) -> None:
        """Let the lookups due within `wait_s` finish, then count the rest `abandoned` and close."""
        deadline = time.monotonic() + wait_s
        while self.pending and time.monotonic() < deadline:
            gevent.sleep(0.05)
        self._stopping = True
        self._wake.set()
        self.abandoned += len(self._heap) + self._running
        self._heap.clear()
        self._pool.kill(block=True, timeout=1.0)
        if self._loop is not None:
            self._loop.kill(block=True, timeout=1.0)
        if self._file is not None:
            self._file.write({"summary": True, "skipped": self.skipped, "dropped": self.dropped,
                              "abandoned": self.abandoned, "found": self.found})
            self._file.close()
            self._file = None


def submit_lookup(worker: GenerationLookupWorker, target: LoadTarget, result: StreamResult, cost: float | None,
                  reserved_usd: float) -> None:
    """Hand a finished request to the worker when it has a generation id on a `kind: openrouter` endpoint.
    A failed request without `usage.cost` is billed late: what the guard counted for it (its estimate,
    else its reservation) is what the generation's `total_cost` will replace."""
    endpoint = target.target.endpoint
    if endpoint.kind != "openrouter" or result.generation_id is None:
        return
    url = generation_url(endpoint.base_url, result.generation_id)
    if url is None:
        return
    counted = None
    if not result.ok and result.cost_usd is None:
        counted = cost if cost is not None else reserved_usd
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    worker.submit(Lookup(result.generation_id, url, headers, target.key, target.target.provider, time.monotonic(),
                         counted))
