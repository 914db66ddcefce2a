"""`tokenpulse load`: a Locust load test of the configured targets, with a report at the end.

Exit codes: 0 when the run produced a report (failed requests are figures, not errors); 1 when Locust
did not run (see locust.log in the run folder) or when every request failed (the error classes are
printed); 2 for bad options or config; 130 when interrupted (the
report of what ran is still written).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from tokenpulse.cli.argtypes import positive_float, positive_int
from tokenpulse.load.options import DEFAULT_METRICS_PORT, LOAD_TRANSPORT
from tokenpulse.load.trace import TRACE_FORMATS
from tokenpulse.runfolder.schedule import SHAPES, parse_levels
from tokenpulse.transports.gevent_loop import SYNC_TRANSPORTS

_EPILOG = """\
shapes:
  fixed  --users N for --run-time (warm-up excluded: --warmup, plus the time to spawn the users)
  ramp   users grow linearly from 1 to --users over --run-time (reported in 10 bins)
  sweep  one step per --levels value (users), --step-time each (default: run time / levels);
         the report finds the saturation knee
  rate   open loop: --rate arrivals/s (or --levels of rates), Poisson by default (--burstiness K:
         gamma gaps); --users caps the requests in flight; the wait for a free user is recorded
         (queue_wait_s), not hidden
  search the highest concurrency (--search concurrency, capped at --users) or arrival rate (--search
         rate, --users the pool) whose goodput against the SLO stays >= --goodput (default 0.95):
         doubling from --start, then bisection to --resolution, one --step-time step per level,
         at most --max-steps steps (--run-time does not apply); the answer is a bracket
         [last passing, first failing]
  --trace FILE replays a trace's arrival times (scaled by --speed) and lengths, open loop

examples:
  tokenpulse load --config examples/mock.yaml --users 16 --run-time 60s
  tokenpulse load --config examples/mock.yaml --shape sweep --levels 1,4,16,32 --step-time 30s \\
      --provider steadystack
  tokenpulse load --config openrouter-load.yaml --shape rate --rate 2 --run-time 5m --max-cost 1.50
      (providers listed explicitly: discover: true is for the prober; docs/getting-started-openrouter.md)
  tokenpulse load --config examples/mock.yaml --provider steadystack --shape search --step-time 20s \
      --slo ttft=1s,tpot=30ms
  tokenpulse load --config examples/mock.yaml --input-lengths 100,1000,10000 --users 4 --run-time 60s
  tokenpulse load --config examples/mock.yaml --trace examples/trace-mooncake.jsonl --speed 2
  tokenpulse load --config F --master --expect-workers 2 ...   # then on each worker machine:
  tokenpulse load --worker --master-host HOST [--out DIR]

see docs/load-testing.md for workloads, the run folder, report fields and distributed runs
"""


def duration(text: str) -> float:
    """`30`, `30s`, `5m`, `1h30m` -> seconds."""
    from tokenpulse.load.timespan import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def non_negative_seconds(text: str) -> float:
    value = duration(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def levels(text: str) -> list[float]:
    try:
        return parse_levels(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def share(text: str) -> float:
    """`0.95` or `95%` -> 0.95, strictly between 0 and 1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share: {text!r} (e.g. 0.95 or 95%)") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1 (exclusive)")
    return value
