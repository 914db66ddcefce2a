"""`tokenpulse report` on a run of 1,000,000 records: wall time and peak memory (the issue's bound: under
a minute and 2 GB).

Builds a run folder of synthetic records in the real schema (a recorder-made record of a 128-token
stream, `build_record`, written by `JsonlAppender`'s encoder), as a sweep of 5 levels across 2 targets
and 2 worker files, with realistic variation (TTFT, token gaps, a few errors and cancellations), then runs
`tokenpulse report RUN` in a child process and reads its peak RSS (`ru_maxrss` of the child) and wall time.
The folder is kept (`--keep`) or removed.

    .venv/bin/python benchmarks/report_scale.py [--records 1000000] [--tokens 128] [--dir /tmp/tp-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenpulse.core.recorder import StreamRecorder
from tokenpulse.runfolder.records import _encode_line, build_record
from tokenpulse.runfolder.schedule import build_schedule

T0 = 1_800_000_000.0
TARGETS = [("mock", "nvidia/nemotron-3-super-120b-a12b", "swiftinfer"),
           ("mock", "nvidia/nemotron-3-super-120b-a12b", "steadystack")]
LEVELS = [8.0, 16.0, 32.0, 64.0, 128.0]


def template(tokens: int) -> dict:
    """A real record (every field the recorder and the load test write) of a `tokens`-token stream."""
    t0 = 0
    rec = StreamRecorder(t0)
    rec.on_headers(t0 + 1_000_000, 200, [("content-type", "text/event-stream")])
    for i in range(tokens):
        chunk = {"id": "gen-1", "provider": "Bench", "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}]}
        rec.on_bytes(t0 + 100_000_000 + i * 20_000_000, b"data: " + json.dumps(chunk).encode() + b"\n\n")
    last = t0 + 100_000_000 + tokens * 20_000_000
    usage = {"choices": [], "usage": {"prompt_tokens": 256, "completion_tokens": tokens, "cost": 1e-5}}
    rec.on_bytes(last, b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    rec.on_eof(last + 1000)
    return build_record(rec.result(), start_time=T0, t_s=0.0, user_id=0, worker="local", step=0, level=8.0,
                        phase="measure", users=8, endpoint="mock", model=TARGETS[0][1], target_provider="swiftinfer",
                        queue_wait_s=None, turn=0, input_tokens_target=256, output_tokens_target=tokens,
                        estimated_cost_usd=6.0e-5)


def build(folder: Path, n: int, tokens: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    step_s = 600.0
    schedule = build_schedule("sweep", users=1, spawn_rate=1000, run_time_s=0, levels=LEVELS, step_s=step_s,
                              warmup_s=10)
    base = template(tokens)
    rng = random.Random(1)
    files = [open(folder / f"records-w{i}-bench-{i}.jsonl", "wb") for i in range(2)]
    per_step = n // len(LEVELS)
    try:
        for i in range(n):
            step = schedule.steps[min(i // per_step, len(LEVELS) - 1)]
            t = step.start_s + (i % per_step) * step.duration_s / per_step
            endpoint, model, provider = TARGETS[i % 2]
            ttft = 0.1 + rng.expovariate(10.0)
            gap = 0.02 * (1.0 + 0.2 * rng.random())
            r = dict(base)
            times = [round(ttft + k * gap + rng.random() * 0.002, 6) for k in range(tokens)]
            r.update(start_time=round(T0 + t, 6), t_s=round(t, 6), user_id=i % 128, step=step.index, level=step.level,
                     users=step.users, phase="warmup" if t < step.measure_start_s else "measure", endpoint=endpoint,
                     model=model, target_provider=provider, ttft_s=round(ttft, 6), ttfc_s=round(ttft, 6),
                     ttfb_s=round(ttft * 0.5, 6), token_times_s=times, e2e_s=round(times[-1] + 0.001, 6),
                     tpot_s=round((times[-1] - times[0]) / (tokens - 1), 6),
                     output_tokens_per_s=round((tokens - 1) / (times[-1] - times[0]), 3))
            roll = rng.random()
            if roll < 0.01:
                r.update(outcome="error", error_class="server_error", token_times_s=[], output_tokens=None,
                         ttft_s=None, ttfc_s=None, tpot_s=None, output_tokens_per_s=None)
            elif roll < 0.012:
                cut = tokens // 3
                r.update(outcome="cancelled", error_class="cancelled", token_times_s=times[:cut], output_tokens=cut,
                         e2e_s=times[cut - 1], tpot_s=None, output_tokens_per_s=None)
            files[i % 2].write(_encode_line(r))
    finally:
        for f in files:
            f.close()
    meta = {"run_id": "report-scale", "run_start": T0, "run_end": T0 + schedule.total_s,
            "schedule": schedule.to_dict(), "workers": 2, "stop_reason": "completed",
            "targets": [{"index": i, "name": p, "endpoint": e, "model": m, "provider": p, "price": None}
                        for i, (e, m, p) in enumerate(TARGETS)],
            "slo": {"ttft_s": 2.0, "tpot_s": 0.05},
            "options": {"shape": "sweep", "levels": LEVELS}, "workload": {"output_tokens_mean": tokens},
            "locust": {"e2e_requests": n}}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=128, help="output tokens (token events) per record")
    parser.add_argument("--dir", default="/tmp/tokenpulse-report-scale")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    t = time.perf_counter()
    build(folder, args.records, args.tokens)
    size = sum(f.stat().st_size for f in folder.glob("records-*.jsonl"))
    print(f"built {args.records:,} records of {args.tokens} tokens ({size / 1e9:.2f} GB of JSONL) in "
          f"{time.perf_counter() - t:.0f} s")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tokenpulse", "report", str(folder)], env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:])
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8")) if proc.returncode == 0 else {}
    print(f"tokenpulse report: exit {proc.returncode}, wall {wall:.1f} s, peak RSS {peak_kb / 1024:.0f} MiB "
          f"(bound: 60 s, 2048 MiB); records read {summary.get('run', {}).get('records')}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
