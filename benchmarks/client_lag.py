"""Client lag and TTFT error of each client stack, side by side in one run, against the mock's truth.

For each concurrency level, each client variant runs in its own process pinned to one core (the mock
runs in another process on the other core) and opens N concurrent streams of 50 tokens/s (one token
per chunk every 20 ms, TTFT 100 ms, 150 tokens). The mock stamps every chunk with its send time
(`X-Tokenpulse-Truth: 1`); lag = receipt time - send time (both CLOCK_MONOTONIC), TTFT error =
measured TTFT - the server's own TTFT. Variants:

- bare: raw asyncio + uvloop protocol, regex instead of JSON: the practical floor (the yardstick);
- gevent-bare: the same per-read work (`_BareParser`) on gevent, every socket read from the hub through
  tokenpulse's `ReadMultiplexer`: what the Locust path's event loop costs before any of our parsing;
- async: `AsyncStreamDriver` (the prober's and `measure`'s driver) with its default client (httpx over
  `LeanTransport`, which pushes each read into the driver), uvloop;
- async-httpcore: the same driver over httpx's own transport (one httpcore pool), uvloop;
- gevent-raw: `SyncStreamDriver` + the raw-socket transport (the Locust default), whose reads carry the
  kernel's receive time (SO_TIMESTAMPNS) and are pushed from the hub by one epoll set (readmux.py);
- gevent-raw-pull: the same transport with each request's greenlet waiting for and reading its own
  socket (`multiplex=False`): the difference is what the multiplexer saves;
- gevent-raw-userstamp: the raw transport stamping each read when it returns, as every other variant
  does: the difference to gevent-raw is the time a read waited for the process to get to it;
- gevent-raw-compiled (not in the default set; needs Cython installed): gevent-raw with the per-event
  modules (recorder, SSE and chunked decoders, framing, sync driver, raw transport, multiplexer)
  compiled unchanged by Cython in a temporary copy of the package: how much of the gap to the bare
  reader is the interpreter running our own code.

Every client process freezes its start-up heap out of the garbage collector after the warm-up stream,
as Locust workers and the prober do (tokenpulse/gctune.py).

`--server lean` replaces the mock by `serve_lean`: a paced server that does nothing but send these
streams (the mock's own event encoder, one timer per chunk, uvloop), so that past ~1,000 streams,
where the mock reaches its one-core limit and sends late and in bursts, the clients' lag is still
their own. Same bytes on the wire as the mock's.

    python benchmarks/client_lag.py [--levels 64,256,512,1024] [--variants ...] [--tokens 150] [--repeat 1]

Loopback only; every run is bounded (one round of streams per level and variant).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("bare", "gevent-bare", "async", "async-httpcore", "gevent-raw", "gevent-raw-pull", "gevent-raw-userstamp")
#: The modules every SSE event passes through on the Locust path, for the gevent-raw-compiled variant.
HOT_PATH = ("core/recorder.py", "core/sse.py", "core/wire/chunked.py", "core/wire/framing.py",
            "transports/gevent_loop/driver.py", "transports/gevent_loop/rawsocket.py",
            "transports/gevent_loop/readmux.py")
MODEL = "bench/paced-stream"
FARM = """
seed: 7
credit_limit_usd: null
models:
  bench/paced-stream:
    name: Paced stream for client benchmarks
    context_length: 8192
    pricing: {prompt: 0.1, completion: 0.1}
    output_tokens: {min: %(tokens)d, max: %(tokens)d}
    providers:
      bench:
        name: Bench
        profile:
          ttft: {median_ms: 100, p99_ms: 100}
          decode: {tokens_per_s: 50, request_jitter: 0, chunk_jitter: 0, tokens_per_chunk: 1}
          capacity: 100000
          keepalive_ms: 0
"""


def pct(values: list[float], q: float) -> float:
    """tokenpulse's one percentile (q in 0..100, linear interpolation), NaN for no values."""
    from tokenpulse.core.stats import percentile

    found = percentile(sorted(values), q)
    return float("nan") if found is None else found


