"""Capacity: requests beyond a provider's slots queue FIFO, and the queue time shows up as TTFT."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from mock_helpers import PLAIN, chat_body, make_farm, parse_sse, profile

from tokenpulse.mock import MockServerThread
from tokenpulse.mock.state import SlotPool


def test_two_of_four_wait_for_a_slot_of_two() -> None:
    # 40 tokens at 100 tok/s: each stream holds its slot for ~0.4 s
    prof = profile(capacity=2, decode={"tokens_per_s": 100, "request_jitter": 0, "chunk_jitter": 0},
                   keepalive_ms=50)
    farm = make_farm({"tiny": {"name": "Tiny", "profile": prof}}, output=(40, 40))
    with MockServerThread(farm) as srv:
        async def one(client: httpx.AsyncClient) -> bytes:
            resp = await client.post("/api/v1/chat/completions", json=chat_body(PLAIN, stream=True),
                                     headers={"X-Tokenpulse-Truth": "1"})
            return resp.content

        async def main() -> tuple[list[bytes], int]:
            async with httpx.AsyncClient(base_url=srv.root_url, timeout=10) as client:
                tasks = [asyncio.create_task(one(client)) for _ in range(4)]
                max_queued = 0
                while not all(t.done() for t in tasks):
                    stats = await asyncio.to_thread(srv.stats)
                    max_queued = max(max_queued, stats["providers"]["tiny"]["queued"])
                    await asyncio.sleep(0.02)
                return [t.result() for t in tasks], max_queued

        bodies, max_queued = asyncio.run(main())
        assert max_queued == 2
        assert srv.stats()["providers"]["tiny"]["queued"] == 0

    waits = []
    for raw in bodies:
        data, _ = parse_sse(raw)
        chunks = [json.loads(d) for d in data if d != "[DONE]"]
        first_token = next(c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content"))
        truth = first_token["tokenpulse_truth"]
        waits.append((truth["sent_ns"] - truth["recv_ns"]) / 1e9)
        assert data[-1] == "[DONE]"
    waits.sort()
    # the two queued requests waited for a whole stream of the first two (~0.4 s); the first two did not
    assert waits[2] > 2 * waits[1]
    assert waits[2] > 0.25


def test_queued_requests_get_keepalive_comments() -> None:
    prof = profile(capacity=1, decode={"tokens_per_s": 100, "request_jitter": 0, "chunk_jitter": 0},
                   keepalive_ms=30)
    farm = make_farm({"one": {"name": "One", "profile": prof}}, output=(30, 30))
    with MockServerThread(farm) as srv:
        async def main() -> list[bytes]:
            async with httpx.AsyncClient(base_url=srv.root_url, timeout=10) as client:
                first = asyncio.create_task(client.post("/api/v1/chat/completions",
                                                        json=chat_body(stream=True)))
                await asyncio.sleep(0.05)
                second = await client.post("/api/v1/chat/completions", json=chat_body(stream=True))
                return [(await first).content, second.content]

        _, second = asyncio.run(main())
    _, queued_comments = parse_sse(second)
    assert queued_comments >= 3  # ~0.25 s in the queue at one comment per 30 ms
    assert second.index(b": OPENROUTER PROCESSING") < second.index(b"data: ")  # before the role chunk


@pytest.mark.parametrize("cancel_first", [False, True])
def test_slot_pool_is_fifo_and_survives_cancellation(cancel_first: bool) -> None:
    async def main() -> list[int]:
        pool = SlotPool(1)
        assert pool.try_acquire()
        order: list[int] = []
        futs = [pool.enqueue() for _ in range(3)]
        assert pool.queued == 3 and not pool.try_acquire()
        if cancel_first:
            pool.abandon(futs[0])
        for _ in range(3):
            pool.release()  # hands the slot to the oldest live waiter
            order += [i for i, f in enumerate(futs) if f.done() and not f.cancelled() and i not in order]
        assert pool.queued == 0
        return order

    order = asyncio.run(main())
    assert order == ([1, 2] if cancel_first else [0, 1, 2])


def test_abandoning_a_granted_slot_gives_it_back() -> None:
    async def main() -> None:
        pool = SlotPool(1)
        pool.try_acquire()
        fut = pool.enqueue()
        pool.release()  # handed to fut
        assert fut.done() and pool.active == 1
        pool.abandon(fut)  # its owner went away before using it
        assert pool.active == 0 and pool.try_acquire()

    asyncio.run(main())


def test_batch_slowdown_slows_streams_when_full() -> None:
    from tokenpulse.mock.behaviour import batch_factor
    assert batch_factor(1, 16, 0.5) == 1.0
    assert batch_factor(16, 16, 0.5) == 1.5
    assert batch_factor(40, 16, 0.5) == 1.5
    assert 1.0 < batch_factor(8, 16, 0.5) < 1.5
    assert batch_factor(16, 16, 0.0) == 1.0


def test_pacing_follows_tokens_per_second() -> None:
    """Relative, not absolute: a 4x slower provider takes clearly longer for the same tokens."""
    fast = profile(decode={"tokens_per_s": 400, "request_jitter": 0, "chunk_jitter": 0})
    slow = profile(decode={"tokens_per_s": 100, "request_jitter": 0, "chunk_jitter": 0})
    farm = make_farm({"fast": {"name": "F", "profile": fast}, "slow": {"name": "S", "profile": slow}},
                     output=(30, 30))
    with MockServerThread(farm) as srv, httpx.Client(base_url=srv.root_url, timeout=10) as c:
        took = {}
        for slug in ("fast", "slow"):
            t0 = time.monotonic()
            c.post("/api/v1/chat/completions", json=chat_body(stream=True, provider={"only": [slug]}))
            took[slug] = time.monotonic() - t0
    assert took["slow"] > 2 * took["fast"]
