"""`tokenpulse report` on a run of 1,000,000 records: wall time and peak memory (the issue's bound: under
a minute and 2 GB).

Builds a run folder of synthetic records in the real schema (a recorder-made record of a 128-token
stream, `build_record`, written by `JsonlAppender`'s encoder), as a sweep of 5 levels across 2 targets
and 2 worker files, with realistic variation (TTFT, token gaps, a few errors and cancellations), then runs
`tokenpulse report RUN` in a child process and reads its wall time and peak memory: the largest sum of
the resident sets of the report process and its reading processes (sampled every 50 ms; reading.py
forks one per CPU), and the CPU time it took (user + system of the report process and its readers:
on a machine other work shares, wall time says how busy the machine was, CPU time what the report cost).

`--baseline DIR` (a checkout of an earlier revision: `git worktree add --detach DIR REV`) runs that
tree's report on the same folder right after this one's, `--repeat` times alternately, so the two are
measured side by side under the same machine load. The folder is kept (`--keep`, and `--reuse` reads a
kept one again instead of building it) or removed.

    .venv/bin/python benchmarks/report_scale.py [--records 1000000] [--tokens 128] [--dir /tmp/tp-scale]
    .venv/bin/python benchmarks/report_scale.py --baseline /tmp/tp-main --repeat 2 --keep
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
import threading
import time
from pathlib import Path

import psutil

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


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_report(tree: Path, folder: Path) -> dict:
    """`tokenpulse report FOLDER` from the checkout `tree`: exit code, wall time, peak memory."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "report", str(folder)], env=env, cwd=tree,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the readers were waited for by the report
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(out[-2000:], err[-4000:])
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8")) if proc.returncode == 0 else {}
    return {"exit": proc.returncode, "wall_s": wall, "cpu_s": cpu, "tree_peak_mib": peak[0] / 2**20,
            "records": summary.get("run", {}).get("records")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=128, help="output tokens (token events) per record")
    parser.add_argument("--dir", default="/tmp/tokenpulse-report-scale")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    parser.add_argument("--reuse", action="store_true", help="report on the folder --keep left (no build)")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="a checkout of an earlier revision, "
                        "whose report runs right after this one's on the same folder")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (this report[, baseline report])")
    args = parser.parse_args()
    folder = Path(args.dir)
    if not (args.reuse and (folder / "meta.json").exists()):
        shutil.rmtree(folder, ignore_errors=True)
        t = time.perf_counter()
        build(folder, args.records, args.tokens)
        print(f"built {args.records:,} records of {args.tokens} tokens in {time.perf_counter() - t:.0f} s")
    size = sum(f.stat().st_size for f in folder.glob("records-*.jsonl"))
    print(f"run folder {folder}: {size / 1e9:.2f} GB of JSONL; load average {os.getloadavg()[0]:.2f}")
    trees = [("tokenpulse", Path(__file__).resolve().parents[1])] + ([("baseline", args.baseline)]
                                                                     if args.baseline else [])
    for round_no in range(1, args.repeat + 1):
        for name, tree in trees:
            r = run_report(tree, folder)
            print(f"round {round_no} {name:>10}: exit {r['exit']}, wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, "
                  f"peak RSS {r['tree_peak_mib']:.0f} MiB with its readers (bound: 60 s, 2048 MiB); records read "
                  f"{r['records']}; load average {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