# ------------------------------------------------------------------------------------- workers
def _body(tokens: int) -> bytes:
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "go"}], "stream": True,
                       "max_tokens": tokens, "stream_options": {"include_usage": True}}).encode()


def _prepared(base_url: str, tokens: int):  # type: ignore[no-untyped-def]
    from tokenpulse.core.request import ChatRequest, prepare

    return prepare(base_url, ChatRequest(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                         max_tokens=tokens), want_ground_truth=True)


def _collect(results: list[Any]) -> dict[str, Any]:
    lags: list[float] = []
    ttft_err: list[float] = []
    ok = 0
    for r in results:
        if r.ok:
            ok += 1
        if r.truth_lags_s:
            lags.extend(r.truth_lags_s)
        if r.ttft_s is not None and r.truth_ttft_s is not None:
            ttft_err.append(r.ttft_s - r.truth_ttft_s)
    return {"ok": ok, "errors": len(results) - ok, "lags": lags, "ttft_err": ttft_err}


def worker_async(base_url: str, streams: int, tokens: int, stagger: float, client: str) -> dict[str, Any]:
    import asyncio

    import uvloop

    from tokenpulse.core.request import Timeouts
    from tokenpulse.gctune import freeze_setup_heap
    from tokenpulse.transports.asyncio_loop.driver import (
        AsyncStreamDriver,
        httpcore_async_client,
        new_async_client,
    )

    prepared = _prepared(base_url, tokens)

    async def main() -> list[Any]:
        make_client = httpcore_async_client if client == "httpcore" else new_async_client
        async with AsyncStreamDriver(make_client(max_connections=streams)) as driver:
            async def one(i: int) -> Any:
                await asyncio.sleep(stagger * i / streams)
                return await driver.run(prepared, Timeouts(ttft=30, idle=30, total=120))
            await one(0)  # warm-up: imports, first connection
            freeze_setup_heap()  # as the prober does once its targets are set up (tokenpulse/prober/service.py)
            clock = _Clock()
            results = await asyncio.gather(*(one(i) for i in range(streams)))
            timing.update(clock.stop())
            return results

    timing: dict[str, float] = {}
    return _collect(uvloop.run(main())) | timing


def worker_gevent(base_url: str, streams: int, tokens: int, stagger: float, transport: str) -> dict[str, Any]:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from tokenpulse.core.request import Timeouts
    from tokenpulse.gctune import freeze_setup_heap
    from tokenpulse.transports.gevent_loop import make_sync_transport
    from tokenpulse.transports.gevent_loop.driver import SyncStreamDriver

    prepared = _prepared(base_url, tokens)

    def one(i: int) -> Any:
        gevent.sleep(stagger * i / streams)
        if transport in ("raw-userstamp", "raw-pull"):
            from tokenpulse.transports.gevent_loop.rawsocket import RawSocketTransport
            driver = SyncStreamDriver(RawSocketTransport(kernel_stamps=transport != "raw-userstamp",
                                                         multiplex=transport != "raw-pull"))
        else:
            driver = SyncStreamDriver(make_sync_transport(transport))
        try:
            return driver.run(prepared, Timeouts(ttft=30, idle=30, total=120))
        finally:
            driver.close()

    gevent.spawn(one, 0).get()  # warm-up: imports, first connection
    freeze_setup_heap()  # as a Locust worker does once its users are set up (tokenpulse/load/session.py)
    clock = _Clock()
    jobs = [gevent.spawn(one, i) for i in range(streams)]
    gevent.joinall(jobs)
    timing = clock.stop()
    for job in jobs:
        if job.exception is not None:
            print(f"stream failed: {job.exception!r}", file=sys.stderr)
    return _collect([job.value for job in jobs if job.successful()]) | timing


