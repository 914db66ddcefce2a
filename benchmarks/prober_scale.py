"""The prober at scale: 1,000 targets at a 30 s interval, against the mock, for a bounded run.

Why: `tokenpulse probe` runs day and night next to other services, so its own cost must stay small
and its schedule must stay on time when it watches many providers. Goal (issue 3): under 10 % of one
core and scheduler lag p99 under 100 ms.

What it does: generates a farm of `--models` x `--providers` fault-light providers (TTFT median 300 ms,
p99 1.2 s, 60-120 tokens/s, 1 % HTTP 502) and a config that pins a probe to each (max_tokens 32,
temperature 0, seed), starts the mock as a subprocess (MockServerProcess), starts `tokenpulse probe`
as another subprocess, scrapes /metrics every `--scrape-interval` seconds as Prometheus would, and
reports:

- prober CPU: CPU time of the prober process over wall time (psutil), 100 % = one core, scrapes
  included; the share spent rendering /metrics is estimated from CPU sampled around each scrape;
  also "steady CPU", the same after the first round (`--interval`): the first round holds every
  target's one-off first probe, state change and history bucket, and a prober runs for weeks, so the
  goal is judged on the steady figure (both are printed; the run needs `--duration` >= 2 x interval);
- scheduler lag p50/p99: probe start minus scheduled time, exact over the prober's recent window
  (/api/status) and from the tokenpulse_scheduler_lag_seconds histogram over the whole run;
- memory: the prober's RSS at the end;
- /metrics: render (response) time and size per scrape;
- the status page's response time and size once at the end, and the size of the SQLite history store
  (`probe.state_dir` in the run's temporary directory, so its batched writes are part of the CPU);
- probes completed, misfires, and the mock's CPU for context (the two share a 2-core machine).

Loopback only, bounded by `--duration` (default 180 s). Run:
`.venv/bin/python benchmarks/prober_scale.py [--duration 180]`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import httpx
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenpulse.mock import MockServerProcess, dump_farm  # noqa: E402
from tokenpulse.mock.farm import farm_from_data  # noqa: E402

CPU_GOAL = 0.10
PROFILED = ("import cProfile, sys, time; sys.argv[0] = 'tokenpulse'; from tokenpulse.cli.main import main; "
            "p = cProfile.Profile(time.thread_time)\ntry: p.runcall(main)\nfinally: p.dump_stats({out!r})")
LAG_P99_GOAL_S = 0.100


def farm_yaml(models: int, providers: int) -> str:
    specs = {}
    for p in range(providers):
        specs[f"p{p:03d}"] = {"name": f"P{p:03d}", "profile": {  # the name a pin to slug p000 matches
            "ttft": {"median_ms": 300, "p99_ms": 1200},
            "decode": {"tokens_per_s": 60 + (p % 7) * 10, "request_jitter": 0.1, "chunk_jitter": 0.2,
                       "tokens_per_chunk": [1, 2]},
            "capacity": 64,
            "errors": {"http_502": 0.01},
        }}
    data = {"seed": 3, "credit_limit_usd": None, "models": {
        f"bench/model-{m}": {"name": f"Bench model {m}", "context_length": 8192, "reasoning": False,
                             "pricing": {"prompt": 0.1, "completion": 0.2},
                             "output_tokens": {"min": 20, "max": 40}, "providers": specs}
        for m in range(models)}}
    return dump_farm(farm_from_data(data, "benchmark farm"))


def config_yaml(base_url: str, models: int, providers: int, interval: float, max_in_flight: int,
                state_dir: Path | None = None, lookup_rate: float | None = None) -> str:
    slugs = [f"p{p:03d}" for p in range(providers)]
    probe: dict[str, object] = {
        "interval_s": interval, "jitter_s": min(3.0, interval / 10), "max_in_flight": max_in_flight,
        "timeouts": {"connect_s": 5, "ttft_s": 15, "idle_s": 10, "total_s": 30},
        "credits_interval_s": 300, "state_dir": None if state_dir is None else str(state_dir)}
    if lookup_rate is not None:  # else the prober's default (config.py: probe.generations)
        probe["generations"] = {"max_rate_per_s": lookup_rate}
    return yaml.safe_dump({
        "endpoints": [{"name": "mock", "base_url": base_url, "kind": "openrouter",
                       "models": [{"id": f"bench/model-{m}", "providers": slugs} for m in range(models)]}],
        "profiles": {"default": {"prompt": "Reply with a short paragraph about the sea.", "max_tokens": 32,
                                 "temperature": 0, "seed": 1234}},
        "probe": probe,
    }, sort_keys=False)


class StderrTail:
    """Drains the prober's stderr in a thread (so it never blocks) and keeps the last lines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: deque[str] = deque(maxlen=200)
        self._proc = proc
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def wait_for_port(self, timeout: float) -> int:
        assert self._proc.stderr is not None
        end = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stderr, selectors.EVENT_READ)
            while time.monotonic() < end and sel.select(max(0.0, end - time.monotonic())):
                line = self._proc.stderr.readline()
                if not line:
                    break
                self.lines.append(line)
                match = re.search(r"probing \d+ target\(s\) on http://[^:]+:(\d+)", line)
                if match:
                    self._thread.start()
                    return int(match.group(1))
        raise RuntimeError("the prober did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self.lines.append(line)


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_bound, prev_count = bound, count
    return prev_bound


def lag_histogram(text: str) -> tuple[list[tuple[float, float]], float]:
    for family in text_string_to_metric_families(text):
        if family.name == "tokenpulse_scheduler_lag_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
            count = next(s.value for s in family.samples if s.name.endswith("_count"))
            return buckets, count
    return [], 0.0


def totals(text: str) -> dict[str, float]:
    out = {"probes": 0.0, "failed": 0.0, "misfires": 0.0, "lookups": 0.0, "lookups_found": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "tokenpulse_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out["probes"] += s.value
                    out["failed"] += s.value if s.labels["outcome"] != "ok" else 0.0
        elif family.name == "tokenpulse_openrouter_generation_lookups":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out["lookups"] += s.value
                    out["lookups_found"] += s.value if s.labels["status"] == "found" else 0.0
        elif family.name == "tokenpulse_probe_misfires":
            out["misfires"] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return out


def run(args: argparse.Namespace) -> int:
    targets = args.models * args.providers
    with tempfile.TemporaryDirectory(prefix="tokenpulse-bench-") as tmp:
        farm_file = Path(tmp) / "farm.yaml"
        farm_file.write_text(farm_yaml(args.models, args.providers), encoding="utf-8")
        with MockServerProcess(farm_file) as mock:
            config_file = Path(tmp) / "config.yaml"
            state_dir = Path(tmp) / "state"  # the SQLite history store is part of what is measured
            config_file.write_text(config_yaml(mock.base_url, args.models, args.providers, args.interval,
                                               args.max_in_flight, state_dir, args.lookup_rate), encoding="utf-8")
            module = ["-m", "tokenpulse"]
            if args.profile:  # the prober's main thread, clocked by its own CPU time (not wall time)
                module = ["-c", PROFILED.format(out=str(args.profile))]
            cmd = [sys.executable, *module, "probe", "--config", str(config_file), "--listen",
                   "127.0.0.1:0", "--log-level", "info"]
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
            tail = StderrTail(proc)
            try:
                return measure(args, targets, proc, tail, psutil.Process(mock.pid), state_dir)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def measure(args: argparse.Namespace, targets: int, proc: subprocess.Popen[str], tail: StderrTail,
            mock: psutil.Process, state_dir: Path) -> int:
    port = tail.wait_for_port(60)
    prober = psutil.Process(proc.pid)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=60)
    started = time.monotonic()
    cpu0, mock_cpu0 = cpu_seconds(prober), cpu_seconds(mock)
    sys0 = prober.cpu_times().system
    scrapes: list[dict[str, float]] = []
    last_text = ""
    next_scrape = started + args.scrape_interval
    print(f"{targets} targets every {args.interval:g} s for {args.duration:g} s; scraping /metrics every "
          f"{args.scrape_interval:g} s ...", flush=True)
    # The first interval is the first round: every target's first probe, its first state change (from
    # unknown) and its first history bucket. A prober runs for weeks, so its cost is the rounds after;
    # both figures are printed, and the goal is judged on the steady one when the run is long enough.
    warm_until = started + args.interval
    warm_cpu: float | None = None
    warm_at = started
    while True:
        now = time.monotonic()
        if warm_cpu is None and now >= warm_until:
            warm_cpu, warm_at = cpu_seconds(prober), now
        if now - started >= args.duration:
            break
        wake = min(next_scrape, started + args.duration, warm_until if warm_cpu is None else math.inf)
        time.sleep(max(0.0, wake - now))
        if time.monotonic() >= next_scrape and time.monotonic() - started < args.duration:
            before_cpu, t0 = cpu_seconds(prober), time.monotonic()
            response = client.get("/metrics")
            wall = time.monotonic() - t0
            scrapes.append({"wall": wall, "cpu": cpu_seconds(prober) - before_cpu, "bytes": len(response.content)})
            last_text = response.text
            next_scrape += args.scrape_interval
    elapsed = time.monotonic() - started
    cpu_seconds_at_end = cpu_seconds(prober)
    cpu = cpu_seconds_at_end - cpu0
    kernel = prober.cpu_times().system - sys0
    mock_cpu = cpu_seconds(mock) - mock_cpu0
    rss = prober.memory_info().rss
    status = client.get("/api/status").json()
    t_page = time.monotonic()
    page = client.get("/")
    page_s = time.monotonic() - t_page
    final = client.get("/metrics").text or last_text
    client.close()

    proc.send_signal(signal.SIGTERM)
    t_stop = time.monotonic()
    code = proc.wait(60)
    stop_s = time.monotonic() - t_stop
    store_bytes = sum(f.stat().st_size for f in state_dir.iterdir()) if state_dir.is_dir() else 0

    counts = totals(final)
    buckets, lag_count = lag_histogram(final)
    share = cpu / elapsed
    steady_s = elapsed - (warm_at - started) if warm_cpu is not None else 0.0
    # At least one whole round after the first, else the steady figure is not one.
    steady = (cpu_seconds_at_end - warm_cpu) / steady_s if warm_cpu is not None and steady_s >= args.interval else None
    # CPU spent during scrapes beyond the background rate: the rendering's share.
    scrape_wall = sum(s["wall"] for s in scrapes)
    background = (cpu - sum(s["cpu"] for s in scrapes)) / max(elapsed - scrape_wall, 1e-9)
    render_cpu = sum(max(0.0, s["cpu"] - background * s["wall"]) for s in scrapes)
    prober_status = status["prober"]
    lag_p50, lag_p99 = prober_status["scheduler_lag_p50_s"], prober_status["scheduler_lag_p99_s"]
    hist_p50, hist_p99 = histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets)
    within_100ms = dict(buckets).get(0.1, 0.0) / lag_count if lag_count else 0.0
    render = [s["wall"] for s in scrapes]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.1f} ms"

    rows = [
        ("targets", f"{targets} ({args.models} models x {args.providers} providers), interval {args.interval:g} s"),
        ("run", f"{elapsed:.0f} s, {counts['probes']:.0f} probes ({counts['probes'] / elapsed:.1f}/s), "
                f"{counts['failed']:.0f} failed (1 % injected 502s), {counts['misfires']:.0f} misfires"),
        ("/generation", f"{counts['lookups']:.0f} lookups ({counts['lookups'] / elapsed:.1f}/s), "
                        f"{counts['lookups_found']:.0f} found"),
        ("prober CPU", f"{share * 100:.1f} % of one core (scrapes included; rendering /metrics "
                       f"~{render_cpu / elapsed * 100:.1f} %, probing ~{background * 100:.1f} %; in the kernel "
                       f"{kernel / elapsed * 100:.1f} %)"),
        ("steady CPU", f"{steady * 100:.1f} % of one core after the first round ({steady_s:.0f} s; the first "
                       f"{args.interval:g} s: {(warm_cpu - cpu0) / (warm_at - started) * 100:.1f} %)"
                       if steady is not None and warm_cpu is not None else
                       f"n/a (needs --duration >= 2 x --interval = {2 * args.interval:g} s)"),
        ("scheduler lag", f"p50 {ms(lag_p50)}, p99 {ms(lag_p99)} (exact, last {min(int(lag_count), 4096)} "
                          f"probes); histogram p50 {ms(hist_p50)}, p99 {ms(hist_p99)}, "
                          f"{within_100ms * 100:.2f} % <= 100 ms over {lag_count:.0f} probes"),
        ("memory", f"RSS {rss / 2**20:.0f} MiB"),
        ("/metrics", f"{len(scrapes)} scrapes, response time median {ms(statistics.median(render) if render else None)}"
                     f", max {ms(max(render) if render else None)}, size {scrapes[-1]['bytes'] / 2**20:.1f} MiB"
                     if scrapes else "no scrape"),
        ("status page", f"GET / {ms(page_s)}, {len(page.content) / 2**20:.1f} MiB"),
        ("history store", f"{store_bytes / 2**20:.1f} MiB after stop ({store_bytes / max(targets, 1) / 1024:.1f} KiB "
                          "per target)"),
        ("mock CPU", f"{mock_cpu / elapsed * 100:.1f} % of one core"),
        ("shutdown", f"SIGTERM -> exit {code} in {stop_s:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    judged = steady if steady is not None else share
    ok_cpu, ok_lag = judged < CPU_GOAL, (lag_p99 or 0) < LAG_P99_GOAL_S
    print(f"goal: {'steady ' if steady is not None else ''}CPU < {CPU_GOAL * 100:.0f} % of one core: "
          f"{'met' if ok_cpu else 'MISSED'}; "
          f"lag p99 < {LAG_P99_GOAL_S * 1000:.0f} ms: {'met' if ok_lag else 'MISSED'}")
    if args.show_log:
        print("".join(list(tail.lines)[-args.show_log:]), end="")
    return 0 if code == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--providers", type=int, default=100, help="providers per model (<= 1000)")
    parser.add_argument("--interval", type=float, default=30.0, help="probe interval, seconds")
    parser.add_argument("--duration", type=float, default=180.0, help="measured run, seconds")
    parser.add_argument("--scrape-interval", type=float, default=15.0, help="/metrics scrape interval, seconds")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--lookup-rate", type=float, metavar="PER_S",
                        help="OpenRouter /generation lookups started per second at most "
                             "(probe.generations.max_rate_per_s; 0 turns them off; default: the prober's)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="run the prober under cProfile (its main thread: probing and scheduling, not the "
                             "/metrics render thread) and write the stats to FILE; the CPU figures then include "
                             "the profiler's overhead")
    parser.add_argument("--show-log", type=int, default=0, metavar="N", help="print the prober's last N log lines")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
