"""Synthetic run folders in the real record schema, for the report tests (no Locust, no network)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tokenpulse.runfolder.schedule import build_schedule

T0 = 1_800_000_000.0
SLO = {"ttft_s": 1.0, "tpot_s": 0.05}
MODELS = ("nvidia/nemotron-3-super-120b-a12b", "meta-llama/llama-3.3-70b-instruct")


def record(start: float, *, ttft: float, gap: float = 0.02, tokens: int = 20, step: int = 0, phase: str = "measure",
           provider: str = "swiftinfer", model: str = MODELS[0], outcome: str = "ok",
           queue_wait: float | None = None) -> dict[str, Any]:
    times = [round(ttft + i * gap, 6) for i in range(tokens)]
    return {"v": 1, "outcome": outcome, "error_class": None if outcome == "ok" else outcome, "ttfb_s": ttft / 2,
            "ttft_s": ttft, "ttfc_s": ttft, "e2e_s": times[-1] + 0.001, "tpot_s": gap,
            "output_tokens_per_s": (tokens - 1) / max(times[-1] - times[0], 1e-6), "prompt_tokens": 64,
            "output_tokens": tokens, "reasoning_tokens": 0, "tokens_estimated": False, "token_times_s": times,
            "start_time": T0 + start, "t_s": start, "step": step, "phase": phase, "endpoint": "mock",
            "model": model, "target_provider": provider, "queue_wait_s": queue_wait, "estimated_cost_usd": 1e-5}


def closed_loop(levels: Sequence[int], *, step_s: float = 20.0, warmup_s: float = 1.0,
                capacity: Callable[[str, str], int] = lambda provider, model: 10**6,
                targets: Sequence[tuple[str, str]] = (("swiftinfer", MODELS[0]),), seed: int = 1,
                ttft: float = 0.2, jitter: float = 0.05) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(meta, records) of a sweep (or a fixed run, one level) of closed-loop users per target: a target
    with `capacity` slots makes every request take users/capacity times as long once it is full."""
    if len(levels) == 1:
        schedule = build_schedule("fixed", users=levels[0], spawn_rate=1000, run_time_s=step_s, warmup_s=warmup_s)
    else:
        schedule = build_schedule("sweep", users=1, spawn_rate=1000, run_time_s=0, levels=[float(x) for x in levels],
                                  step_s=step_s, warmup_s=warmup_s)
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for step in schedule.steps:
        for provider, model in targets:
            slow = max(1.0, step.users / capacity(provider, model))
            for u in range(step.users):
                t = step.start_s + 0.01 * u
                while True:
                    first = ttft + rng.random() * jitter
                    r = record(t, ttft=first * slow, gap=0.02 * slow, step=step.index, provider=provider, model=model,
                               phase="warmup" if t < step.measure_start_s else "measure")
                    if t + r["e2e_s"] > step.end_s:
                        break
                    records.append(r)
                    t += r["e2e_s"]
    records.sort(key=lambda r: r["start_time"])
    names = [p if len({q for q, _ in targets}) == len(targets) else f"{m}/{p}" for p, m in targets]
    meta = {"run_id": "synthetic", "run_start": T0, "run_end": T0 + schedule.total_s, "schedule": schedule.to_dict(),
            "targets": [{"index": i, "name": names[i], "endpoint": "mock", "model": m, "provider": p, "price": None}
                        for i, (p, m) in enumerate(targets)],
            "slo": SLO, "stop_reason": "completed", "workers": 1,
            "options": {"shape": schedule.kind, "users": max(levels), "levels": list(levels)},
            "workload": {"kind": "synthetic", "input_tokens_mean": 64, "output_tokens_mean": 20,
                         "reasoning": {"enabled": False}},
            "locust": {"e2e_requests": len(records)}}
    return meta, records


def write_run(folder: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with open(folder / "records-local.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return folder
