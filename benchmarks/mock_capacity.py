"""How many paced SSE streams the mock serves from one process, and how late its chunks arrive.

Why: the mock is the default target of every tokenpulse load test, so its own limits must be known;
a mock that falls behind would be blamed on the client or the "provider". This starts the mock as a
subprocess (MockServerProcess, pinned to one core when the machine has two) with a farm of one
fault-free provider (TTFT 100 ms, 50 tokens/s, 150 tokens, 1 token per chunk, 4,096 slots), drives N
concurrent keep-alive connections that request stream after stream from one raw-asyncio client
(uvloop, pinned to another core), and reports per level:

- chunks/s: data events received per second (role, tokens, finish and usage chunks);
- mock CPU: the mock process's CPU time over wall time (psutil), 100 % = one core;
- client CPU: the same for this process, so a saturated client is visible (DESIGN.md §6);
- lag p50/p99: receipt time (time.monotonic_ns() when the bytes arrived) minus the chunk's
  `tokenpulse_truth.sent_ns`, i.e. server write -> client read, including both event loops' delays.

Loopback only, bounded (about 10 s per level). Run: `.venv/bin/python benchmarks/mock_capacity.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenpulse.mock import MockServerProcess, dump_farm
from tokenpulse.mock.farm import farm_from_data
from tokenpulse.mock.runner import new_event_loop, raise_fd_limit

MODEL = "bench/paced-stream"
_SENT = b'"sent_ns":'
_END = b"data: [DONE]\n\n\r\n0\r\n\r\n"


def bench_farm_yaml(rate: float, tokens: int) -> str:
    data = {"seed": 1, "credit_limit_usd": None, "models": {MODEL: {
        "name": "Benchmark stream", "context_length": 8192, "reasoning": False,
        "pricing": {"prompt": 0.1, "completion": 0.1},
        "output_tokens": {"min": tokens, "max": tokens},
        "providers": {"bench": {"name": "Bench", "profile": {
            "ttft": {"median_ms": 100, "p99_ms": 100},
            "decode": {"tokens_per_s": rate, "request_jitter": 0, "chunk_jitter": 0,
                       "tokens_per_chunk": 1},
            "capacity": 4096, "keepalive_ms": 0,
        }}},
    }}}
    return dump_farm(farm_from_data(data, "benchmark farm"))


@dataclass
class Window:
    """What the connections record while the measurement window is open."""

    open: bool = False
    events: int = 0
    lags_ns: list[int] = field(default_factory=list)
    streams_done: int = 0
    errors: int = 0


class StreamClient(asyncio.Protocol):
    """One keep-alive connection requesting streams back to back; stamps bytes on arrival and reads
    `sent_ns` out of each complete event without decoding JSON (the client must stay cheap)."""

    def __init__(self, request: bytes, window: Window) -> None:
        self.request = request
        self.window = window
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buf + data
        w = self.window
        pos = 0
        while True:
            i = buf.find(_SENT, pos)
            if i < 0:
                break
            j = buf.find(b"}", i)
            if j < 0:
                break
            if w.open:
                w.events += 1
                w.lags_ns.append(now - int(buf[i + len(_SENT):j]))
            pos = j
        if buf.find(_END, pos) >= 0:
            if w.open:
                w.streams_done += 1
            buf = b""
            assert self.transport is not None
            self.transport.write(self.request)
        elif buf.startswith(b"HTTP/1.1 ") and not buf.startswith(b"HTTP/1.1 200"):
            w.errors += 1
        self.buf = buf[pos:] if buf else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _request(host: str, port: int, tokens: int) -> bytes:
    body = json.dumps({"model": MODEL, "stream": True, "max_tokens": tokens, "ignore_eos": True,
                       "messages": [{"role": "user", "content": "benchmark"}]}).encode()
    return (f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nX-Tokenpulse-Truth: 1\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _pct(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1e6


async def run_level(port: int, streams: int, mock: psutil.Process,
                    args: argparse.Namespace) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    window = Window()
    request = _request("127.0.0.1", port, args.tokens)
    transports: list[asyncio.Transport] = []
    ramp = 0.5
    for _ in range(streams):  # stagger connects: streams start out of phase, as real users do
        transport, _protocol = await loop.create_connection(
            lambda: StreamClient(request, window), "127.0.0.1", port)
        transports.append(transport)
        await asyncio.sleep(ramp / streams)
    await asyncio.sleep(args.warmup)

    me = psutil.Process()
    mock_cpu0, my_cpu0 = mock.cpu_times(), me.cpu_times()
    t0 = time.monotonic()
    window.open = True
    await asyncio.sleep(args.window)
    window.open = False
    wall = time.monotonic() - t0
    mock_cpu1, my_cpu1 = mock.cpu_times(), me.cpu_times()
    for t in transports:
        t.abort()
    await asyncio.sleep(1.0)  # let the mock cancel the abandoned streams before the next level

    lags = sorted(window.lags_ns)
    return {
        "streams": streams,
        "chunks_s": window.events / wall,
        "expected_s": streams * args.rate,
        "mock_cpu": 100 * ((mock_cpu1.user + mock_cpu1.system) - (mock_cpu0.user + mock_cpu0.system)) / wall,
        "client_cpu": 100 * ((my_cpu1.user + my_cpu1.system) - (my_cpu0.user + my_cpu0.system)) / wall,
        "p50": _pct(lags, 0.50),
        "p99": _pct(lags, 0.99),
        "streams_done": window.streams_done,
        "errors": window.errors,
    }


def _pin(pid: int, cpu: int) -> bool:
    try:
        os.sched_setaffinity(pid, {cpu})
        return True
    except (AttributeError, OSError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="250,500,1000", help="concurrent streams per level")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per stream")
    parser.add_argument("--tokens", type=int, default=150, help="tokens per stream")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=6.0, help="measured seconds per level")
    parser.add_argument("--no-pin", action="store_true", help="do not pin mock and client to cores")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    raise_fd_limit()

    with tempfile.TemporaryDirectory() as tmp:
        farm_path = Path(tmp) / "bench-farm.yaml"
        farm_path.write_text(bench_farm_yaml(args.rate, args.tokens))
        with MockServerProcess(config_path=farm_path) as srv:
            pinned = (not args.no_pin and (os.cpu_count() or 1) >= 2
                      and _pin(srv.pid, 1) and _pin(0, 0))
            mock = psutil.Process(srv.pid)
            print(f"mock pid {srv.pid} at {srv.base_url}; {args.rate:g} tok/s x {args.tokens} tokens per "
                  f"stream, TTFT 100 ms; window {args.window:g} s after {args.warmup:g} s warm-up; "
                  f"{'mock on cpu 1, client on cpu 0' if pinned else 'not pinned'}")
            header = (f"{'streams':>7} {'chunks/s':>9} {'expected':>9} {'mock CPU':>9} {'client CPU':>10} "
                      f"{'lag p50':>8} {'lag p99':>8} {'streams done':>12} {'errors':>6}")
            print(header)
            print("-" * len(header))
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                for n in levels:
                    r = runner.run(run_level(srv.port, n, mock, args))
                    print(f"{r['streams']:>7} {r['chunks_s']:>9.0f} {r['expected_s']:>9.0f} "
                          f"{r['mock_cpu']:>8.1f}% {r['client_cpu']:>9.1f}% {r['p50']:>6.2f}ms "
                          f"{r['p99']:>6.2f}ms {r['streams_done']:>12} {r['errors']:>6}", flush=True)
    print("expected = streams x tokens/s (token chunks only; role, finish and usage chunks add ~2 %). "
          "lag = client receipt - server sent_ns; a client near 100 % CPU inflates it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
