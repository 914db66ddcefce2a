"""Serving one chat completion: key check, parsing, routing with fallbacks, then running the plan.

Why the split between `serve_chat` (decisions) and `Generation` (execution): everything that decides
the outcome (provider, fault, tokens, timings) happens synchronously before the first byte, from seeded
random streams; the execution only sleeps to absolute deadlines and writes. Absolute deadlines
(`deadline += gap`) keep pacing from drifting when the loop is busy: a late chunk makes the next one
leave sooner instead of shifting every later chunk.

Time bases: `loop.time()` for scheduling, `time.monotonic_ns()` for the ground-truth stamps (both are
CLOCK_MONOTONIC, the clock the client stamps receipts with).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tokenpulse.mock.behaviour import Plan, batch_factor, derive_rng, plan_generation, sample_fault
from tokenpulse.mock.farm import PRE_STREAM_FAULTS, ModelSpec, ProviderSpec
from tokenpulse.mock.http import Request, Responder
from tokenpulse.mock.pacer import Pacer
from tokenpulse.mock.pump import TokenPump
from tokenpulse.mock.request import BadRequest, ChatRequest, parse_chat_request
from tokenpulse.mock.routing import (
    misroute,
    openrouter_limited,
    openrouter_rate_limit_headers,
    provider_error_details,
    route,
    split_variant,
)
from tokenpulse.mock.state import FarmState
from tokenpulse.mock.tools import check_reasoning_history, merged_details
from tokenpulse.mock.wire import COMMENT, DONE, StreamEncoder, completion_body, cost_usd, error_body, usage_obj

TRUTH_HEADER = "x-tokenpulse-truth"
_TIMER_SLACK_S = 0.002  # uvloop timers are ms-granular; a comment due within 2 ms counts as due

_PRE_STREAM_ERRORS: dict[str, tuple[int, str]] = {
    "rate_limit": (429, "Rate limit exceeded: the provider is temporarily rate-limited upstream. "
                        "Retry shortly."),
    "http_500": (500, "Internal Server Error from the upstream provider"),
    "http_502": (502, "Provider returned error"),
    "http_503": (503, "Provider is overloaded: service unavailable"),
}


def send_error(resp: Responder, status: int, message: str, metadata: dict[str, Any] | None = None,
               headers: list[tuple[str, str]] | None = None, availability: dict[str, Any] | None = None) -> None:
    resp.send(status, error_body(status, message, metadata, availability), headers)


def key_is_invalid(req: Request) -> bool:
    """No key is fine (the embedded mock needs none); a bearer key starting with sk-invalid is refused.
    The key itself is never logged nor echoed."""
    _, _, token = req.headers.get("authorization", "").partition(" ")
    return token.strip().startswith("sk-invalid")


async def serve_chat(state: FarmState, pacer: Pacer, req: Request, resp: Responder, *,
                     openrouter: bool) -> None:
    """POST .../chat/completions. `openrouter` is True on /api/v1 (usage chunk always sent, unknown
    model is 400) and False on /v1 (OpenAI semantics: usage only with include_usage, unknown model 404)."""
    if key_is_invalid(req):
        send_error(resp, 401, "Invalid API key")
        return
    limit = state.farm.credit_limit_usd
    if limit is not None and state.spent_usd >= limit:
        send_error(resp, 402, "Insufficient credits: the mock key's limit is used up")
        return
    try:
        chat = parse_chat_request(req.body)
    except BadRequest as exc:
        send_error(resp, 400, str(exc))
        return
    model_id, variant_sort = split_variant(chat.model) if openrouter else (chat.model, None)
    model = state.farm.models.get(model_id)
    if model is None:
        status = 400 if openrouter else 404
        send_error(resp, status, f"{chat.model} is not a valid model ID", {"model": chat.model})
        return

    n = state.next_request_no()
    seed = state.farm.seed
    if openrouter and openrouter_limited(state.farm.openrouter_rate_limit, derive_rng(seed, "or-limit", n)):
        send_error(resp, 429, "Rate limit exceeded: too many requests for this key. Retry after the "
                              "window resets.", {}, openrouter_rate_limit_headers())
        return
    chain = route(model, chat.provider, derive_rng(seed, "route", n), sort=variant_sort, params=chat.params)
    if not chain:
        send_error(resp, 404, f"No endpoints found matching your data policy and provider preferences "
                              f"for {model.id}.",
                   {"model": model.id, "available_providers": list(model.providers)},
                   availability={"code": "no_endpoints", "retryable": False})
        return
    chain = misroute(model, chat.provider, chain, derive_rng(seed, "misroute", n))

    now = asyncio.get_running_loop().time()
    last_error: tuple[int, str, ProviderSpec] | None = None
    tried: list[tuple[str, int]] = []  # (provider name, status) of the attempts that failed: /generation
    for provider in chain:
        state.counters[provider.slug].requests += 1
        outage = state.outage_status(provider, now)
        if outage is not None:
            state.record_error(provider.slug, "outage")
            last_error = (outage, f"{provider.name} is currently unavailable (outage)", provider)
            tried.append((provider.name, outage))
            continue
        fault = sample_fault(provider.profile.errors, derive_rng(seed, "fault", n, provider.slug))
        if fault in PRE_STREAM_FAULTS:
            state.record_error(provider.slug, fault)
            status, message = _PRE_STREAM_ERRORS[fault]
            last_error = (status, message, provider)
            tried.append((provider.name, status))
            continue
        if fault is not None:
            state.record_error(provider.slug, fault)
        if model.reasoning and chat.messages:
            problem = check_reasoning_history(chat.messages, seed, provider.profile.reasoning.details_check)
            if problem is not None:  # a client error: no other provider would take the turn either
                send_error(resp, 400, problem, {"provider_name": provider.name})
                return
        cached = state.prefix_caches.cached_tokens(model.id, provider.slug, provider.profile.cache,
                                                   chat.prompt_parts, derive_rng(seed, "cache", n, provider.slug))
        plan = plan_generation(model, provider, chat, farm_seed=seed, request_no=n, fault=fault,
                               cached_tokens=cached)
        gen = Generation(state, pacer, model, provider, chat, plan, req, resp, f"gen-{n}", openrouter)
        gen.tried = tried
        state.in_flight_requests += 1
        try:
            await (gen.stream() if chat.stream else gen.complete())
        finally:
            state.in_flight_requests -= 1
        return

    assert last_error is not None  # the chain was not empty and every provider failed
    status, message, provider = last_error
    headers = [("Retry-After", str(provider.profile.errors.retry_after_s))] if status == 429 else None
    metadata, availability = provider_error_details(status, provider)
    send_error(resp, status, message, metadata, headers, availability)


class Generation:
    """Executes a Plan over a Responder, streamed (SSE) or as one JSON body."""

    def __init__(self, state: FarmState, pacer: Pacer, model: ModelSpec, provider: ProviderSpec,
                 chat: ChatRequest, plan: Plan, req: Request, resp: Responder, gen_id: str,
                 openrouter: bool) -> None:
        self.state = state
        self.pacer = pacer
        self.model = model
        self.provider = provider
        self.chat = chat
        self.plan = plan
        self.resp = resp
        self.gen_id = gen_id
        self.openrouter = openrouter
        self.truth_recv_ns = req.recv_ns if req.headers.get(TRUTH_HEADER, "").strip() == "1" else None
        self.pool = state.pool(model, provider)
        self.keepalive_s = provider.profile.keepalive_ms / 1000.0
        self.created = int(time.time())
        self._loop = asyncio.get_running_loop()
        self._next_keepalive = self._loop.time() + self.keepalive_s
        # What /generation reports (mock/generations.py): measured here, on the client's clock.
        self.recv_ns = req.recv_ns
        self.authorization = req.headers.get("authorization", "")
        self.tried: list[tuple[str, int]] = []
        self.first_token_ns: int | None = None
        self.tokens_out = 0
        self.ended: str | None = None  # finish reason once the stream ended by itself ("error" mid-stream)

    # -- shared pieces ------------------------------------------------------------------------------
    def _usage(self) -> dict[str, Any]:
        p = self.plan
        cost = cost_usd(self.model.price_of(self.provider), self.chat.prompt_tokens, p.completion_tokens)
        return usage_obj(self.chat.prompt_tokens, p.completion_tokens, p.reasoning_tokens, cost, p.cached_tokens)

    def _record_served(self, usage: dict[str, Any]) -> None:
        self.state.record_served(self.provider.slug, usage["prompt_tokens"], usage["completion_tokens"],
                                 usage["cost"])

    async def _hang(self) -> None:
        """Send nothing until the client gives up (its disconnect cancels us) or hang_max_s passes."""
        await asyncio.sleep(self.provider.profile.errors.hang_max_s)
        self.resp.abort()

    async def _emit(self, data: bytes) -> None:
        self.resp.write(data)
        if self.resp.paused:
            await self.resp.drain()

    async def _keepalive_due(self, now: float) -> bool:
        """Send `: OPENROUTER PROCESSING` when one is due; True if one was sent."""
        if self.keepalive_s > 0 and now >= self._next_keepalive - _TIMER_SLACK_S:
            await self._emit(COMMENT)
            self._next_keepalive = now + self.keepalive_s
            return True
        return False

    async def _acquire(self, keepalive: bool) -> None:
        """Take a decode slot, queueing FIFO behind earlier requests when the provider is full."""
        if self.pool.try_acquire():
            return
        fut = self.pool.enqueue()
        try:
            while not fut.done():
                timeout = (max(0.0, self._next_keepalive - self._loop.time())
                           if keepalive and self.keepalive_s > 0 else None)
                await asyncio.wait((fut,), timeout=timeout)
                if keepalive and not fut.done():
                    await self._keepalive_due(self._loop.time())
        except BaseException:
            self.pool.abandon(fut)
            raise

    async def _sleep_until(self, deadline: float, keepalive: bool) -> None:
        """Sleep to an absolute loop-time deadline, sending keep-alive comments on the way if asked.

        One timer per deadline, no re-check afterwards: uvloop's timers have millisecond resolution
        and can fire just before loop.time() reaches the deadline, so re-checking would spin.
        """
        while True:
            now = self._loop.time()
            if now >= deadline:
                return
            if keepalive and self.keepalive_s > 0:
                if await self._keepalive_due(now):
                    continue
                if self._next_keepalive < deadline:
                    await asyncio.sleep(self._next_keepalive - now)
                    continue
            await asyncio.sleep(deadline - now)
            return

    # -- streaming ----------------------------------------------------------------------------------
    async def stream(self) -> None:
        plan = self.plan
        if plan.fault == "hang_first_byte":
            await self._hang()
            return
        self.resp.start_stream(200, [("X-Generation-Id", self.gen_id), ("Cache-Control", "no-cache")])
        enc = StreamEncoder(self.gen_id, self.created, self.model.id, self.provider.name, self.truth_recv_ns)
        try:
            await self._acquire(keepalive=True)
            try:
                await self._emit(enc.role())  # prefill starts: real servers send the role chunk now
                await self._stream_tokens(enc)
            finally:
                self.pool.release()
        finally:
            self._remember()

    def _remember(self) -> None:
        """Put the generation in the ledger: served, failed mid-stream (billed for what it sent) or cut
        off by the client (`cancelled`). Its cost is billed like OpenRouter bills: the tokens generated."""
        p = self.plan
        served = self.ended is not None and self.ended != "error"
        completion = p.completion_tokens if served else self.tokens_out
        reasoning = min(p.reasoning_tokens, completion)
        cost = cost_usd(self.model.price_of(self.provider), self.chat.prompt_tokens, completion)
        if self.ended == "error" and cost > 0:
            self.state.spent_usd += cost  # a failed stream is billed too (served ones are in _record_served)
        end_ns = time.monotonic_ns()
        self.state.generations.finish(
            self.gen_id, ended_at=self._loop.time(), authorization=self.authorization, model=self.model.id,
            provider_name=self.provider.name,
            latency_ms=None if self.first_token_ns is None else (self.first_token_ns - self.recv_ns) / 1e6,
            generation_time_ms=(end_ns - self.recv_ns) / 1e6, prompt_tokens=self.chat.prompt_tokens,
            completion_tokens=completion, reasoning_tokens=reasoning, cost_usd=cost,
            finish_reason=self.ended, cancelled=self.ended is None, streamed=True,
            attempts=[*self.tried, (self.provider.name, 200)])

    async def _stream_tokens(self, enc: StreamEncoder) -> None:
        """Wait (with keep-alives) for the first visible token, let a TokenPump send the rest at their
        deadlines, then finish, usage and [DONE]."""
        plan, pool = self.plan, self.pool
        slowdown = self.provider.profile.decode.batch_slowdown
        # the first visible chunk is due after TTFT plus the time of any excluded (silent) reasoning
        deadline = self._loop.time() + plan.ttft_s
        start = 0
        for chunk in plan.chunks:
            deadline += chunk.gap_s * batch_factor(pool.active, pool.capacity, slowdown)
            if chunk.visible:
                break
            start += 1
        await self._sleep_until(deadline, keepalive=True)
        self.first_token_ns = time.monotonic_ns()
        pump = TokenPump(plan, start, deadline, enc, self.resp, pool, self.pacer, slowdown)
        try:
            fault = await pump.run()
        finally:  # also when the client went away: what it was sent until then is what it could count
            self.tokens_out = sum(c.tokens for c in plan.chunks[:pump.position])
            self.state.record_tokens_sent(self.provider.slug, self.tokens_out)
        if fault is not None and await self._strike(enc, fault):
            return
        self.ended = plan.finish_reason
        await self._emit(enc.finish(plan.finish_reason))
        usage = self._usage()
        if self.openrouter or self.chat.include_usage:
            await self._emit(enc.usage(usage))
        await self._emit(DONE)
        self.resp.end_stream()
        self._record_served(usage)

    async def _strike(self, enc: StreamEncoder, fault: str) -> bool:
        """Inject an in-stream fault that the TokenPump handed back; True when the stream is over."""
        if fault == "mid_stream":
            self.ended = "error"
            await self._emit(enc.error(502, "Upstream provider error: the stream was interrupted",
                                       self.provider.name))
            self.resp.end_stream()
            return True
        if fault == "reset":
            self.ended = "error"
            self.resp.abort()
            return True
        if fault == "hang_mid_stream":
            await self._hang()
            return True
        if fault == "malformed_chunk":
            await self._emit(enc.malformed("lorem"))
            return False
        raise AssertionError(f"not an in-stream fault: {fault}")

    # -- non-streaming ------------------------------------------------------------------------------
    async def complete(self) -> None:
        """The whole answer as one JSON body, after the time the stream would have taken."""
        plan = self.plan
        if plan.fault == "hang_first_byte":
            await self._hang()
            return
        await self._acquire(keepalive=False)
        try:
            factor = batch_factor(self.pool.active, self.pool.capacity,
                                  self.provider.profile.decode.batch_slowdown)
            deadline = self._loop.time() + plan.ttft_s
            fault_deadline = None
            visible = 0
            for chunk in plan.chunks:
                deadline += chunk.gap_s * factor
                if chunk.visible:
                    visible += 1
                    if visible == plan.fault_at:
                        fault_deadline = deadline
            fault = plan.fault if plan.fault != "malformed_chunk" else None
            await self._sleep_until(fault_deadline if fault and fault_deadline else deadline,
                                    keepalive=False)
            if fault == "mid_stream":
                send_error(self.resp, 502, "Upstream provider error: generation was interrupted",
                           {"provider_name": self.provider.name})
            elif fault == "reset":
                self.resp.abort()
            elif fault == "hang_mid_stream":
                await self._hang()  # a stuck generation keeps its slot, as in the streamed case
            else:
                self._send_completion()
        finally:
            self.pool.release()

    def _send_completion(self) -> None:
        plan = self.plan
        usage = self._usage()
        truth = None if self.truth_recv_ns is None else (self.truth_recv_ns, time.monotonic_ns())
        reasoning = plan.reasoning_text if plan.reasoning_visible and plan.reasoning_tokens else None
        details = None
        if reasoning:
            texts = [c.text for c in plan.chunks[:len(plan.reasoning_marks)]]
            details = merged_details(self.state.farm.seed, texts)
        body = completion_body(gen_id=self.gen_id, created=self.created, model=self.model.id,
                               provider_name=self.provider.name, content=plan.content_text,
                               reasoning=reasoning, finish_reason=plan.finish_reason, usage=usage,
                               tool_calls=plan.tool_calls, reasoning_details=details, truth=truth)
        if plan.fault == "malformed_chunk":
            body = body[: len(body) // 2]  # a truncated JSON body, as a broken proxy would send
        self.resp.send(200, body, [("X-Generation-Id", self.gen_id)])
        self.state.record_tokens_sent(self.provider.slug, plan.completion_tokens)
        self._record_served(usage)

