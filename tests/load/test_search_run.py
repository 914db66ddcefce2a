"""One real `tokenpulse load --shape search` against a mock provider with N slots and a known latency
profile: the concurrency it finds is the one the profile implies (computed here from the profile, not
written down), within one bisection step, and the answer is in the console, summary.json and the report."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from load_helpers import records, summary, tokenpulse

from tokenpulse.mock import MockServerProcess
from tokenpulse.mock.behaviour import batch_factor

MODEL = "test/slotted"
SLOTS = 16
TOKENS_PER_S = 50.0  # 20 ms between tokens alone
BATCH_SLOWDOWN = 3.0  # 2.4x slower per stream with every slot busy
OUTPUT_TOKENS = 10
TPOT_SLO_S = 0.042


def implied_capacity() -> int:
    """The highest concurrency whose TPOT (the gap at that batch size: every user's request decodes
    at once, with no queue below SLOTS) stays within the SLO. TTFT (50 ms) is far from its 2 s SLO."""
    fits = [c for c in range(1, SLOTS + 1)
            if batch_factor(c, SLOTS, BATCH_SLOWDOWN) / TOKENS_PER_S <= TPOT_SLO_S]
    return max(fits)


def farm(path: Path) -> Path:
    profile = {"ttft": {"median_ms": 50, "p99_ms": 50},
               "decode": {"tokens_per_s": TOKENS_PER_S, "request_jitter": 0, "chunk_jitter": 0,
                          "tokens_per_chunk": 1, "batch_slowdown": BATCH_SLOWDOWN},
               "capacity": SLOTS, "keepalive_ms": 0}
    spec = {"seed": 1, "models": {MODEL: {
        "name": "Slotted", "context_length": 8192, "pricing": {"prompt": 0.1, "completion": 0.1},
        "output_tokens": {"min": OUTPUT_TOKENS, "max": OUTPUT_TOKENS},
        "providers": {"slotted": {"name": "Slotted", "profile": profile}}}}}
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_the_search_finds_the_concurrency_the_mock_profile_implies(tmp_path: Path) -> None:
    expected = implied_capacity()
    assert 4 < expected < 8, "the profile must put the answer inside the explored range"
    with MockServerProcess(config_path=farm(tmp_path / "farm.yaml")) as srv:
        config = {"endpoints": [{"name": "mock", "base_url": srv.base_url,
                                 "models": [{"id": MODEL, "providers": ["slotted"]}]}],
                  "load": {"workload": {"input_tokens_mean": 32, "output_tokens_mean": OUTPUT_TOKENS,
                                        "fixed_output": True},
                           "timeouts": {"connect_s": 5, "ttft_s": 30, "idle_s": 15, "total_s": 60}},
                  "slo": {"ttft_s": 2.0, "tpot_s": 0.05}}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        out = tmp_path / "run"
        proc = tokenpulse("load", "--config", str(tmp_path / "c.yaml"), "--out", str(out), "--metrics-port", "0",
                          "--shape", "search", "--start", "4", "--step-time", "3s", "--warmup", "0.5",
                          "--users", str(SLOTS), "--goodput", "0.8", "--slo", f"tpot={TPOT_SLO_S * 1000:g}ms",
                          timeout=120)
    s = summary(out)
    search = s["search"]
    lo, hi = search["bracket"]
    assert search["status"] == "found" and lo is not None and hi is not None
    assert hi - lo == 1, "bisection to one user"
    assert abs(lo - expected) <= 1, f"found {lo}, the profile implies {expected} (bracket {lo}-{hi})"
    # the SLO override reached every process: goodput was judged at 42 ms, not the config's 50 ms
    assert s["slo"]["tpot_s"] == TPOT_SLO_S
    # each judged level: goodput with its n and Wilson interval; the live verdicts agree with the records'
    for step in search["steps"]:
        good = step["checks"][0]
        assert good["name"] == "goodput" and good["n"] == step["tally"]["judged"] > 0
        assert good["ci"][0] <= good["share"] <= good["ci"][1]
        assert step["live_verdict"] == step["verdict"]
    levels = [st["level"] for st in search["steps"]]
    assert levels[:2] == [4, 8] and len(levels) == len(set(levels))  # doubling, then bisection
    # every request belongs to a step and a phase; the settle time between steps is measured by nothing
    rows = records(out)
    assert {r["phase"] for r in rows} <= {"warmup", "measure", "settle"}
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert [st["users"] for st in meta["schedule"]["steps"]] == levels
    assert meta["search"]["answer"]["bracket"] == [lo, hi]
    # the answer in the console table, the Markdown and the HTML report
    sentence = f"capacity {lo:g} users, bracket [{lo:g}, {hi:g}]"
    assert sentence in proc.stdout
    assert "## Capacity search" in (out / "report.md").read_text(encoding="utf-8")
    assert sentence in (out / "report.md").read_text(encoding="utf-8")
    assert "Capacity search" in (out / "report.html").read_text(encoding="utf-8")
    assert "Per search step:" in (out / "report.md").read_text(encoding="utf-8")
