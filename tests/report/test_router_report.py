"""The load report's router's-choice section: the share each served provider got per `~...` target, and
the router's TTFT against the best pinned provider's, with n and intervals (report/routing.py)."""

from __future__ import annotations

import random
from pathlib import Path

from synth import MODELS, closed_loop, record, write_run

from tokenpulse.report.html import render_html
from tokenpulse.report.markdown import markdown_report
from tokenpulse.report.run import load_run
from tokenpulse.report.summary import summarize

ROUTE = "~sort:throughput"


def _run(tmp_path: Path, route_ttft: float, jitter: float = 0.01) -> dict:
    meta, records = closed_loop([2], step_s=30.0, targets=(("swiftinfer", MODELS[0]), ("steadystack", MODELS[0])),
                                ttft=0.1)
    for r in records:  # the pinned targets' provider fields, as the stream names them
        r["provider"] = {"swiftinfer": "SwiftInfer", "steadystack": "SteadyStack"}[r["target_provider"]]
        if r["target_provider"] == "steadystack":
            r["ttft_s"] = r["ttft_s"] * 3
    rng = random.Random(5)
    served = ["SwiftInfer"] * 70 + ["SteadyStack"] * 25 + [None] * 5
    for i, name in enumerate(served):
        r = record(2.0 + i * 0.25, ttft=route_ttft + rng.random() * jitter, provider=ROUTE)
        r["provider"] = name
        records.append(r)
    records.append({**record(5.0, ttft=0.1, provider=ROUTE), "outcome": "error", "error_class": "server_error",
                    "provider": "SwiftInfer"})
    meta["targets"].append({"index": 2, "name": ROUTE, "endpoint": "mock", "model": MODELS[0], "provider": ROUTE,
                            "price": None})
    return summarize(load_run(write_run(tmp_path / f"run-{route_ttft}", meta, records)))


def test_router_choice_shares_and_comparison(tmp_path: Path) -> None:
    summary = _run(tmp_path, route_ttft=0.5)
    (section,) = summary["router_choice"]
    assert section["route"] == ROUTE and section["requests"] == 101
    rows = {row["provider"]: row for row in section["served"]}
    assert rows["SwiftInfer"]["requests"] == 71 and rows["SwiftInfer"]["ok"] == 70
    assert rows["SwiftInfer"]["pinned_target"] == "swiftinfer" and rows["SteadyStack"]["pinned_target"] == "steadystack"
    assert rows["(not said)"]["requests"] == 5 and rows["(not said)"]["pinned_target"] is None
    assert abs(sum(row["share"] for row in section["served"]) - 1.0) < 1e-9
    assert section["best_pinned"]["provider"] == "swiftinfer"
    assert section["ttft"]["n"] == 100 and section["verdict"].startswith("router's choice slower")
    text = markdown_report(summary)
    assert "## The router's own choice" in text and "| SwiftInfer | swiftinfer | 71 | 70.3% | 70 |" in text
    assert "best pinned: swiftinfer" in text and "(n=100)" in text
    page = render_html(summary)
    assert "<h2>The router&#x27;s own choice</h2>" in page
    assert "<td>SwiftInfer</td><td>swiftinfer</td><td>71</td>" in page


def test_no_router_target_no_section_and_overlap_is_no_difference(tmp_path: Path) -> None:
    meta, records = closed_loop([1], step_s=5.0)
    summary = summarize(load_run(write_run(tmp_path / "plain", meta, records)))
    assert summary["router_choice"] == [] and "router's own choice" not in markdown_report(summary)
    close = _run(tmp_path, route_ttft=0.1, jitter=0.05)  # the fastest pin's own distribution
    assert close["router_choice"][0]["verdict"].startswith("no difference shown")


def test_served_names_are_matched_by_the_saved_listings_names(tmp_path: Path) -> None:
    """A provider whose display name does not contain its slug ("Acme Inference" for `swiftinfer`)
    is matched through the listing the run saved at its start, as the run's own pins were."""
    import json

    from tokenpulse.runfolder.generations import listing_file

    meta, records = closed_loop([2], step_s=30.0, targets=(("swiftinfer", MODELS[0]),), ttft=0.1)
    for r in records:
        r["provider"] = "Acme Inference"
    for i in range(20):
        r = record(2.0 + i * 0.25, ttft=0.2, provider=ROUTE)
        r["provider"] = "Acme Inference"
        records.append(r)
    meta["targets"].append({"index": 1, "name": ROUTE, "endpoint": "mock", "model": MODELS[0], "provider": ROUTE,
                            "price": None})
    folder = write_run(tmp_path / "renamed", meta, records)
    (row,) = summarize(load_run(folder))["router_choice"][0]["served"]
    assert row["provider"] == "Acme Inference" and row["pinned_target"] is None  # the slug rule finds no pin
    listing_file(folder, "mock", MODELS[0]).write_text(json.dumps({
        "endpoint": "mock", "model": MODELS[0], "fetched_at": 0, "http_status": 200,
        "endpoints": [{"tag": "swiftinfer", "provider_name": "Acme Inference"}]}), encoding="utf-8")
    (row,) = summarize(load_run(folder))["router_choice"][0]["served"]
    assert row["pinned_target"] == "swiftinfer"
