"""`tokenpulse load`: validate, run Locust headless in a subprocess, show progress, write the report.

Why a subprocess (`python -m locust -f tokenpulse/load/locustfile.py ...`) rather than Locust's library
API: Locust's `--processes`, `--master` and `--worker` modes (forking, the ZeroMQ master, its CSV and HTML
writers, signal handling) live in `locust.main`; reusing it as is keeps every Locust mode working, and
keeps gevent's monkey-patching out of this process, which only watches files and renders the report.

The run folder (`--out`, default runs/<run id>) ends up with:
  records-<process>.jsonl   one line per finished request (records.py)
  health-<process>.jsonl    the generator's CPU and lag, once a second per process
  meta.json                 schedule, targets, SLOs, stop reason, Locust's own request totals
  locust_stats.csv ...      Locust's CSV files, locust.html its HTML report, locust.log its output
  summary.json report.md report.html   tokenpulse's report (tokenpulse/report)
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tokenpulse.config import DEFAULT_DRAIN_S, ConfigError, load_config
from tokenpulse.core.format import fmt_number, fmt_seconds
from tokenpulse.core.keys import read_api_key
from tokenpulse.core.redact import redact
from tokenpulse.core.search import Criteria
from tokenpulse.core.stats import percentile
from tokenpulse.load.lifeline import Lifeline
from tokenpulse.load.servermetrics import ServerMetricsScraper, resolve_urls
from tokenpulse.load.slo_flags import effective_slo
from tokenpulse.load.targets import LoadSetupError, select_targets
from tokenpulse.load.traffic import plan_traffic
from tokenpulse.load.workload import WorkloadGenerator
from tokenpulse.runfolder.records import HEALTH_GLOB, META_FILE, RECORDS_GLOB
from tokenpulse.runfolder.schedule import Schedule, build_schedule

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOG_FILE = "locust.log"
#: Defaults of --users for the search shape: a concurrency search's cap, a rate search's pool.
SEARCH_CAP = 256
SEARCH_POOL = 1024
PROGRESS_PERIOD_S = 1.0


class UsageError(Exception):
    """Bad options or config: printed as is, exit code 2."""


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """Everything `tokenpulse load` decided before starting Locust."""

    out: Path
    run_id: str
    command: list[str]
    env: dict[str, str]
    schedule: Schedule | None
    role: str  # local | master | worker
    web_url: str | None
    #: How long Locust may take to stop once asked (its users' drain, `load.drain_s`).
    drain_s: float = DEFAULT_DRAIN_S
    #: The servers' /metrics URLs scraped during the run (`load.server_metrics`, servermetrics.py).
    server_metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: What the user should know before the run (lengths skipped for a model's context, ...).
    notes: tuple[str, ...] = ()


def plan_run(args: Any) -> LoadPlan:
    """Validate the options and config and build the Locust command line. Raises UsageError."""
    run_id = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / run_id
    if args.worker:
        return _plan_worker(args, out, run_id)
    if not args.config:
        raise UsageError("--config is required")
    check_shape_options(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        Criteria.from_slo(config.slo.model_dump())  # a percentile the pattern lets through: ttft_p0
    except ValueError as exc:
        raise UsageError(f"{args.config}: slo.percentiles: {exc}") from None
    if getattr(args, "slo", None):
        try:
            effective_slo(config.slo.model_dump(), args.slo)
        except ValueError as exc:
            raise UsageError(f"--slo: {exc}") from None
    try:
        selected = select_targets(config, tuple(args.provider or ()), tuple(args.model or ()))
        for target in selected:
            # Read here too, so a key that is not ASCII stops the run before Locust starts, and so this
            # process knows the keys it must scrub from Locust's output (run_locust).
            read_api_key(target.endpoint.api_key_env)
        warmup = args.warmup if args.warmup is not None else config.load.warmup_s
        traffic = plan_traffic(args, config, selected)
        if args.shape == "search":
            schedule = check_search_options(args, warmup)
        else:
            schedule = build_schedule(args.shape, users=_default_users(args), spawn_rate=args.spawn_rate,
                                      run_time_s=traffic.run_time_s, warmup_s=warmup, levels=args.levels,
                                      step_s=args.step_time, rate=args.rate)
        if config.load.workload.kind == "dataset":
            WorkloadGenerator(config.load.workload, run_id=run_id, dataset_base_dir=Path(args.config).resolve().parent)
    except (LoadSetupError, ValueError) as exc:  # DatasetError, TraceError and ApiKeyError are ValueErrors
        raise UsageError(str(exc)) from None
    if any(out.glob(RECORDS_GLOB)) or (out / META_FILE).exists():
        raise UsageError(f"{out} already holds a run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--only-summary", "--exit-code-on-error", "0",
           "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
           "--tp-config", str(Path(args.config).resolve()), "--tp-out", str(out.resolve()), "--tp-run-id", run_id,
           "--tp-shape", args.shape, "--tp-users", str(_default_users(args)),
           "--tp-run-time", f"{traffic.run_time_s:g}", "--tp-arrival", args.arrival or "poisson",
           "--tp-metrics-port", str(args.metrics_port), "--tp-transport", args.transport]
    if args.spawn_rate:
        cmd += ["--tp-spawn-rate", f"{args.spawn_rate:g}"]
    if args.levels:
        cmd += ["--tp-levels", ",".join(f"{v:g}" for v in args.levels)]
    if args.step_time:
        cmd += ["--tp-step-time", f"{args.step_time:g}"]
    if args.warmup is not None:
        cmd += ["--tp-warmup", f"{args.warmup:g}"]
    if args.rate:
        cmd += ["--tp-rate", f"{args.rate:g}"]
    if args.max_cost:
        cmd += ["--tp-max-cost", f"{args.max_cost:g}"]
    if args.provider:
        cmd += ["--tp-providers", ",".join(args.provider)]
    if args.model:
        cmd += ["--tp-models", ",".join(args.model)]
    if args.ground_truth:
        cmd.append("--tp-ground-truth")
    if getattr(args, "slo", None):
        cmd += ["--tp-slo", args.slo]
    if args.shape == "search":
        cmd += ["--tp-search", args.search or "concurrency"]
        for flag, value in (("--tp-start", args.start), ("--tp-goodput", args.goodput),
                            ("--tp-max-steps", args.max_steps)):
            if value is not None:
                cmd += [flag, f"{value:g}"]
        if args.resolution:
            cmd += ["--tp-resolution", args.resolution]
    cmd += traffic.locust_args
    role = "local"
    if args.processes:
        cmd += ["--processes", str(args.processes)]
        role = "master"
    if args.master:
        cmd += ["--master", "--expect-workers", str(args.expect_workers), "--master-bind-port", str(args.master_port)]
        role = "master"
    web_url = None
    if args.web:
        cmd += ["--autostart", "--autoquit", "5", "--web-host", args.web_host, "--web-port", str(args.web_port)]
        web_url = f"http://{args.web_host}:{args.web_port}"
    else:
        cmd.append("--headless")
    return LoadPlan(out=out, run_id=run_id, command=cmd, env=_child_env(), schedule=schedule, role=role,
                    web_url=web_url, drain_s=config.load.drain_window_s, notes=traffic.notes,
                    server_metrics=resolve_urls(config.load.server_metrics,
                                                [(t.endpoint.name, t.endpoint.base_url) for t in selected]))


#: Options that only one shape reads, and the shapes that read them; elsewhere they are usage errors
#: (a `--rate 5` on a closed-loop run would otherwise be silently ignored).
SHAPE_OPTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("rate", "--rate", ("rate",)),
    ("arrival", "--arrival", ("rate",)),
    ("levels", "--levels", ("sweep", "rate")),
    ("step_time", "--step-time", ("sweep", "rate", "search")),
    ("search", "--search", ("search",)),
    ("start", "--start", ("search",)),
    ("resolution", "--resolution", ("search",)),
    ("goodput", "--goodput", ("search",)),
    ("max_steps", "--max-steps", ("search",)),
    ("burstiness", "--burstiness", ("rate",)),
    ("trace", "--trace", ("fixed",)),
)


def check_search_options(args: Any, warmup_s: float) -> Schedule:
    """Validate a search's options (and its --slo, which every shape takes) the way every Locust process
    will read them; the first step's schedule. Raises UsageError or ValueError."""
    from tokenpulse.load.options import LoadOptions
    from tokenpulse.load.search import build_search

    rate_search = args.search == "rate"
    opts = LoadOptions.from_parsed(argparse.Namespace(
        tp_shape="search", tp_users=_default_users(args), tp_spawn_rate=args.spawn_rate or 0.0,
        tp_step_time=args.step_time or 0.0, tp_search=args.search or "concurrency", tp_start=args.start or 0.0,
        tp_resolution=args.resolution or "", tp_goodput=args.goodput or 0.0, tp_max_steps=args.max_steps or 0,
        tp_warmup=warmup_s))
    if not rate_search and args.start is not None and args.start != int(args.start):
        raise UsageError(f"--start {args.start:g}: a concurrency search starts at a whole number of users")
    try:
        build_search(opts)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return opts.schedule(warmup_s)


