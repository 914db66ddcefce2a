"""The mock's GET /api/v1/generation: OpenRouter's fields with the mock's own ground truth, 404 for a
while after the end (then 200), per key; and the listing's latency/throughput figures."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from mock_helpers import PLAIN, chat_body, farm_data, profile, stream_chat

from tokenpulse.core.generation import parse_generation
from tokenpulse.mock import MockServerThread
from tokenpulse.mock.farm import farm_from_data
from tokenpulse.mock.generations import GenerationLedger

KEY = {"Authorization": "Bearer sk-test-a"}


@pytest.fixture(scope="module")
def gen_server() -> Iterator[MockServerThread]:
    """Generations readable 0.3 s after their end; `midstream` fails every stream after a few tokens."""
    data = farm_data({
        "alpha": {"name": "Alpha Cloud", "profile": profile(ttft={"median_ms": 30, "p99_ms": 60})},
        "midstream": {"name": "Mid Stream", "profile": profile(errors={"mid_stream": 1.0})},
    })
    data["generation_ready_s"] = [0.3, 0.3]
    with MockServerThread(farm_from_data(data, "gen-farm")) as srv:
        yield srv


@pytest.fixture()
def client(gen_server: MockServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gen_server.root_url, timeout=10) as c:
        yield c


def _pinned(slug: str) -> dict[str, object]:
    return chat_body(PLAIN, max_tokens=30, provider={"only": [slug], "allow_fallbacks": False})


def _wait_found(client: httpx.Client, gen_id: str, headers: dict[str, str]) -> tuple[int, httpx.Response]:
    """404s before the first 200 (bounded: the ledger's delay is 0.3 s)."""
    misses = 0
    for _ in range(100):
        r = client.get("/api/v1/generation", params={"id": gen_id}, headers=headers)
        if r.status_code == 200:
            return misses, r
        assert r.status_code == 404
        misses += 1
        time.sleep(0.02)
    raise AssertionError("generation never became readable")


def test_404_then_200_with_ground_truth(client: httpx.Client) -> None:
    res = stream_chat(client, _pinned("alpha"), headers=KEY)
    gen_id = res.headers["x-generation-id"]
    misses, r = _wait_found(client, gen_id, KEY)
    assert misses >= 1  # read at once after the stream: not there yet, as on OpenRouter
    data = r.json()["data"]
    usage = res.usage()
    assert usage is not None
    assert data["id"] == gen_id and data["provider_name"] == "Alpha Cloud" and data["cancelled"] is False
    assert data["tokens_completion"] == data["native_tokens_completion"] == usage["completion_tokens"]
    assert data["tokens_prompt"] == usage["prompt_tokens"]
    assert data["total_cost"] == pytest.approx(usage["cost"])
    assert 0 < data["latency"] <= data["generation_time"]  # milliseconds, first token before the end
    assert data["finish_reason"] == res.chunks[-2]["choices"][0]["finish_reason"]
    assert data["provider_responses"] == [{"provider_name": "Alpha Cloud", "status": 200}]
    stats = parse_generation(r.content)
    assert stats is not None and stats.latency_s == pytest.approx(data["latency"] / 1000, abs=1e-6)


def test_unknown_ids_other_keys_and_bad_keys(client: httpx.Client) -> None:
    assert client.get("/api/v1/generation", params={"id": "gen-999999"}, headers=KEY).status_code == 404
    assert client.get("/api/v1/generation", headers=KEY).status_code == 400
    res = stream_chat(client, _pinned("alpha"), headers=KEY)
    gen_id = res.headers["x-generation-id"]
    _wait_found(client, gen_id, KEY)
    other = {"Authorization": "Bearer sk-test-b"}
    assert client.get("/api/v1/generation", params={"id": gen_id}, headers=other).status_code == 404
    assert client.get("/api/v1/generation", params={"id": gen_id}).status_code == 404  # no key is a key too
    bad = {"Authorization": "Bearer sk-invalid-x"}
    assert client.get("/api/v1/generation", params={"id": gen_id}, headers=bad).status_code == 401


def test_mid_stream_failure_is_billed_for_what_it_sent(client: httpx.Client, gen_server: MockServerThread) -> None:
    spent_before = client.get("/_mock/stats").json()["spent_usd"]
    res = stream_chat(client, _pinned("midstream"), headers=KEY)
    assert any("error" in c for c in res.chunks) and res.usage() is None  # no usage.cost on the stream
    _, r = _wait_found(client, res.headers["x-generation-id"], KEY)
    data = r.json()["data"]
    assert data["finish_reason"] == "error" and data["provider_name"] == "Mid Stream"
    assert 0 < data["tokens_completion"] < 30 and data["total_cost"] > 0
    spent = client.get("/_mock/stats").json()["spent_usd"] - spent_before
    assert spent == pytest.approx(data["total_cost"], rel=1e-6)


def test_ledger_is_bounded_and_seeded() -> None:
    ledger = GenerationLedger(seed=3, ready_s=(0.5, 2.0), capacity=3)
    for i in range(5):
        ledger.finish(f"gen-{i}", ended_at=0.0, authorization="", model="m", provider_name="P", latency_ms=1.0,
                      generation_time_ms=2.0, prompt_tokens=1, completion_tokens=1, reasoning_tokens=0,
                      cost_usd=0.0, finish_reason="stop", cancelled=False, streamed=True, attempts=[("P", 200)])
    assert len(ledger) == 3
    assert ledger.lookup("gen-0", "", 100.0)[0] == 404  # forgotten, oldest first
    assert ledger.lookup("gen-4", "", 0.4)[0] == 404  # before the earliest ready time
    assert ledger.lookup("gen-4", "", 2.0)[0] == 200


def test_listing_publishes_latency_and_throughput(client: httpx.Client) -> None:
    entries = client.get(f"/api/v1/models/{PLAIN}/endpoints").json()["data"]["endpoints"]
    alpha = next(e for e in entries if e["tag"] == "alpha")
    lat, tps = alpha["latency_last_30m"], alpha["throughput_last_30m"]
    assert lat["p50"] == 30.0 and lat["p99"] == pytest.approx(60.0, abs=0.1)  # the TTFT profile, ms
    assert lat["p50"] <= lat["p75"] <= lat["p90"] <= lat["p99"]
    assert tps["p50"] >= tps["p75"] >= tps["p90"] >= tps["p99"] > 0  # p99: the slowest
