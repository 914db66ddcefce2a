"""report/search.py: a search run's answer from its records, the live verdicts beside it, undecided and
client-bound steps, in-process from a hand-made run folder's contents."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tokenpulse.report.search import answer_text, client_bound_text, search_rows, summarize_search

GOOD = {"outcome": "ok", "ttft_s": 0.1, "tpot_s": 0.01, "e2e_s": 0.5, "phase": "measure"}
SLOW = {**GOOD, "ttft_s": 5.0}


def rows(step: int, good: int, slow: int) -> list[dict[str, Any]]:
    return [{**GOOD, "step": step}] * good + [{**SLOW, "step": step}] * slow


def run_of(levels: list[float], records: list[dict[str, Any]], live: list[str], limited: set[int]) -> tuple[Any, dict]:
    meta = {"search": {"varies": "users", "criteria": {"goodput": 0.9}, "resolution": "1 user",
                       "steps": [{"index": i, "verdict": v, "tally": {"unresolved": 0}} for i, v in enumerate(live)],
                       "answer": {"status": "found", "level": 4.0}}}
    summary = {"run": {"shape": "search"}, "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
               "steps": [{"index": i, "level": lvl, "rate": None} for i, lvl in enumerate(levels)],
               "generator": {"steps": {str(i): {"limited": i in limited, "cpu_mean_max": 0.9 if i in limited else 0.1,
                                                "lag": {"p99": 0.02 if i in limited else 0.001}}
                                       for i in range(len(levels))}}}
    return SimpleNamespace(meta=meta, records=records), summary


def test_the_answer_is_stated_from_the_records_with_each_levels_interval_and_n() -> None:
    # 2 pass, 8 fail, 4 pass, 6 undecided then pooled with its re-run to a fail, 5 pass
    levels = [2, 8, 4, 6, 6, 5]
    records = (rows(0, 60, 0) + rows(1, 10, 50) + rows(2, 60, 0) + rows(3, 18, 2) + rows(4, 30, 10)
               + rows(5, 80, 1) + [{**GOOD, "step": 5, "phase": "settle"}] * 40)
    run, summary = run_of(levels, records, ["pass", "fail", "pass", "undecided", "fail", "pass"], limited={1})
    search = summarize_search(run, summary)
    assert search is not None
    assert search["bracket"] == [5, 6] and search["answer"] == 5 and search["status"] == "found"
    by_index = {s["index"]: s for s in search["steps"]}
    assert by_index[3]["verdict"] == "undecided" and by_index[4]["pooled_steps"] == [3, 4]
    assert by_index[4]["tally"]["judged"] == 60 and by_index[4]["verdict"] == "fail"
    assert by_index[5]["tally"]["judged"] == 81, "settle-phase requests are not measured"
    assert by_index[1]["bounded_by_client"] and not by_index[2]["bounded_by_client"]
    assert any("client, not the server" in w for w in search["warnings"])
    assert not any("live but" in w for w in search["warnings"]), "the live verdicts agree"
    assert "capacity 5 users, bracket [5, 6]" in answer_text(search)
    assert "1 (level 8)" in client_bound_text(search)
    assert search_rows(search)[4][1] == "6 (steps 3+4)"


def test_a_live_verdict_that_the_records_contradict_is_warned_about() -> None:
    run, summary = run_of([4], rows(0, 100, 0), ["fail"], limited=set())
    search = summarize_search(run, summary)
    assert search is not None and search["steps"][0]["verdict"] == "pass"
    assert any("judged fail live but pass from the complete records" in w for w in search["warnings"])
    assert "every step" in client_bound_text(search)


def test_not_a_search_no_section() -> None:
    run, summary = run_of([4], [], [], set())
    summary["run"]["shape"] = "sweep"
    assert summarize_search(run, summary) is None
