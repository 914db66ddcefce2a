"""CPU per finished request of a load test: result, JSONL record and its encoding, side by side with
the straightforward way of doing the same (pure CPU, no sockets).

Why: every request's end costs the Locust process this work at once, and users that finish together
(a spawn batch against a server without jitter) pay it in the same millisecond, delaying every other
stream's tokens (docs/benchmarks.md, "One Locust worker"). Variants, on the same recorded 150-token
streams with ground truth, interleaved over several rounds (medians):

- tokenpulse: `StreamRecorder.result()` (series rounded once, in integer arithmetic, as they are made),
  `build_record`, and `dumps_compact(newline=True)` (orjson);
- straightforward: the same result, then `round()` over both series of the record and `json.dumps`.

    .venv/bin/python benchmarks/record_cost.py [--requests 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenpulse.core.recorder import StreamRecorder
from tokenpulse.runfolder.records import _encode_line, build_record

CONTEXT = {"start_time": 1764000000.123456, "t_s": 12.5, "user_id": 7, "worker": "local", "step": 1, "level": 64,
           "phase": "measure", "users": 64, "endpoint": "mock", "model": "bench/paced-stream",
           "target_provider": "bench", "queue_wait_s": None, "turn": 0, "input_tokens_target": 32,
           "output_tokens_target": 150, "estimated_cost_usd": None}


def recorded(tokens: int) -> StreamRecorder:
    """A finished recorder fed a 150-token stream with ground truth, one event per read, 20 ms apart."""
    t0 = time.monotonic_ns()
    rec = StreamRecorder(t0)
    rec.on_headers(t0 + 1_000_000, 200, [("content-type", "text/event-stream")])
    for i in range(tokens):
        sent = t0 + 100_000_000 + i * 20_000_000
        chunk = {"id": "gen-1", "provider": "Bench", "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}],
                 "tokenpulse_truth": {"recv_ns": t0 + 500_000, "sent_ns": sent}}
        rec.on_bytes(sent + 137_913, b"data: " + json.dumps(chunk).encode() + b"\n\n")
    last = t0 + 100_000_000 + tokens * 20_000_000
    usage = {"choices": [], "usage": {"prompt_tokens": 32, "completion_tokens": tokens, "cost": 1e-5}}
    rec.on_bytes(last, b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    rec.on_eof(last + 1000)
    return rec


def ours(rec: StreamRecorder) -> bytes:
    return _encode_line(build_record(rec.result(), **CONTEXT))


def straightforward(rec: StreamRecorder) -> bytes:
    record = build_record(rec.result(), **CONTEXT)
    record["token_times_s"] = [round(t, 6) for t in record["token_times_s"]]
    record["truth_lags_s"] = [round(t, 7) for t in record["truth_lags_s"]]
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    recorders = [recorded(args.tokens) for _ in range(args.requests)]
    variants = {"tokenpulse": ours, "straightforward": straightforward}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t = time.process_time()
            for rec in recorders:
                fn(rec)
            times[name].append((time.process_time() - t) / args.requests)
    mine, plain = statistics.median(times["tokenpulse"]), statistics.median(times["straightforward"])
    print(f"{args.requests} requests of {args.tokens} tokens with ground truth, median of {args.rounds} rounds")
    print(f"straightforward (round() + json.dumps)   {plain * 1e6:6.1f} us per request")
    print(f"tokenpulse (integer rounding + orjson)   {mine * 1e6:6.1f} us per request   {plain / mine:.1f}x less")


if __name__ == "__main__":
    main()
