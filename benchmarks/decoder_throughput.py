"""Decoder + recorder events per second per core (pure CPU), against a bare split + json.loads loop.

The yardstick does the least any correct client must do per event (find the event boundary, parse the
JSON); the ratio says what our WHATWG-correct decoder and the recorder's token logic cost on top.
Runs the variants interleaved, several rounds, and reports medians, so drift on a shared machine hits
all of them alike. Pure CPU: no sockets.

A second table feeds a newline-less body (one line that never ends, in 16 KiB reads: what a hostile or
broken server can send until the response cap) at two sizes, 4x apart. The yardstick appends to a
bytearray and looks for a newline in each read only, the least a correct reader does; the last column
is the CPU per MiB at the larger size over that at the smaller: 1.0 is linear, 4.0 quadratic.

    python benchmarks/decoder_throughput.py [--events 20000] [--rounds 7] [--no-newline-mib 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from tokenpulse.core.recorder import StreamRecorder
from tokenpulse.core.sse import SSEDecoder

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


READ_SIZE = 16 * 1024


def bare_no_newline(reads: list[bytes]) -> int:
    buf = bytearray()
    for data in reads:
        if data.find(b"\n") != -1:
            break
        buf += data
    return len(buf)


def decoder_no_newline(reads: list[bytes]) -> int:
    decoder = SSEDecoder()
    for data in reads:
        decoder.feed_data(data)
    return int(decoder.pending_data)


def recorder_no_newline(reads: list[bytes]) -> int:
    rec = StreamRecorder(0, max_response_bytes=len(reads) * READ_SIZE + 1)
    rec.on_headers(1, 200, HEADERS)
    for data in reads:
        rec.on_bytes(2, data)
    rec.on_eof(3)
    return rec.result().bytes_received


def no_newline_table(mib: int, rounds: int) -> None:
    """CPU per MiB of a newline-less body at `mib` / 4 and `mib` MiB, and how it grows."""
    sizes = (max(1, mib // 4), mib)
    variants = {"bytearray + find": bare_no_newline, "SSEDecoder": decoder_no_newline,
                "SSEDecoder + StreamRecorder": recorder_no_newline}
    read = b"x" * READ_SIZE
    streams = {size: [read] * (size * 1024 * 1024 // READ_SIZE) for size in sizes}
    samples: dict[tuple[str, int], list[float]] = {(n, s): [] for n in variants for s in sizes}
    for _ in range(rounds):
        for size in sizes:
            for name, fn in variants.items():
                start = time.process_time()
                fn(streams[size])
                samples[(name, size)].append((time.process_time() - start) / size)
    small, large = sizes
    print(f"\nnewline-less body, {READ_SIZE // 1024} KiB reads: CPU ms per MiB (median)")
    print(f"{'variant':30} {f'{small} MiB':>10} {f'{large} MiB':>10} {'growth':>8} {'vs bare':>9}")
    base = statistics.median(samples[("bytearray + find", large)])
    for name in variants:
        a = statistics.median(samples[(name, small)])
        b = statistics.median(samples[(name, large)])
        print(f"{name:30} {a * 1e3:>10.2f} {b * 1e3:>10.2f} {b / a:>7.2f}x {b / base:>8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-newline-mib", type=int, default=16,
                        help="larger size of the newline-less body, MiB (0: skip that table)")
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
    if args.no_newline_mib > 0:
        no_newline_table(args.no_newline_mib, max(3, args.rounds // 2))


if __name__ == "__main__":
    main()
