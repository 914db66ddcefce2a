"""The mock's prefill time and prefix cache: planning (sans-IO) and the usage it reports on the wire."""

from __future__ import annotations

import json
import random

import httpx
from mock_helpers import PLAIN, make_farm, profile

from tokenpulse.mock import MockServerThread
from tokenpulse.mock.behaviour import plan_generation, prefill_s
from tokenpulse.mock.cache import PrefixCache, block_keys
from tokenpulse.mock.farm import CacheProfile
from tokenpulse.mock.request import parse_chat_request


def test_block_keys_chain_the_prefix() -> None:
    a = block_keys(["x" * 10, "y" * 10], 4)
    b = block_keys(["x" * 10, "z" * 10], 4)
    assert len(a) == 5  # 21 characters (with the separator): 5 whole blocks of 4
    assert a[:2] == b[:2] and a[2:] != b[2:]  # blocks that cover the differing text differ, and all after
    assert block_keys(["ab", "c"], 2) != block_keys(["a", "bc"], 2)  # message boundaries count


def test_cache_hits_a_seen_prefix_at_its_rate() -> None:
    cache = PrefixCache(CacheProfile(hit_rate=0.5, min_tokens=8, block_tokens=4))
    rng = random.Random(3)
    prefix = "p" * 64  # 16 tokens = 4 blocks
    assert cache.serve([prefix + "first"], rng) == 0  # never seen: a miss
    results = [cache.serve([prefix + f"question {i}"], rng) for i in range(400)]
    assert set(results) == {0, 16}
    assert 0.43 < results.count(16) / 400 < 0.57  # Binomial(400, 0.5): sd 2.5 %
    assert cache.serve(["q" * 28], rng) == 0  # another prefix; 7 tokens would be under min_tokens anyway


def test_ttft_grows_with_uncached_prompt_tokens() -> None:
    prof = profile(ttft={"median_ms": 10, "p99_ms": 10}, prefill={"tokens_per_s": 1000},
                   cache={"hit_rate": 1.0, "ttft_saving": 0.5})
    farm = make_farm({"alpha": {"name": "A", "profile": prof}})
    model, provider = farm.models[PLAIN], farm.models[PLAIN].providers["alpha"]
    body = {"model": PLAIN, "messages": [{"role": "user", "content": "w" * 4000}]}
    req = parse_chat_request(json.dumps(body).encode())
    plan = plan_generation(model, provider, req, farm_seed=1, request_no=1)
    assert abs(plan.ttft_s - (0.010 + 1.0)) < 1e-9  # 1000 tokens at 1000 tokens/s
    cached = plan_generation(model, provider, req, farm_seed=1, request_no=1, cached_tokens=600)
    assert cached.cached_tokens == 600 and abs(cached.ttft_s - (0.010 + (1000 - 300) / 1000)) < 1e-9
    plain = make_farm({"alpha": {"name": "A", "profile": profile()}}).models[PLAIN].providers["alpha"]
    assert prefill_s(plain, 1000) == 0.0  # no prefill rate: TTFT does not depend on the prompt


def test_usage_reports_cached_tokens() -> None:
    prof = profile(cache={"hit_rate": 1.0, "min_tokens": 128, "block_tokens": 128})
    with MockServerThread(make_farm({"alpha": {"name": "A", "profile": prof}})) as srv, \
            httpx.Client(base_url=srv.root_url, timeout=10) as client:
        def cached(question: str) -> int:
            body = {"model": PLAIN, "stream": True, "max_tokens": 2,
                    "messages": [{"role": "system", "content": "s" * 2000}, {"role": "user", "content": question}]}
            text = client.post("/api/v1/chat/completions", json=body).text
            usage = [json.loads(line[6:]) for line in text.splitlines()
                     if line.startswith("data: {") and '"usage"' in line][-1]["usage"]
            return int(usage["prompt_tokens_details"]["cached_tokens"])

        assert cached("first") == 0
        assert cached("second") == 384  # 2000 characters = 500 tokens: 3 whole blocks of 128