def check_shape_options(args: Any) -> None:
    """Raise UsageError for an option given with a shape that does not use it."""
    for attr, flag, shapes in SHAPE_OPTIONS:
        if getattr(args, attr, None) is not None and args.shape not in shapes:
            raise UsageError(f"{flag} does not apply to --shape {args.shape} (only to --shape {' or '.join(shapes)})")


def check_port_free(port: int, flag: str, host: str = "0.0.0.0") -> None:
    """Raise UsageError when `port` cannot be bound, before Locust starts or the run folder exists
    (Prometheus' server binds the same way, SO_REUSEADDR included)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"{flag} {port}: cannot listen there ({exc.strerror or exc}); choose another port "
                         f"or {flag} 0") from None
    finally:
        sock.close()


def _plan_worker(args: Any, out: Path, run_id: str) -> LoadPlan:
    """A worker of a distributed run: it gets config and options from the master; it only needs the
    package, the API key in its environment, and a place for its records (`--out`, or the master's path)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", args.master_host,
           "--master-port", str(args.master_port)]
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    env = _child_env()
    if args.out:
        out.mkdir(parents=True, exist_ok=True)
        env["TOKENPULSE_OUT"] = str(out.resolve())
    return LoadPlan(out=out, run_id=run_id, command=cmd, env=env, schedule=None, role="worker", web_url=None)