_SENT = re.compile(rb'"sent_ns":(\d+)')
_RECV = re.compile(rb'"recv_ns":(\d+)')
_TOKEN = re.compile(rb'"content":"[^"]')


class _BareParser:
    """The bare readers' whole per-read work: stamp, split on blank lines, regex the truth out. Shared by
    the uvloop reader (as its protocol's `data_received`) and the gevent one (called from the hub)."""

    def __init__(self, lags: list[float], ttft_err: list[float], done_count: list[int]) -> None:
        self.buf = b""
        self.t0 = time.monotonic_ns()
        self.first = True
        self.lags, self.ttft_err, self.done_count = lags, ttft_err, done_count

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.buf += data
        *events, self.buf = self.buf.split(b"\n\n")
        for event in events:
            if not _TOKEN.search(event):
                if b"[DONE]" in event:
                    self.done_count[0] += 1
                continue
            sent = _SENT.search(event)
            if sent is None:
                continue
            self.lags.append((now - int(sent.group(1))) * 1e-9)
            if self.first:
                self.first = False
                recv = _RECV.search(event)
                if recv is not None:
                    self.ttft_err.append((now - self.t0) * 1e-9 - (int(sent.group(1)) - int(recv.group(1))) * 1e-9)


def _bare_request(base_url: str, tokens: int) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    body = _body(tokens)
    head = (f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            f"Content-Type: application/json\r\nX-Tokenpulse-Truth: 1\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head + body


def worker_bare(base_url: str, streams: int, tokens: int, stagger: float) -> dict[str, Any]:
    """Raw HTTP/1.1 over asyncio protocols (uvloop), each read handed to `_BareParser`."""
    import asyncio

    import uvloop

    host, port, wire = _bare_request(base_url, tokens)
    lags: list[float] = []
    ttft_err: list[float] = []
    done_count = [0, 0]

    class Reader(_BareParser, asyncio.Protocol):
        def __init__(self, finished: asyncio.Future[None]) -> None:
            super().__init__(lags, ttft_err, done_count)
            self.finished = finished

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(wire)  # type: ignore[attr-defined]

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.finished.done():
                self.finished.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def one(i: int) -> None:
            await asyncio.sleep(stagger * i / streams)
            finished: asyncio.Future[None] = loop.create_future()
            try:
                await loop.create_connection(lambda: Reader(finished), host, port)
                await finished
            except OSError:
                done_count[1] += 1

        await one(0)  # warm-up, then reset the tallies
        lags.clear()
        ttft_err.clear()
        done_count[:] = [0, 0]
        clock = _Clock()
        await asyncio.gather(*(one(i) for i in range(streams)))
        timing.update(clock.stop())

    timing: dict[str, float] = {}
    uvloop.run(main())
    ok = done_count[0]
    return {"ok": ok, "errors": streams - ok, "lags": lags, "ttft_err": ttft_err} | timing


def worker_gevent_bare(base_url: str, streams: int, tokens: int, stagger: float) -> dict[str, Any]:
    """The bare reader's work on the Locust path's event loop: gevent, every socket read from the hub
    through tokenpulse's `ReadMultiplexer`, each read handed to `_BareParser`. Against `bare` it
    prices the event loop; against `gevent-raw`, the transport, driver and recorder."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent import socket as gsocket
    from gevent.hub import Waiter

    from tokenpulse.transports.gevent_loop.readmux import multiplexer

    host, port, wire = _bare_request(base_url, tokens)
    lags: list[float] = []
    ttft_err: list[float] = []
    done_count = [0, 0]

    def one(i: int) -> None:
        gevent.sleep(stagger * i / streams)
        try:
            sock = gsocket.create_connection((host, port))
        except OSError:
            done_count[1] += 1
            return
        parser = _BareParser(lags, ttft_err, done_count)  # t0 once connected, as the uvloop reader's
        mux, waiter, loop = multiplexer(), Waiter(), gevent.get_hub().loop
        assert mux is not None, "gevent-bare needs epoll"
        raw = sock._sock  # type: ignore[attr-defined]
        fd, recv, feed = raw.fileno(), raw.recv, parser.data_received

        def on_ready() -> None:
            try:
                data = recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                feed(data)
            else:
                mux.discard(fd)
                loop.run_callback(waiter.switch, None)

        try:
            sock.sendall(wire)
            mux.add(fd, on_ready)
            waiter.get()
        finally:
            mux.discard(fd)
            sock.close()

    gevent.spawn(one, 0).get()  # warm-up, then reset the tallies
    lags.clear()
    ttft_err.clear()
    done_count[:] = [0, 0]
    clock = _Clock()
    gevent.joinall([gevent.spawn(one, i) for i in range(streams)])
    ok = done_count[0]
    return {"ok": ok, "errors": streams - ok, "lags": lags, "ttft_err": ttft_err} | clock.stop()


class _Clock:
    """CPU (user and kernel apart) and wall time of the measured round only (after imports and the
    warm-up stream). The split shows which part of a client's cost is its own code: every variant reads
    the same bytes from the same sockets, so the kernel's part is nearly the same for all."""

    def __init__(self) -> None:
        self.usage = resource.getrusage(resource.RUSAGE_SELF)
        self.wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        now = resource.getrusage(resource.RUSAGE_SELF)
        user, kernel = now.ru_utime - self.usage.ru_utime, now.ru_stime - self.usage.ru_stime
        return {"cpu": user + kernel, "cpu_user": user, "cpu_kernel": kernel, "wall": time.monotonic() - self.wall}


def serve_lean(tokens: int) -> None:
    """The `--server lean` process: listens on a loopback port (printed on stdout), answers every POST
    with one paced stream like the mock's bench provider (head at once, TTFT 100 ms, a token every
    20 ms, then finish, usage, [DONE]), and closes the connection after it. Runs until killed."""
    import asyncio

    import uvloop

    from tokenpulse.mock.wire import StreamEncoder

    done = b"data: [DONE]\n\n"
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n")
    usage = {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}

    class Stream(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0 or self.transport is None:
                return
            length = next((int(line.split(b":")[1]) for line in self.buf[:end].split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(self.buf) < end + 4 + length:
                return
            recv_ns = time.monotonic_ns()
            self.buf = b""
            encoder = StreamEncoder("gen-bench", int(time.time()), MODEL, "Bench", truth_recv_ns=recv_ns)
            transport, loop = self.transport, asyncio.get_running_loop()
            transport.write(head)
            start = recv_ns * 1e-9 + 0.1

            def send(i: int) -> None:
                if transport.is_closing():
                    return
                event = encoder.role() + encoder.content(" tok") if i == 0 else encoder.content(" tok")
                transport.write(b"%x\r\n%b\r\n" % (len(event), event))
                if i + 1 < tokens:
                    loop.call_at(start + (i + 1) * 0.02, send, i + 1)
                    return
                tail = encoder.finish("stop") + encoder.usage(usage) + done
                transport.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(tail), tail))
                transport.close()

            loop.call_at(start, send, 0)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Stream, "127.0.0.1", 0, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    uvloop.run(main())


class _LeanServer:
    """`serve_lean` in a child process; a context manager with `base_url` and `pid` (the caller pins it)."""

    def __init__(self, tokens: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-lean", "--tokens", str(tokens)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/api/v1"
        self.pid = self.proc.pid

    def __enter__(self) -> _LeanServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def run_worker(args: argparse.Namespace) -> None:
    from tokenpulse.mock.runner import raise_fd_limit

    raise_fd_limit()
    if args.worker == "bare":
        out = worker_bare(args.base_url, args.streams, args.tokens, args.stagger)
    elif args.worker == "gevent-bare":
        out = worker_gevent_bare(args.base_url, args.streams, args.tokens, args.stagger)
    elif args.worker.startswith("async"):
        transport = args.worker.removeprefix("async").lstrip("-") or "lean"
        out = worker_async(args.base_url, args.streams, args.tokens, args.stagger, transport)
    else:
        out = worker_gevent(args.base_url, args.streams, args.tokens, args.stagger,
                            args.worker.removeprefix("gevent-"))
    wall, cpu = out["wall"], out["cpu"]
    lags, errs = out["lags"], out["ttft_err"]
    import tokenpulse.core.recorder

    print(json.dumps({
        "variant": args.worker, "compiled": not tokenpulse.core.recorder.__file__.endswith(".py"),
        "streams": args.streams, "ok": out["ok"], "errors": out["errors"],
        "events": len(lags), "cpu_share": cpu / wall, "cpu_us_per_event": cpu / max(len(lags), 1) * 1e6,
        "user_us_per_event": out["cpu_user"] / max(len(lags), 1) * 1e6,
        "lag_p50_ms": pct(lags, 50) * 1e3, "lag_p99_ms": pct(lags, 99) * 1e3,
        "ttft_err_p50_ms": pct(errs, 50) * 1e3, "ttft_err_p99_ms": pct(errs, 99) * 1e3,
    }))


# ---------------------------------------------------------------------------------- orchestrator
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="64,256,512,1024")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds over which streams start")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds per level: every variant once per round, in order (interleaved, so a "
                             "slow moment of the machine hits all of them); the summary pairs each round")
    parser.add_argument("--server", choices=("mock", "lean"), default="mock",
                        help="what sends the streams: the mock farm (default) or a lean paced server that "
                             "keeps up past the mock's ~1,000-stream limit (serve_lean)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="a checkout of an earlier revision (git worktree add --detach DIR REV): each variant "
                             "named in --variants as VARIANT@baseline runs that checkout's own benchmark worker "
                             "and package, interleaved with today's, so before/after is one run")
    parser.add_argument("--json-out", help="also write the rows as JSON to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-lean", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    if args.serve_lean:
        serve_lean(args.tokens)
        return

    from tokenpulse.mock import MockServerProcess

    cores = sorted(os.sched_getaffinity(0))
    mock_core, client_core = ({cores[0]}, {cores[-1]}) if len(cores) > 1 else (set(cores), set(cores))
    rows: list[dict[str, Any]] = []
    variants = args.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        farm = Path(tmp) / "farm.yaml"
        farm.write_text(FARM % {"tokens": args.tokens})
        compiled_root = _compiled_copy(Path(tmp) / "compiled") if "gevent-raw-compiled" in variants else None
        if compiled_root is None and "gevent-raw-compiled" in variants:
            variants.remove("gevent-raw-compiled")
        server = (_LeanServer(args.tokens) if args.server == "lean"
                  else MockServerProcess(config_path=farm))
        with server as mock:
            os.sched_setaffinity(mock.pid, mock_core)
            for level, round_no, variant in ((level, round_no, variant)
                                             for level in [int(x) for x in args.levels.split(",")]
                                             for round_no in range(1, args.repeat + 1) for variant in variants):
                    worker, env, script = variant, None, __file__
                    if variant.endswith("@baseline"):
                        if not args.baseline:
                            raise SystemExit(f"{variant}: --baseline DIR is required")
                        worker = variant.removesuffix("@baseline")
                        script = str(Path(args.baseline) / "benchmarks" / "client_lag.py")
                        env = dict(os.environ, PYTHONPATH=str(Path(args.baseline).resolve()))
                    elif variant == "gevent-raw-compiled":
                        worker = "gevent-raw"
                        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                            p for p in (str(compiled_root), os.environ.get("PYTHONPATH")) if p))
                    cmd = [sys.executable, script, "--worker", worker, "--base-url", mock.base_url,
                           "--streams", str(level), "--tokens", str(args.tokens), "--stagger", str(args.stagger)]
                    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env,
                                          preexec_fn=lambda: os.sched_setaffinity(0, client_core))
                    if proc.returncode != 0:
                        print(f"{variant} @ {level}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                        continue
                    row = json.loads(proc.stdout.strip().splitlines()[-1])
                    if row["compiled"] != (variant == "gevent-raw-compiled"):
                        raise SystemExit(f"{variant} @ {level}: ran the {'compiled' if row['compiled'] else 'source'} "
                                         "modules, not the ones it names")
                    row["variant"], row["round"] = variant, round_no
                    rows.append(row)
                    print(f"{variant:>24} @ {level:>5}: lag p50 {row['lag_p50_ms']:6.2f} ms  p99 "
                          f"{row['lag_p99_ms']:7.2f} ms  TTFT err p50 {row['ttft_err_p50_ms']:6.2f} p99 "
                          f"{row['ttft_err_p99_ms']:7.2f} ms  CPU {row['cpu_share']:5.0%}  "
                          f"{row['cpu_us_per_event']:5.1f} us/event ({row['user_us_per_event']:4.1f} user)  "
                          f"ok {row['ok']}/{level}", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))
    print("\nvariant                   streams  lag p50   lag p99  TTFT err p50/p99     CPU   us/event  user  ok")
    for r in rows:
        print(f"{r['variant']:24} {r['streams']:>7}  {r['lag_p50_ms']:5.2f}ms {r['lag_p99_ms']:7.2f}ms  "
              f"{r['ttft_err_p50_ms']:6.2f}/{r['ttft_err_p99_ms']:7.2f}ms  {r['cpu_share']:5.0%}  "
              f"{r['cpu_us_per_event']:7.1f} {r['user_us_per_event']:5.1f}  {r['ok']}")
    if "bare" in variants and len(variants) > 1:
        print_efficiency(rows)


