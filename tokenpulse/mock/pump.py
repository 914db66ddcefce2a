"""The hot path: sending a stream's token chunks at their deadlines, as Pacer callbacks.

Why callbacks rather than a coroutine loop: this runs once per chunk of every stream (50,000 times
a second at 1,000 streams), and a plain method call per chunk costs a fraction of a task wake-up
(see pacer.py). The request's coroutine awaits `run()`, so a client disconnect still cancels the
stream: cancelling the task cancels the `done` future, and the next step sees it and stops.

Deadlines are absolute (`deadline += gap`), so a chunk sent late does not delay the ones after it.
"""

from __future__ import annotations

import asyncio

from tokenpulse.mock.behaviour import Chunk, Plan, batch_factor
from tokenpulse.mock.http import Responder
from tokenpulse.mock.pacer import Pacer
from tokenpulse.mock.state import SlotPool
from tokenpulse.mock.wire import StreamEncoder


class TokenPump:
    """Sends plan.chunks[start:] (all visible) starting now, then resolves `run()` with None, or
    with the in-stream fault kind that must end the stream (the caller carries it out). A malformed
    chunk is injected here, since the stream goes on after it."""

    __slots__ = (
        "_chunks",
        "_deadline",
        "_enc",
        "_fault",
        "_i",
        "_pacer",
        "_plan",
        "_pool",
        "_resp",
        "_sent",
        "_slowdown",
        "_tool_started",
        "done",
    )

    def __init__(self, plan: Plan, start: int, deadline: float, enc: StreamEncoder, resp: Responder,
                 pool: SlotPool, pacer: Pacer, batch_slowdown: float) -> None:
        self._plan = plan
        self._chunks: tuple[Chunk, ...] = plan.chunks
        self._enc = enc
        self._resp = resp
        self._pool = pool
        self._pacer = pacer
        self._slowdown = batch_slowdown
        self._i = start
        self._sent = 0
        self._fault = plan.fault
        self._deadline = deadline
        self._tool_started: set[int] = set()
        self.done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    @property
    def position(self) -> int:
        """How many of the plan's chunks have been sent (silent reasoning before the start included)."""
        return self._i

    async def run(self) -> str | None:
        self.step()
        return await self.done

    def step(self) -> None:
        done = self.done
        if done.done():  # cancelled: the client went away
            return
        try:
            self._step()
        except BaseException as exc:  # surface it in the request's task, not in the pacer
            if not done.done():
                done.set_exception(exc)

    def _fault_due(self) -> bool:
        return self._fault is not None and self._sent == self._plan.fault_at

    def _step(self) -> None:
        chunks, resp, enc = self._chunks, self._resp, self._enc
        if self._i >= len(chunks):  # nothing visible to send (e.g. all reasoning excluded, no content)
            self.done.set_result(self._fault if self._fault_due() else None)
            return
        chunk = chunks[self._i]
        if self._fault_due():
            if self._fault != "malformed_chunk":
                self.done.set_result(self._fault)
                return
            resp.write(enc.malformed(chunk.text))
            self._fault = None
        kind = chunk.kind
        if kind == "content":
            data = enc.content(chunk.text)
        elif kind == "reasoning":
            marks = self._plan.reasoning_marks
            index, signature = marks[self._i] if self._i < len(marks) else (0, None)
            data = enc.reasoning(chunk.text, index=index, signature=signature)
        else:  # a tool call's piece; the first one of each call names the call and the function
            plan = self._plan
            position = self._i - len(plan.reasoning_marks)
            call = plan.chunk_call[position] if 0 <= position < len(plan.chunk_call) else 0
            if call not in self._tool_started and call < len(plan.tool_calls):
                call_id, name, _ = plan.tool_calls[call]
                data = enc.tool_call(chunk.text, index=call, call_id=call_id, name=name)
                self._tool_started.add(call)
            else:
                data = enc.tool_call(chunk.text, index=call)
        resp.write(data)
        self._sent += 1
        self._i += 1
        if self._i == len(chunks):
            self.done.set_result(self._fault if self._fault_due() else None)
            return
        gap = chunks[self._i].gap_s
        if self._slowdown:
            pool = self._pool
            gap *= batch_factor(pool.active, pool.capacity, self._slowdown)
        self._deadline += gap
        if resp.paused:  # the client reads slower than we send: wait for the buffer to drain
            asyncio.ensure_future(resp.drain()).add_done_callback(lambda _: self._schedule())
        else:
            self._pacer.call_at(self._deadline, self.step)

    def _schedule(self) -> None:
        self._pacer.call_at(self._deadline, self.step)