def _default_users(args: Any) -> int:
    if args.users is not None:
        return int(args.users)
    if args.shape == "search":
        # the cap of a concurrency search; the pool of a rate search (requests in flight it may need)
        return SEARCH_POOL if args.search == "rate" else SEARCH_CAP
    if getattr(args, "trace", None):
        return 64  # a trace's bursts need a pool of requests in flight, as the rate shape's
    if args.shape == "rate":
        # enough concurrency for the offered rate with requests of up to ~20 s
        top = max(args.levels or [args.rate or 1.0])
        return max(16, min(4096, int(top * 20)))
    return 10


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ------------------------------------------------------------------------------------ progress
class Progress:
    """Tails the run folder's JSONL files and renders one status line (requests, errors, recent TTFT,
    output throughput, the generator's CPU and lag)."""

    RECENT_S = 5.0

    def __init__(self, out: Path) -> None:
        self.out = out
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self.requests = 0
        self.errors = 0
        self.recent: deque[tuple[float, float | None, int]] = deque()  # (end time, ttft, output tokens)
        self.cpu: dict[str, float] = {}
        self.lag_p99: dict[str, float] = {}
        self.schedule: Schedule | None = None
        self.run_start: float | None = None
        #: search: the step and level of the latest record (meta.json has only the first step until the end)
        self.last_step: tuple[int, float] | None = None

    def _lines(self, pattern: str) -> list[bytes]:
        lines: list[bytes] = []
        for path in sorted(self.out.glob(pattern)):
            try:
                with open(path, "rb") as fh:
                    fh.seek(self._offsets.get(path, 0))
                    data = fh.read()
            except OSError:
                continue
            self._offsets[path] = self._offsets.get(path, 0) + len(data)
            data = self._partial.pop(path, b"") + data
            *complete, rest = data.split(b"\n")
            if rest:
                self._partial[path] = rest
            lines += complete
        return lines

    def poll(self) -> None:
        import json

        if self.schedule is None and (self.out / META_FILE).exists():
            try:
                meta = json.loads((self.out / META_FILE).read_text(encoding="utf-8"))
                self.schedule = Schedule.from_dict(meta["schedule"])
                self.run_start = float(meta["run_start"])
            except (ValueError, KeyError, OSError):
                pass
        for line in self._lines(RECORDS_GLOB):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            self.requests += 1
            if isinstance(r.get("step"), int) and isinstance(r.get("level"), (int, float)):
                self.last_step = (r["step"], float(r["level"]))
            if r.get("outcome") == "error":  # cancelled: neither a success nor the provider's failure
                self.errors += 1
            end = float(r.get("start_time", 0.0)) + float(r.get("e2e_s") or 0.0)
            self.recent.append((end, r.get("ttft_s") if r.get("outcome") == "ok" else None,
                                r.get("output_tokens") or 0))
        for line in self._lines(HEALTH_GLOB):
            try:
                h = json.loads(line)
            except ValueError:
                continue
            worker = str(h.get("worker"))
            if h.get("cpu") is not None:
                self.cpu[worker] = float(h["cpu"])
            if h.get("lag_p99_s") is not None:
                self.lag_p99[worker] = float(h["lag_p99_s"])
        horizon = time.time() - self.RECENT_S
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()

    def line(self) -> str:
        parts = []
        if self.run_start is not None and self.schedule is not None and self.schedule.kind == "search":
            where = f"{time.time() - self.run_start:5.0f} s search"
            if self.last_step is not None:
                where += f" step {self.last_step[0] + 1} level {self.last_step[1]:g}"
            parts.append(where)
        elif self.run_start is not None and self.schedule is not None:
            t = time.time() - self.run_start
            step = self.schedule.step_at(t)
            where = f"{min(t, self.schedule.total_s):5.0f}/{self.schedule.total_s:.0f} s"
            if step is not None and len(self.schedule.steps) > 1:
                where += f" step {step.index + 1}/{len(self.schedule.steps)} level {step.level:g}"
            if step is not None and t < step.measure_start_s:
                where += " (warm-up)"
            parts.append(where)
        else:
            parts.append("starting")
        err = f" {self.errors} err ({self.errors / self.requests:.1%})" if self.requests else ""
        parts.append(f"{self.requests} req{err}")
        ttfts = sorted(t for _, t, _ in self.recent if t is not None)
        if ttfts:
            parts.append(f"TTFT p50 {fmt_seconds(percentile(ttfts, 50))} (last {self.RECENT_S:g} s)")
        tokens = sum(n for _, _, n in self.recent)
        parts.append(f"{fmt_number(tokens / self.RECENT_S)} out tok/s")
        if self.cpu:
            cpu = max(self.cpu.values())
            lag = max(self.lag_p99.values()) if self.lag_p99 else None
            parts.append(f"gen CPU {cpu:.0%} lag p99 {fmt_seconds(lag)}")
        return " | ".join(parts)


