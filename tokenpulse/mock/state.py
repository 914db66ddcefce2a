"""The farm's mutable runtime state: capacity slots, runtime outages, counters and spend.

Why in one place: the control API, the stats endpoint and every request read and change the same
state, on one event loop thread, so no locks are needed but everything must be reachable from one
object. Capacity is per (model, provider) endpoint, as a real provider runs one pool per model;
counters and outages are per provider slug, the unit a monitor reports on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from tokenpulse.mock.cache import PrefixCaches
from tokenpulse.mock.farm import FAULT_KINDS, MockFarm, ModelSpec, ProviderSpec
from tokenpulse.mock.generations import GenerationLedger


class SlotPool:
    """A FIFO counting semaphore with a visible queue: the provider's concurrent decode slots.

    Requests beyond `capacity` wait in arrival order and a released slot is handed straight to the
    oldest waiter, so queue time is fair and shows up as TTFT, the way a saturated server behaves.
    """

    __slots__ = ("_waiters", "active", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        if self.active < self.capacity and not self._waiters:
            self.active += 1
            return True
        return False

    def enqueue(self) -> asyncio.Future[None]:
        """Join the queue; the future resolves when a slot has been handed over."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def abandon(self, fut: asyncio.Future[None]) -> None:
        """The waiter gave up (client gone): leave the queue, or give back a slot already granted."""
        if fut.done() and not fut.cancelled():
            self.release()
            return
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)
        fut.cancel()

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; `active` is unchanged
                return
        self.active -= 1


@dataclass(slots=True)
class ProviderCounters:
    """Monotonic counters of one provider (all models)."""

    requests: int = 0  # attempts routed to it (a fallback chain counts each provider tried)
    served: int = 0  # streams/responses that finished normally
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Completion tokens put on the wire (or generated silently), finished or not: the server-side
    #: count a load test's records must add up to (like llama.cpp's `tokens_predicted_total`).
    tokens_sent: int = 0
    cost_usd: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)


class FarmState:
    """Runtime state of one mock server; lives on (and is touched only from) its event loop."""

    def __init__(self, farm: MockFarm, started: float) -> None:
        self.farm = farm
        self.started = started  # loop.time() at start: scheduled outages are relative to it
        self._request_no = itertools.count(1)
        self.pools: dict[tuple[str, str], SlotPool] = {
            (m.id, slug): SlotPool(p.profile.capacity)
            for m in farm.models.values() for slug, p in m.providers.items()
        }
        self.counters: dict[str, ProviderCounters] = {s: ProviderCounters() for s in farm.provider_slugs()}
        self.runtime_outages: dict[str, int] = {}  # slug -> HTTP status
        self.delisted: set[str] = set()  # slugs left out of the endpoints listing (still serving)
        self.spent_usd = 0.0
        self.in_flight_requests = 0
        self.generations = GenerationLedger(farm.seed, farm.generation_ready_s)  # GET /generation
        self.prefix_caches = PrefixCaches()  # per (model, provider), for profiles with a cache

    def next_request_no(self) -> int:
        return next(self._request_no)

    def pool(self, model: ModelSpec, provider: ProviderSpec) -> SlotPool:
        return self.pools[(model.id, provider.slug)]

    def outage_status(self, provider: ProviderSpec, now: float) -> int | None:
        """The HTTP status of an outage in force for this provider, or None."""
        status = self.runtime_outages.get(provider.slug)
        if status is not None:
            return status
        t = now - self.started
        for window in provider.profile.outages:
            if window.active(t):
                return window.status
        return None

    def set_outage(self, slug: str, active: bool, status: int = 502) -> None:
        """Start (or end) a runtime outage of a provider on all its models. KeyError if unknown."""
        if slug not in self.counters:
            raise KeyError(slug)
        if active:
            self.runtime_outages[slug] = status
        else:
            self.runtime_outages.pop(slug, None)

    def set_listed(self, slug: str, listed: bool) -> None:
        """Show (or hide) a provider in the models' endpoints listings; it keeps serving requests, as a
        provider OpenRouter stops listing may still answer for a while. KeyError if unknown."""
        if slug not in self.counters:
            raise KeyError(slug)
        if listed:
            self.delisted.discard(slug)
        else:
            self.delisted.add(slug)

    def record_error(self, slug: str, kind: str) -> None:
        self.counters[slug].errors[kind] += 1

    def record_served(self, slug: str, prompt: int, completion: int, cost: float) -> None:
        c = self.counters[slug]
        c.served += 1
        c.prompt_tokens += prompt
        c.completion_tokens += completion
        c.cost_usd += cost
        self.spent_usd += cost

    def record_tokens_sent(self, slug: str, tokens: int) -> None:
        self.counters[slug].tokens_sent += tokens

    def snapshot(self, now: float) -> dict[str, Any]:
        """The /_mock/stats document."""
        providers: dict[str, Any] = {}
        specs = [p for m in self.farm.models.values() for p in m.providers.values()]
        for slug, c in self.counters.items():
            outage = next((st for p in specs if p.slug == slug
                           if (st := self.outage_status(p, now)) is not None), None)
            pools = [(mid, p) for (mid, s), p in self.pools.items() if s == slug]
            providers[slug] = {
                "requests": c.requests,
                "served": c.served,
                "in_flight": sum(p.active for _, p in pools),
                "queued": sum(p.queued for _, p in pools),
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "tokens_sent": c.tokens_sent,
                "cost_usd": round(c.cost_usd, 9),
                "errors": {k: c.errors.get(k, 0) for k in (*FAULT_KINDS, "outage")},
                "outage": outage,  # HTTP status of an outage in force (runtime or scheduled), or None
                "models": {mid: {"capacity": p.capacity, "in_flight": p.active, "queued": p.queued}
                           for mid, p in pools},
            }
        return {
            "uptime_s": round(now - self.started, 3),
            "requests_in_flight": self.in_flight_requests,
            "spent_usd": round(self.spent_usd, 9),
            "providers": providers,
        }
