"""Arrival patterns and bounds, sans-IO: gamma gaps, trace reading and splitting, request shares, and the
plan-time checks that stop a bad trace or option before anything starts (exit 2 messages)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from tokenpulse.cli.main import build_parser
from tokenpulse.load.arrivals import next_gap
from tokenpulse.load.bounds import RequestBudget, request_share
from tokenpulse.load.runner import UsageError, plan_run
from tokenpulse.load.trace import LEAD_IN_S, TraceError, load_trace, replay_times

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("k", [0.25, 1.0, 4.0])
def test_gamma_gaps_keep_the_mean_and_set_the_cv(k: float) -> None:
    rng = random.Random(7)
    rate, n = 5.0, 40_000
    gaps = [next_gap(rng, rate, "gamma", k) for _ in range(n)]
    mean = sum(gaps) / n
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / (n - 1))
    cv = 1 / math.sqrt(k)
    # standard error of the mean: cv / rate / sqrt(n) (<= 0.5 % here); of the CV: a few % at most
    assert abs(mean - 1 / rate) < 4 * cv / rate / math.sqrt(n)
    assert abs(sd / mean - cv) < 0.05 * cv


def test_constant_and_poisson_gaps() -> None:
    rng = random.Random(1)
    assert next_gap(rng, 4.0, "constant") == 0.25
    gaps = [next_gap(rng, 4.0, "poisson") for _ in range(20_000)]
    assert abs(sum(gaps) / len(gaps) - 0.25) < 0.01


def test_request_shares_sum_to_the_total() -> None:
    for total in (1, 7, 60, 61):
        for workers in (1, 2, 3, 5):
            shares = [request_share(total, workers, i) for i in range(workers)]
            assert sum(shares) == total and max(shares) - min(shares) <= 1
    budget = RequestBudget(2)
    assert budget.claim() and budget.claim() and not budget.claim() and budget.exhausted
    assert RequestBudget().claim()  # unbounded


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_trace_formats(tmp_path: Path) -> None:
    ours = _write(tmp_path / "t.jsonl", [json.dumps({"timestamp": 10.5, "input_tokens": 100, "output_tokens": 8}),
                                         json.dumps({"timestamp": 10.0, "output_tokens": 4,
                                                     "messages": [{"role": "user", "content": "hi"}]})])
    items = load_trace(ours)
    assert [(i.t_s, i.input_tokens, i.output_tokens) for i in items] == [(0.0, 1, 4), (0.5, 100, 8)]
    assert items[0].messages == ({"role": "user", "content": "hi"},)
    moon = _write(tmp_path / "m.jsonl", [
        '{"timestamp": 0, "input_length": 655, "output_length": 52, "hash_ids": [46, 47]}',
        '{"timestamp": 10535, "input_length": 672, "output_length": 26, "hash_ids": [46, 47]}'])
    items = load_trace(moon)  # detected from its fields
    assert [(i.t_s, i.input_tokens, i.hash_ids) for i in items] == [(0.0, 655, (46, 47)), (10.535, 672, (46, 47))]
    burst = _write(tmp_path / "b.csv", ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type",
                                        "5,ChatGPT,472,18,490,Conversation log",
                                        "7.5,GPT-4,1000,0,1000,API log"])
    items = load_trace(burst)
    assert [(i.t_s, i.input_tokens, i.output_tokens) for i in items] == [(0.0, 472, 18), (2.5, 1000, 1)]


@pytest.mark.parametrize(("name", "lines", "problem"), [
    ("a.jsonl", ['{"timestamp": 0, "input_tokens": 5, "output_tokens": 1}', "{oops"], ":2: invalid JSON"),
    ("b.jsonl", ['{"timestamp": -1, "input_tokens": 5, "output_tokens": 1}'], ":1: timestamp must be"),
    ("c.jsonl", ['{"timestamp": 1, "input_tokens": 0, "output_tokens": 1}'], ":1: input_tokens must be"),
    ("d.jsonl", ["", '{"timestamp": 1, "input_length": 5, "output_length": 2, "hash_ids": [-1]}'],
     ":2: hash_ids must be"),
    ("e.csv", ["Timestamp,Request tokens,Response tokens", "1,5,2", "x,5,2"], ":3: Timestamp must be a number"),
    ("f.csv", ["Time,Request tokens", "1,5"], ":1: BurstGPT CSV needs"),
    ("g.jsonl", [""], ": no requests"),
])
def test_bad_trace_lines_name_file_and_line(tmp_path: Path, name: str, lines: list[str], problem: str) -> None:
    path = _write(tmp_path / name, lines)
    with pytest.raises(TraceError, match=".*") as info:
        load_trace(path)
    assert str(info.value).startswith(str(path)) and problem in str(info.value)


def test_replay_splits_the_trace_over_workers(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [json.dumps({"timestamp": i, "input_tokens": 10, "output_tokens": 2})
                                         for i in range(7)])
    items = load_trace(path)
    parts = [replay_times(items, speed=2.0, worker=w, workers=3) for w in range(3)]
    assert sorted(t for part in parts for t, _ in part) == [LEAD_IN_S + i / 2 for i in range(7)]
    assert [len(p) for p in parts] == [3, 2, 2]


def _plan(tmp_path: Path, *argv: str) -> object:
    args = build_parser().parse_args(["load", "--config", str(REPO / "examples/mock.yaml"), *argv])
    args.out = str(tmp_path / "run")
    return plan_run(args)


def test_bad_trace_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", ['{"timestamp": 0, "input_tokens": 5, "output_tokens": 1}',
                                           '{"timestamp": 1, "input_tokens": "many", "output_tokens": 1}'])
    with pytest.raises(UsageError, match=rf"{path}:2: input_tokens must be a whole number"):
        _plan(tmp_path, "--trace", str(path))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("argv", "problem"), [
    (["--burstiness", "0.5"], "--burstiness does not apply to --shape fixed"),
    (["--shape", "rate", "--rate", "2", "--arrival", "constant", "--burstiness", "2"], "does not combine"),
    (["--speed", "2"], "apply to a trace replay"),
    (["--input-lengths", "2000000"], "no input length fits"),
])
def test_option_errors(tmp_path: Path, argv: list[str], problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # no mock is listening there: the context comes from the config (and is absent: the plan falls back)
    monkeypatch.setenv("TOKENPULSE_MOCK_URL", "http://127.0.0.1:9/api/v1")
    if "--input-lengths" in argv:
        config = tmp_path / "c.yaml"
        text = (REPO / "examples/mock.yaml").read_text(encoding="utf-8").replace(
            "price: {prompt_per_mtok: 0.09, completion_per_mtok: 0.45}",
            "price: {prompt_per_mtok: 0.09, completion_per_mtok: 0.45}\n        context_length: 1000000")
        config.write_text(text, encoding="utf-8")
        args = build_parser().parse_args(["load", "--config", str(config), "--model",
                                          "nvidia/nemotron-3-super-120b-a12b", *argv])
        args.out = str(tmp_path / "run")
        with pytest.raises(UsageError, match=problem):
            plan_run(args)
        return
    with pytest.raises(UsageError, match=problem):
        _plan(tmp_path, *argv)


def test_discarded_arrivals_are_not_offered_load() -> None:
    """--max-requests reached under an arrival rate: arrivals still queued are forgotten, not counted as
    scheduled-but-never-sent (which the report reads as a target that could not keep up)."""
    from tokenpulse.load.arrivals import ArrivalQueue

    queue = ArrivalQueue(lambda _t: 1.0, share=1.0, poisson=False, seed=0, start_mono_ns=0)
    for t_ns in (1, 2, 3):
        queue._put(t_ns, None)
    assert queue.take_arrival(timeout=0) == (1, None)
    assert queue.discard_pending() == 2
    assert (queue.scheduled, queue.taken, queue.dropped) == (1, 1, 0)


def test_shared_prefix_larger_than_the_context_stops_the_run(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENPULSE_MOCK_URL", "http://127.0.0.1:9/api/v1")  # no listing: the config's context
    config = tmp_path / "c.yaml"
    config.write_text((REPO / "examples/shared-prefix.yaml").read_text(encoding="utf-8").replace(
        "price: {prompt_per_mtok: 0.09, completion_per_mtok: 0.45}",
        "price: {prompt_per_mtok: 0.09, completion_per_mtok: 0.45}\n        context_length: 4096"), encoding="utf-8")
    args = build_parser().parse_args(["load", "--config", str(config)])
    args.out = str(tmp_path / "run")
    with pytest.raises(UsageError, match="4224 prompt tokens and 32 output tokens do not fit"):
        plan_run(args)
