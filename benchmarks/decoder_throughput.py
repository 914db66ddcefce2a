"""Decoder + recorder events per second per core (pure CPU), against a bare split + json.loads loop.

The yardstick does the least any correct client must do per event (find the event boundary, parse the
JSON); the ratio says what our WHATWG-correct decoder and the recorder's token logic cost on top.
Runs the variants interleaved, several rounds, and reports medians, so drift on a shared machine hits
all of them alike. Pure CPU: no sockets.

    python benchmarks/decoder_throughput.py [--events 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from monitor.recorder import StreamRecorder
from monitor.sse import SSEDecoder

HEADERS = {"content-type": "text/event-stream"}


def make_stream(events: int) -> list[bytes]:
    """An OpenRouter-shaped stream, cut into reads the way a socket delivers a paced stream (one event
    per read, with an occasional read carrying two)."""
    reads: list[bytes] = [b": OPENROUTER PROCESSING\n\n"]
    for i in range(events):
        obj = {"id": "gen-123", "provider": "SwiftInfer", "model": "nvidia/nemotron-3-super-120b-a12b",
               "object": "chat.completion.chunk", "created": 1764000000,
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": f" tok{i % 97}"},
                            "finish_reason": None, "native_finish_reason": None, "logprobs": None}]}
        event = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        if i % 10 == 9:
            reads[-1] += event
        else:
            reads.append(event)
    usage = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": events}}
    reads.append(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    return reads


def bare(reads: list[bytes]) -> int:
    buf = b""
    n = 0
    for data in reads:
        buf += data
        *complete, buf = buf.split(b"\n\n")
        for block in complete:
            if block.startswith(b"data: ") and block != b"data: [DONE]":
                json.loads(block[6:])
                n += 1
    return n


def decoder_only(reads: list[bytes]) -> int:
    decoder = SSEDecoder()
    n = 0
    for data in reads:
        n += len(decoder.feed(data))
    return n


def decoder_recorder(reads: list[bytes]) -> int:
    clock = time.monotonic_ns
    rec = StreamRecorder(clock())
    rec.on_headers(clock(), 200, HEADERS)
    for data in reads:
        rec.on_bytes(clock(), data)
    rec.on_eof(clock())
    return rec.result().chunk_count


def measure(fn: Callable[[list[bytes]], int], reads: list[bytes], events: int) -> float:
    start = time.process_time()
    fn(reads)
    return events / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    reads = make_stream(args.events)
    variants = {"bare split + json.loads": bare, "SSEDecoder": decoder_only,
                "SSEDecoder + StreamRecorder": decoder_recorder}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            samples[name].append(measure(fn, reads, args.events))
    base = statistics.median(samples["bare split + json.loads"])
    print(f"{'variant':30} {'events/s/core (median)':>24} {'vs bare':>9} {'CPU/event':>10}")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"{name:30} {med:>24,.0f} {med / base:>8.2f}x {1e6 / med:>8.2f}us")


if __name__ == "__main__":
    main()
