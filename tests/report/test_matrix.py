"""The /generation join in the report and the provider matrix, on small synthetic run folders."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from synth import MODELS, closed_loop, write_run

from tokenpulse.report.markdown import markdown_report
from tokenpulse.report.run import load_run
from tokenpulse.report.summary import summarize

MODEL = MODELS[0]


def _run(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Two providers of one model (swift: TTFT ~0.2 s; steady: ~0.5 s, some wrong_provider and 429s),
    every request with a generation id and usage.cost, a listing and a lookups file."""
    meta, records = closed_loop([2], step_s=10.0, targets=(("swiftinfer", MODEL), ("steadystack", MODEL)))
    for i, r in enumerate(records):
        r["generation_id"] = f"gen-{i}"
        r["cost_usd"] = r["estimated_cost_usd"] = 2e-5
        if r["target_provider"] == "steadystack":
            r["ttft_s"] += 0.3
    steady = [r for r in records if r["target_provider"] == "steadystack" and r["phase"] == "measure"]
    for r in steady[:3]:
        r.update(outcome="error", error_class="wrong_provider", provider="SwiftInfer")
    for r in steady[3:5]:
        # refused before streaming: no generation id (the header comes with a 200 only), nothing billed
        r.update(outcome="error", error_class="rate_limited", cost_usd=None, estimated_cost_usd=0.0,
                 generation_id=None)
    billed = steady[5]
    billed.update(outcome="error", error_class="mid_stream_error", cost_usd=None, estimated_cost_usd=None)
    folder = write_run(tmp_path / "run", meta, records)
    lines = []
    for i, r in enumerate(records):
        if r["generation_id"] is None:
            continue
        line = {"generation_id": f"gen-{i}", "status": "found", "or_latency_s": r["ttft_s"] - 0.01,
                "or_generation_time_s": r["e2e_s"], "or_total_cost_usd": 2.5e-5,
                "or_provider_name": "SteadyStack" if r["target_provider"] == "steadystack" else "SwiftInfer"}
        if r is billed:
            line["or_total_cost_usd"] = 7e-6
        lines.append(line)
    lines += [{"generation_id": "gen-x", "status": "not_found"}, {"generation_id": 5, "status": "found"},
              {"generation_id": "gen-0", "status": "found", "or_latency_s": -1},  # a later, unusable duplicate
              {"summary": True, "skipped": 3, "dropped": 1, "abandoned": 2}]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"generation_id": "gen-1", "st'  # torn last line
    (folder / "generations-local.jsonl").write_text(text, encoding="utf-8")
    listing = {"endpoint": "mock", "model": MODEL, "fetched_at": 0, "http_status": 200, "endpoints": [
        {"tag": "swiftinfer", "provider_name": "SwiftInfer", "uptime_last_30m": 99.5,
         "latency_last_30m": {"p50": 150.0, "p99": 600.0}, "throughput_last_30m": {"p50": 110.9}},
        {"tag": "steadystack/bf16", "provider_name": "SteadyStack", "uptime_last_30m": "junk",
         "latency_last_30m": {"p50": float("nan")}, "throughput_last_30m": None}]}
    (folder / "listing-mock-x.json").write_text(json.dumps(listing), encoding="utf-8")
    return folder, records


def test_join_counts_every_lookup_and_bills_failures(tmp_path: Path) -> None:
    folder, records = _run(tmp_path)
    run = load_run(folder)
    tally = run.generations
    looked_up = len(records) - 2  # the two 429s had no generation id
    assert tally.statuses == Counter({"found": looked_up + 1, "not_found": 1})
    assert (tally.skipped, tally.dropped, tally.abandoned) == (3, 1, 2)
    assert tally.joined == looked_up and tally.billed_failures == 1 and tally.billed_failures_usd == 7e-6
    assert sum(1 for r in run.records if "or_latency_s" in r) == looked_up - 1  # gen-0's line was unusable
    summary = summarize(run)
    spend = sum(t["overall"]["cost_usd"] for t in summary["targets"])
    measured_ok = sum(1 for r in records if r["outcome"] == "ok" and r["phase"] == "measure")
    # served (also by the wrong provider: 3) at 2e-5 each, plus the billed mid-stream failure
    assert spend == pytest.approx((measured_ok + 3) * 2e-5 + 7e-6)


def test_matrix_figures(tmp_path: Path) -> None:
    folder, records = _run(tmp_path)
    summary = summarize(load_run(folder))
    (matrix,) = summary["provider_matrix"]
    rows = {p["provider"]: p for p in matrix["providers"]}
    swift, steady = rows["swiftinfer"], rows["steadystack"]
    assert steady["wrong_provider"]["n"] == 3
    assert steady["wrong_provider"]["share"] == pytest.approx(3 / (steady["requests"] - steady["cancelled"]))
    # availability the way OpenRouter counts it: rate limits and wrong-provider samples left out
    assert steady["availability"]["judged"] == steady["ok"] + 1
    lo, hi = steady["availability"]["ci"]
    assert lo is not None and hi is not None and lo < steady["availability"]["ratio"] <= hi <= 1
    cost = swift["cost"]
    assert cost["checked_requests"] == swift["ok"]
    assert cost["difference_usd"] == pytest.approx(swift["ok"] * 0.5e-5)
    assert cost["usd_per_ok_answer"] == pytest.approx(2e-5)
    assert cost["usd_per_million_output_tokens"] == pytest.approx(2e-5 / 20 * 1e6)
    gap = swift["openrouter"]["ttft_minus_latency"]
    assert gap["n"] >= swift["ok"] - 1 and gap["p50"] == pytest.approx(0.01)
    assert swift["listing"] == {"latency_p50_s": 0.15, "throughput_p50": 110.9, "uptime_last_30m": 0.995}
    assert steady["listing"] == {"latency_p50_s": None, "throughput_p50": None, "uptime_last_30m": None}
    assert [x["name"] for x in matrix["ranking"]] == ["swiftinfer", "steadystack"]  # faster under a 1 s SLO
    assert matrix["ranking"][1]["distinct_from_above"] in (True, False)
    md = markdown_report(summary)
    assert f"## Provider matrix: {MODEL} on mock" in md
    for title in ("### Ranking under the SLO", "### Speed", "### Errors", "### Cost",
                  "### Our TTFT against what OpenRouter measured", "### Our figures against the listing"):
        assert title in md
    assert "wrong_provider 3" in md and "dropped (queue full) 1" in md and "billed failed requests" in md


def test_no_matrix_for_one_provider(tmp_path: Path) -> None:
    meta, records = closed_loop([2], step_s=5.0)
    summary = summarize(load_run(write_run(tmp_path / "one", meta, records)))
    assert summary["provider_matrix"] == []
    assert "Provider matrix" not in markdown_report(summary)
