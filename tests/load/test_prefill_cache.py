"""Prefill scaling and prompt caching against the mock (in-process server, no Locust): the workload's
prompts go through the real request builder and asyncio driver, their records through the report's
fit and cache summary, and the figures must recover what the mock's profile was configured with."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mock"))
from mock_helpers import PLAIN, make_farm, profile  # noqa: E402

from tokenpulse.config import Target, Workload, config_from_text  # noqa: E402
from tokenpulse.core.request import Timeouts, prepare  # noqa: E402
from tokenpulse.load.prompts import ContextLimits  # noqa: E402
from tokenpulse.load.workload import WorkloadGenerator  # noqa: E402
from tokenpulse.mock import MockServerThread  # noqa: E402
from tokenpulse.report.cache import cache_summary  # noqa: E402
from tokenpulse.report.prefill import prefill_summary  # noqa: E402
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver  # noqa: E402

PREFILL_RATE = 100_000.0  # tokens/s: fast enough for a short test, slow enough to dwarf the TTFT spread
HIT_RATE = 0.7
SAVING = 0.8
TARGETS = [{"name": "alpha", "endpoint": "m", "model": PLAIN, "provider": "alpha"}]


@pytest.fixture(scope="module")
def server() -> Any:
    # A tight TTFT (5 ms spread) so that a few dozen requests pin the fit down.
    prof = profile(ttft={"median_ms": 20, "p99_ms": 25}, prefill={"tokens_per_s": PREFILL_RATE},
                   cache={"hit_rate": HIT_RATE, "ttft_saving": SAVING, "min_tokens": 1024})
    with MockServerThread(make_farm({"alpha": {"name": "Alpha", "profile": prof}})) as srv:
        yield srv


def _target(server: Any) -> Target:
    text = yaml.safe_dump({"endpoints": [{"name": "m", "base_url": server.root_url + "/api/v1",
                                          "models": [{"id": PLAIN, "providers": ["alpha"]}]}]})
    return next(iter(config_from_text(text, source="test").targets()))


def _run(server: Any, workload: Workload, n: int) -> list[dict[str, Any]]:
    """n requests of one user, one after another; the records as the load test writes their fields."""
    target = _target(server)
    user = WorkloadGenerator(workload, run_id="t1", context={PLAIN: 8192}).for_user("u0")
    out: list[dict[str, Any]] = []

    async def go() -> None:
        async with AsyncStreamDriver() as driver:
            for _ in range(n):
                planned = user.next_request(target)
                result = await driver.run(prepare(target.endpoint.base_url, planned.chat), Timeouts())
                user.on_result(result)
                out.append({**result.to_dict(), "endpoint": "m", "model": PLAIN, "target_provider": "alpha",
                            "phase": "measure", "input_tokens_target": planned.input_tokens_target})

    asyncio.run(go())
    return out


def test_prefill_fit_recovers_the_mocks_rate(server: Any) -> None:
    records = _run(server, Workload(kind="prefill", input_lengths=[100, 1000, 3000, 6000], output_tokens_mean=4), 40)
    assert all(r["outcome"] == "ok" for r in records)
    section = prefill_summary(records, TARGETS)["alpha"]
    # every length was sent, 10 times each, and the server counted what was asked (calibration)
    assert [p["input_tokens_target"] for p in section["points"]] == [100, 1000, 3000, 6000]
    assert all(p["ttft"]["n"] == 10 for p in section["points"])
    assert all(abs(p["prompt_tokens_mean"] - p["input_tokens_target"]) <= 0.02 * p["input_tokens_target"] + 8
               for p in section["points"])
    fit = section["fit"]
    assert fit["n"] == 40
    lo, hi = fit["prefill_tokens_per_s_ci"]
    # The configured rate lies in the fit's 95 % interval, and that interval is informative: a TTFT spread
    # of ~2 ms (sd) over a 60 ms prefill range and 40 points gives a slope error of ~2 % on a quiet machine;
    # a loaded one (the mock's TTFT is wall-clock) widened it to 22 %, so the bound is 50 %.
    assert lo is not None and hi is not None and lo <= PREFILL_RATE <= hi
    assert hi - lo < 0.5 * PREFILL_RATE
    assert 0.015 < fit["overhead_s"] < 0.035  # the profile's 20-25 ms TTFT (plus loopback) is the overhead


def test_context_caps_prefill_lengths() -> None:
    limits = ContextLimits({"m/a": 8192})
    assert limits.lengths_for("m/a", [100, 1000, 8000, 100_000], 128) == [100, 1000]
    assert limits.lengths_for("other/model", [100, 100_000], 128) == [100, 100_000]  # unknown: not capped


def test_prefill_prompts_share_their_text() -> None:
    """A long prompt's filler is one string per length, shared by every user: per request only the
    prefix and the instruction are new."""
    gen = WorkloadGenerator(Workload(kind="prefill", input_lengths=[50_000]), run_id="r")
    body = gen.prompts.body(200_000)
    assert gen.prompts.body(200_000) is body
    a = gen.prompts.prefill("a", 50_000, 4.0).messages[0]["content"]
    b = gen.prompts.prefill("b", 50_000, 4.0).messages[0]["content"]
    assert a != b and a[:3] != b[:3] and len(a) == len(b) == 200_000


def test_cache_hit_rate_and_saving_match_the_profile(server: Any) -> None:
    workload = Workload(kind="shared_prefix", shared_prefix_tokens=2048, shared_prefix_share=0.75,
                        input_tokens_mean=64, output_tokens_mean=4)
    records = _run(server, workload, 80)
    section = cache_summary(records, TARGETS, always=True)["alpha"]
    assert section["requests"] == 80 and section["unknown"] == 0
    shared = sum(1 for r in records if (r["cached_tokens"] or 0) > 0)
    assert section["hits"] == shared
    # Hits come only from the shared prefix (after its first request): expected share 0.75 x 0.7.
    lo, hi = section["hit_rate_ci"]
    assert lo <= 0.75 * HIT_RATE <= hi
    # A hit reads the prefix's whole blocks (2048 tokens = 16 blocks of 128) from the cache.
    assert section["cached_tokens_mean"] == 2048
    # Same prompt length for hits and misses: the saving is the cached tokens' prefill time x saving.
    expected = 2048 * SAVING / PREFILL_RATE
    saving = section["ttft_saving_p50_s"]
    assert saving["ci"][0] <= expected <= saving["ci"][1]
    # 16 ms expected; the TTFT spread is ~2 ms (sd) on a quiet machine, and the mock's TTFT is wall-clock,
    # so a loaded one adds its scheduling delays: 5 ms + a quarter of the saving bounds both.
    assert abs(saving["value"] - expected) < 0.005 + 0.25 * expected
