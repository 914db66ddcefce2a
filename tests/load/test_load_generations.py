"""The load test's /generation lookups: the worker (retries, caps, counts, billed failures), the join of
its file to the records in the report, and one short real run against the mock farm."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from load_helpers import tokenpulse, write_config

from tokenpulse.config import GenerationLookups
from tokenpulse.core.generation import RetryPolicy
from tokenpulse.load.cost import CostGuard, correct_spend
from tokenpulse.load.generations import GenerationLookupWorker, Lookup
from tokenpulse.mock import MockServerProcess


def _body(gen_id: str, cost: float = 0.002, latency_ms: float = 120.0) -> bytes:
    return json.dumps({"data": {"id": gen_id, "latency": latency_ms, "generation_time": 400.0,
                                "provider_name": "SwiftInfer", "total_cost": cost, "tokens_completion": 10,
                                "native_tokens_completion": 11, "finish_reason": "stop"}}).encode()


class FakeOpenRouter:
    """Answers 404 `misses[id]` times, then 200 (ids never seen: 404 forever); counts the calls."""

    def __init__(self, misses: dict[str, int]) -> None:
        self.misses = dict(misses)
        self.calls: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []

    def __call__(self, url: str, headers: Any) -> tuple[int | None, bytes]:
        gen_id = url.rsplit("=", 1)[1]
        self.calls[gen_id] += 1
        self.headers.append(dict(headers))
        if gen_id not in self.misses or self.calls[gen_id] <= self.misses[gen_id]:
            return 404, b'{"error": {"code": 404}}'
        return 200, _body(gen_id)


def _lookup(gen_id: str, counted: float | None = None) -> Lookup:
    return Lookup(gen_id, f"http://127.0.0.1:1/api/v1/generation?id={gen_id}", {"Authorization": "Bearer k"},
                  "mock/m/p/default", "swiftinfer", ended=time.monotonic(), counted_usd=counted)


def _worker(tmp_path: Path, fake: FakeOpenRouter, **settings: Any) -> GenerationLookupWorker:
    w = GenerationLookupWorker(tmp_path / "generations-local.jsonl", GenerationLookups(**settings), get=fake)
    w.policy = RetryPolicy(first_delay_s=0.01, factor=2.0, max_delay_s=0.04, deadline_s=0.3)
    return w


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_retries_while_404_then_writes_the_stats(tmp_path: Path) -> None:
    fake = FakeOpenRouter({"gen-1": 2, "gen-2": 0})
    w = _worker(tmp_path, fake, max_rate_per_s=100)
    w.start()
    assert w.submit(_lookup("gen-1")) is None and w.submit(_lookup("gen-2")) is None
    assert w.submit(_lookup("gen-unknown")) is None
    w.stop(wait_s=5.0)
    lines = _lines(w.path)
    by_id = {line.get("generation_id"): line for line in lines}
    assert by_id["gen-1"]["status"] == "found" and by_id["gen-1"]["attempts"] == 3
    assert by_id["gen-1"]["or_latency_s"] == 0.12 and by_id["gen-1"]["or_total_cost_usd"] == 0.002
    assert by_id["gen-2"]["attempts"] == 1
    assert by_id["gen-unknown"]["status"] == "not_found" and by_id["gen-unknown"]["attempts"] >= 2
    assert lines[-1] == {"summary": True, "skipped": 0, "dropped": 0, "abandoned": 0, "found": 2}
    assert all(h == {"Authorization": "Bearer k"} for h in fake.headers)


def test_rate_and_queue_caps_are_counted_never_silent(tmp_path: Path) -> None:
    fake = FakeOpenRouter({})
    w = _worker(tmp_path, fake, max_rate_per_s=3, queue=2)
    w.start()
    results = [w.submit(_lookup(f"gen-{i}")) for i in range(10)]  # at once: a burst of 3 fits the rate
    assert results.count("skipped") == 7 and results.count("dropped") == 1 and results.count(None) == 2
    w.stop(wait_s=0.0)  # the two queued ones are still waiting: abandoned
    summary = _lines(w.path)[-1]
    assert (summary["skipped"], summary["dropped"], summary["abandoned"]) == (7, 1, 2)
    assert w.submit(_lookup("gen-late")) == "abandoned"


def test_billed_failure_corrects_the_spend(tmp_path: Path) -> None:
    guard = CostGuard(cap_usd=0.0025)
    reservation = guard.reserve("k", 0.001)
    assert reservation is not None
    guard.settle(reservation, None)  # failed mid-stream, no usage.cost: the reservation is counted
    assert guard.spent_usd == pytest.approx(0.001)
    fake = FakeOpenRouter({"gen-7": 0})
    w = _worker(tmp_path, fake)
    w.on_billed = lambda lookup, cost: correct_spend(guard, lookup.counted_usd or 0.0, cost)
    w.start()
    w.submit(_lookup("gen-7", counted=0.001))
    w.stop(wait_s=5.0)
    assert guard.spent_usd == pytest.approx(0.002)  # /generation's total_cost replaced the reservation
    correct_spend(guard, 0.0, 0.001)  # another late bill passes the cap: no more requests
    assert guard.exhausted
    correct_spend(guard, 0.0, float("nan"))
    assert guard.spent_usd == pytest.approx(0.003)


def test_real_run_writes_generations_and_a_matrix(mock: MockServerProcess, tmp_path: Path) -> None:
    """One short Locust run on the default farm, two providers: every ok request is looked up and found,
    its or_* fields agree with ours, and the report has a provider matrix with the listing's figures."""
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer", "steadystack"])
    text = config.read_text(encoding="utf-8").replace("load:\n", "load:\n  generations: {max_rate_per_s: 100}\n", 1)
    config.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    tokenpulse("load", "--config", str(config), "--users", "4", "--run-time", "3s", "--out", str(out), "--quiet")
    (gen_file,) = out.glob("generations-*.jsonl")
    lines = _lines(gen_file)
    assert lines[-1]["summary"] is True and lines[-1]["dropped"] == 0 and lines[-1]["skipped"] == 0
    found = {line["generation_id"]: line for line in lines[:-1] if line["status"] == "found"}
    records = [json.loads(x) for p in out.glob("records-*.jsonl") for x in p.read_text().splitlines()]
    ok = [r for r in records if r["outcome"] == "ok"]
    assert ok and all(r["generation_id"] in found for r in ok)
    assert any(line["attempts"] > 1 for line in found.values())  # the 404-then-200 path ran
    for r in ok:
        g = found[r["generation_id"]]
        assert g["or_completion_tokens"] == r["output_tokens"]
        assert g["or_total_cost_usd"] == pytest.approx(r["cost_usd"])
        assert 0 <= r["ttft_s"] - g["or_latency_s"] < 0.05  # loopback: the overhead is the network's only
    assert list(out.glob("listing-*.json"))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    (matrix,) = summary["provider_matrix"]
    assert {p["provider"] for p in matrix["providers"]} == {"swiftinfer", "steadystack"}
    assert all(p["listing"]["latency_p50_s"] for p in matrix["providers"])
    md = (out / "report.md").read_text(encoding="utf-8")  # what `tokenpulse report RUN --markdown` prints
    assert "## Provider matrix" in md and "TTFT - latency p50" in md