# ------------------------------------------------------------------------------------ running
def run_locust(plan: LoadPlan, *, quiet: bool = False, stream: IO[str] = sys.stderr) -> tuple[int, bool]:
    """Start Locust, print progress until it exits; returns (exit code, interrupted)."""
    log_path = plan.out / LOG_FILE
    plan.out.mkdir(parents=True, exist_ok=True)
    progress = Progress(plan.out)
    tty = stream.isatty()
    interrupted = False
    lifeline = Lifeline()  # Locust stops itself when this process dies, even by SIGKILL (lifeline.py)
    scraper = ServerMetricsScraper(plan.server_metrics, plan.out, stream=stream)
    scraper.start()  # the baseline scrape, before any request
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(plan.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=lifeline.child_env(plan.env), start_new_session=True,
                                    pass_fds=(lifeline.read_fd,))
        finally:
            lifeline.started()
        pump = threading.Thread(target=_pump_redacted, args=(proc.stdout, log), name="locust-log", daemon=True)
        pump.start()
        last_print = 0.0
        try:
            while proc.poll() is None:
                try:
                    proc.wait(PROGRESS_PERIOD_S)
                except subprocess.TimeoutExpired:
                    pass
                if quiet or plan.role == "worker":
                    continue
                progress.poll()
                now = time.monotonic()
                if tty:
                    stream.write("\r\033[K" + progress.line())
                    stream.flush()
                elif now - last_print >= 10.0:
                    stream.write(progress.line() + "\n")
                    last_print = now
        except KeyboardInterrupt:
            interrupted = True
            stream.write("\ninterrupted: stopping Locust (Ctrl-C again to kill it)\n")
            # SIGINT, not SIGTERM: Locust's SIGTERM watcher can miss the signal (lifeline.py) and die undrained.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(plan.drain_s + 60)
            except KeyboardInterrupt:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        pump.join(10)
        lifeline.close()
        scraper.stop()  # the final scrape, after every request
        if tty and not quiet and plan.role != "worker":
            progress.poll()
            stream.write("\r\033[K" + progress.line() + "\n")
    return proc.returncode, interrupted


def _pump_redacted(source: IO[bytes] | None, sink: IO[bytes]) -> None:
    """Copy Locust's output into locust.log line by line, redacted: whatever the child printed
    without going through logging (gevent's tracebacks, Locust's own prints) is scrubbed here. Lines are
    whole, so a key is never split between two redactions."""
    if source is None:
        return
    with source:
        for line in iter(source.readline, b""):
            sink.write(redact(line.decode("utf-8", "replace")).encode("utf-8"))
            sink.flush()


def log_tail(plan: LoadPlan, lines: int = 25) -> str:
    try:
        text = (plan.out / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