def print_efficiency(rows: list[dict[str, Any]]) -> None:
    """Per level and variant: the bare reader's CPU per event over the variant's, each round paired
    with the bare reader's run of the same round (side by side, minutes apart at most), as the median
    and range over rounds; and in how many rounds the variant kept lag p99 under 5 ms."""
    bare = {(r["streams"], r["round"]): r["cpu_us_per_event"] for r in rows if r["variant"] == "bare"}
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["variant"] != "bare" and (r["streams"], r["round"]) in bare:
            groups.setdefault((r["streams"], r["variant"]), []).append(r)
    print("\nefficiency against the bare reader (its CPU per event / the variant's, paired by round)")
    print("variant                   streams  rounds  median  range        lag p99 < 5 ms")
    for (streams, variant), runs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ratios = sorted(bare[(streams, r["round"])] / r["cpu_us_per_event"] for r in runs)
        held = sum(r["lag_p99_ms"] < 5 for r in runs)
        print(f"{variant:24} {streams:>7}  {len(runs):>6}  {pct(ratios, 50):6.2f}  "
              f"{ratios[0]:.2f}-{ratios[-1]:.2f}    {held} of {len(runs)}")


def _compiled_copy(dest: Path) -> Path | None:
    """A copy of the `tokenpulse` package with the HOT_PATH modules compiled by Cython (unchanged source,
    built in place, so they shadow their .py files); None, with a note, when Cython is not installed."""
    import shutil

    try:
        import Cython  # noqa: F401
    except ImportError:
        print("gevent-raw-compiled skipped: Cython is not installed (pip install cython)", file=sys.stderr)
        return None
    package = Path(__file__).resolve().parents[1] / "tokenpulse"
    shutil.copytree(package, dest / "tokenpulse", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    sources = [str(dest / "tokenpulse" / module) for module in HOT_PATH]
    build = subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-q", *sources],
                           cwd=dest, check=False, capture_output=True, text=True, timeout=900)
    if build.returncode != 0:
        raise SystemExit(f"Cython build failed:\n{build.stdout[-2000:]}{build.stderr[-2000:]}")
    return dest


if __name__ == "__main__":
    main()
