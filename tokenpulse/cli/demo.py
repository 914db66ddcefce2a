"""`tokenpulse demo`: the main job on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from tokenpulse.cli.argtypes import positive_float
from tokenpulse.cli.load import levels as parse_levels


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the mock farm, the prober and a load sweep, then compare the providers (no key, no network)",
        description="Start the embedded mock provider farm and the prober, run a short Locust concurrency sweep "
                    "against every provider of the farm's reasoning model, and print a per-provider comparison: "
                    "availability, TTFT/TTFC p50 and p95, TPOT, tokens/s, errors by class, cost per million "
                    "tokens and the saturation knee. Stops everything it started on exit or Ctrl-C.",
    )
    p.add_argument("--quick", action="store_true", help="a few seconds instead of about a minute (for tests)")
    p.add_argument("--out", help="run folder (default runs/demo-<date-time>)")
    p.add_argument("--levels", type=parse_levels,
                   help="sweep levels in total users, spread over the providers (default 8,32,64,96; quick 4,8)")
    p.add_argument("--step-time", type=positive_float, metavar="SECONDS",
                   help="seconds per sweep level (default 12; quick 3)")
    p.add_argument("--probe-interval", type=positive_float, metavar="SECONDS",
                   help="prober interval during the demo (default 5; quick 1)")
    p.add_argument("--status-port", type=int, default=9464,
                   help="prober status page port (default 9464; a free port if that one is taken)")
    p.add_argument("--stack", action="store_true",
                   help="also run Prometheus and Alertmanager (and Grafana when installed), natively")
    p.add_argument("--wait", action="store_true",
                   help="keep the prober and mock running after the report until Enter or Ctrl-C")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tokenpulse.ops.demo import DemoOptions, run_demo

    out = Path(args.out) if args.out else Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides: dict[str, Any] = {"status_port": args.status_port, "stack": args.stack, "wait": args.wait}
    if args.levels:
        overrides["levels"] = tuple(int(v) for v in args.levels)
    if args.step_time:
        overrides["step_s"] = args.step_time
    if args.probe_interval:
        overrides["probe_interval_s"] = args.probe_interval
    opts = DemoOptions.quick_mode(out, **overrides) if args.quick else DemoOptions(out=out, **overrides)
    if opts.wait and not sys.stdin.isatty():
        opts = dataclasses.replace(opts, wait=False)  # nobody can press Enter
    return run_demo(opts)