def input_lengths(text: str) -> list[int]:
    """`100,1000,10000` -> [100, 1000, 10000] (whole numbers >= 1, in the order given)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("input lengths are whole numbers of tokens, e.g. 100,1000,10000") from None
    if not values or any(v < 1 or v > 10_000_000 for v in values):
        raise argparse.ArgumentTypeError("input lengths are 1..10000000 tokens each, e.g. 100,1000,10000")
    return values


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0..65535")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "load", help="load-test the configured targets with Locust and write a report",
        description="Run a Locust load test of the targets in --config (every provider side by side, or "
                    "--provider ones) and write the run folder: per-request JSONL, Locust CSV/HTML, "
                    "summary.json, report.md and report.html.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="tokenpulse config (YAML): endpoints, models, providers, load.workload, slo")
    p.add_argument("--users", type=positive_int, help="concurrent users (default 10; rate shape: the pool "
                   "of requests in flight, default 20 x rate)")
    p.add_argument("--spawn-rate", type=positive_float, help="users started per second (default: all at once)")
    p.add_argument("--run-time", type=duration, help="30s, 5m, 1h... (default 30s; with --trace the trace's "
                   "length; with --max-requests an upper bound of 1h)")
    p.add_argument("--shape", choices=SHAPES, default="fixed", help="load shape (default fixed)")
    p.add_argument("--levels", type=levels, help="sweep: user counts, e.g. 1,4,16,64; rate: arrival rates")
    p.add_argument("--step-time", type=duration, help="seconds per sweep/rate step (default: run time / levels)")
    p.add_argument("--warmup", type=non_negative_seconds, help="excluded at the start of each step "
                   "(default: the config's load.warmup_s); spawning time is always excluded too")
    p.add_argument("--rate", type=positive_float, help="rate shape: arrivals per second")
    p.add_argument("--arrival", choices=("poisson", "constant"),
                   help="rate shape: Poisson (exponential gaps, default) or constant gaps")
    p.add_argument("--search", choices=("concurrency", "rate"), help="search shape: vary the concurrency "
                   "(closed loop, default) or the arrival rate (open loop)")
    p.add_argument("--start", type=positive_float, help="search shape: first level (default 1 user, or 1 request/s)")
    p.add_argument("--resolution", help="search shape: stop when the bracket is this narrow: N (users or "
                   "requests/s) or N%% of its lower end (default 1 user; 10%% for rates)")
    p.add_argument("--goodput", type=share, help="search shape: the share of requests that must meet the SLO "
                   "for a level to pass (default 0.95), judged with its 95%% interval")
    p.add_argument("--max-steps", type=positive_int, help="search shape: most steps, exploration and "
                   "bisection together (default 12)")
    p.add_argument("--slo", help="override the config's SLO for this run: ttft=1s,tpot=50ms,e2e=20s (per-request "
                   "goodput thresholds), ttft_p95=1s,tpot_p50=50ms,e2e_p95=20s (percentile objectives of a "
                   "search step), error_rate=1%%")
    p.add_argument("--burstiness", type=positive_float, metavar="K",
                   help="rate shape: gamma-distributed gaps of shape K (mean 1/rate; K=1 is Poisson, K<1 burstier)")
    p.add_argument("--input-lengths", type=input_lengths, metavar="N,N,...",
                   help="prefill workload: prompt lengths in tokens, sent in turn (output fixed by the config), "
                        "e.g. 100,1000,10000,100000; lengths over a model's context are skipped")
    p.add_argument("--trace", metavar="FILE", help="replay a trace's arrivals and lengths (JSONL, Mooncake JSONL "
                   "or BurstGPT CSV; a local file) instead of a load shape")
    p.add_argument("--trace-format", choices=TRACE_FORMATS, help="--trace format (default: from the file)")
    p.add_argument("--speed", type=positive_float, help="--trace: time scale (default 1; 2 replays twice as fast)")
    p.add_argument("--max-requests", type=positive_int, metavar="N",
                   help="stop after N requests (exactly N sent and recorded over all workers), or at --run-time")
    p.add_argument("--provider", action="append", metavar="P", help="only this provider (repeatable)")
    p.add_argument("--model", action="append", metavar="M", help="only this model id (repeatable; with "
                   "--provider, both apply)")
    p.add_argument("--max-cost", type=positive_float, metavar="USD",
                   help="stop before the estimated spend (usage.cost, else usage x configured price) passes this")
    p.add_argument("--out", help="run folder (default runs/<date-time>)")
    p.add_argument("--web", action="store_true", help="run with Locust's web UI (starts at once, quits at the end)")
    p.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    p.add_argument("--web-port", type=port, default=8089, help="web UI port (default 8089)")
    p.add_argument("--processes", type=positive_int, help="Locust worker processes on this machine "
                   "(a master plus N workers; one process drives about one core)")
    p.add_argument("--master", action="store_true", help="distributed: run the master only, wait for workers")
    p.add_argument("--expect-workers", type=positive_int, default=1, help="--master: workers to wait for")
    p.add_argument("--worker", action="store_true", help="distributed: run a worker of --master-host's run")
    p.add_argument("--master-host", default="127.0.0.1", help="--worker: the master's address")
    p.add_argument("--master-port", type=port, default=5557, help="master's port (default 5557)")
    p.add_argument("--metrics-port", type=port, default=DEFAULT_METRICS_PORT,
                   help=f"Prometheus /metrics of the run on the master (default {DEFAULT_METRICS_PORT}; 0: off)")
    p.add_argument("--transport", choices=SYNC_TRANSPORTS, default=LOAD_TRANSPORT,
                   help=f"byte transport under the driver (default {LOAD_TRANSPORT}: one read per arrival, the "
                        "cheapest per SSE event, stamped with the kernel's receive time on plain TCP; see "
                        "docs/load-testing.md)")
    p.add_argument("--ground-truth", action="store_true",
                   help="ask the tokenpulse mock for its send times (records get truth_ttft_s, truth_lags_s)")
    p.add_argument("--quiet", action="store_true", help="no progress line and no table at the end")
    p.set_defaults(func=run)


def run_locust_stoppable(plan: Any, *, quiet: bool) -> tuple[int, bool]:
    """Run Locust with SIGTERM treated like Ctrl-C: Locust runs in its own session, so a supervisor that
    terminates `tokenpulse load` (the demo, a CI job, systemd) must not orphan it; the report of what ran
    is still written."""
    from tokenpulse.load.runner import run_locust

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return run_locust(plan, quiet=quiet)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from tokenpulse.load.runner import UsageError, check_port_free, log_tail, plan_run
    from tokenpulse.report.build import write_report
    from tokenpulse.report.markdown import console_report
    from tokenpulse.report.run import RunError
    from tokenpulse.runfolder.records import tally

    if args.master and args.processes:
        print("tokenpulse load: --master and --processes exclude each other (--processes runs its own master)",
              file=sys.stderr)
        return 2
    try:
        if args.metrics_port and not args.worker:  # before Locust starts and before the run folder exists
            check_port_free(args.metrics_port, "--metrics-port")
        plan = plan_run(args)
    except UsageError as exc:
        print(f"tokenpulse load: {exc}", file=sys.stderr)
        return 2
    for note in plan.notes:
        print(f"tokenpulse load: {note}", file=sys.stderr)
    if not args.quiet:
        where = f"; Locust UI {plan.web_url}" if plan.web_url else ""
        metrics = f"; metrics :{args.metrics_port}/metrics" if args.metrics_port and plan.role != "worker" else ""
        print(f"tokenpulse load: run folder {plan.out}{where}{metrics}", file=sys.stderr)
    code, interrupted = run_locust_stoppable(plan, quiet=args.quiet)
    if plan.role == "worker":
        print(f"tokenpulse load: worker finished (exit {code}); its records are in "
              f"{plan.env.get('TOKENPULSE_OUT', 'the master’s --out path on this machine')}", file=sys.stderr)
        return 0 if code == 0 else 1
    try:
        summary = write_report(plan.out)
    except RunError as exc:
        print(f"tokenpulse load: Locust produced no run (exit {code}): {exc}\n{log_tail(plan)}", file=sys.stderr)
        return 1
    if not summary["run"]["records"] and code != 0:
        print(f"tokenpulse load: Locust exited with {code} and recorded nothing:\n{log_tail(plan)}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(console_report(summary))
        print(f"\nreport: {plan.out / 'report.html'} (also report.md, summary.json)")
    counts = tally(plan.out)
    if counts.reasoning_exhausted and args.quiet:  # else the report's warnings above already said it
        print(f"tokenpulse load: warning: {counts.reasoning_exhausted} of {counts.ok} successful requests spent all "
              "their max_tokens on reasoning and gave no answer (no TTFC); raise max_tokens or lower "
              "load.workload.reasoning", file=sys.stderr)
    if counts.cancelled:
        print(f"tokenpulse load: {counts.cancelled} of {counts.records} requests were still in flight after the "
              "drain (load.drain_s) and are recorded as cancelled", file=sys.stderr)
    if counts.all_failed:
        classes = ", ".join(f"{name} {n}" for name, n in counts.error_classes.most_common())
        print(f"tokenpulse load: every request failed ({counts.errors}: {classes}); see {plan.out / 'report.md'}",
              file=sys.stderr)
        return 1
    return 130 if interrupted else 0

