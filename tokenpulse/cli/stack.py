"""`tokenpulse stack up | sink`: the observability stack without Docker, and the webhook sink it uses.

`stack up` starts the mock farm, the prober, Alertmanager, Prometheus and (when installed) Grafana as
local processes, prints their URLs and runs until Ctrl-C or SIGTERM, then stops them all (exit 0). It
exits 1 when a service fails to start or dies, 2 on a usage error. Configs are generated under
--run-dir from the committed prometheus/, alertmanager/ and dashboards/ files (see tokenpulse/ops/stack/__init__.py).

`stack sink` is a small Alertmanager webhook receiver that prints one line per alert; docker-compose runs
it as the `alert-sink` service.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tokenpulse.cli.probe import listen_address
from tokenpulse.ops.stack import DEFAULT_PORTS, Stack, StackError, StackOptions, WebhookSink, bring_up, find_root


def register(sub: Any) -> None:
    parser = sub.add_parser("stack", help="run the observability stack natively (no Docker), or its alert sink",
                            description="The observability stack without Docker.")
    stack_sub = parser.add_subparsers(dest="stack_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    up = stack_sub.add_parser(
        "up", help="start mock, prober, Prometheus, Alertmanager (and Grafana if installed) until Ctrl-C",
        description="Start the mock farm, the prober, Alertmanager, Prometheus and, when installed, Grafana on "
                    "local ports; print their URLs; stop everything on Ctrl-C or SIGTERM. Needs Debian's "
                    "`prometheus` and `prometheus-alertmanager` (or the upstream binaries) on PATH.")
    up.add_argument("--config", type=Path, metavar="FILE",
                    help="prober config (default: examples/mock.yaml of the checkout)")
    up.add_argument("--no-mock", dest="mock", action="store_false",
                    help="do not start the mock farm (the config probes something else, e.g. OpenRouter)")
    up.add_argument("--no-grafana", dest="grafana", action="store_false", help="do not start Grafana")
    up.add_argument("--run-dir", type=Path, default=Path("runs/stack"), metavar="DIR",
                    help="generated configs, data and logs; kept between runs (default: %(default)s)")
    up.add_argument("--root", type=Path, metavar="DIR",
                    help="the tokenpulse checkout with prometheus/ and alertmanager/ (default: found from here)")
    up.add_argument("--host", default="127.0.0.1", help="address every service binds (default: %(default)s)")
    for name, port in DEFAULT_PORTS.items():
        up.add_argument(f"--{name}-port", type=int, default=port, metavar="PORT",
                        help=f"{name} port, 0 for any free one (default: {port})")
    up.add_argument("--interval", type=float, metavar="SECONDS", help="override every target's probe interval")
    up.add_argument("--scrape-interval", metavar="DURATION",
                    help="Prometheus scrape interval, e.g. 5s (default: prometheus/prometheus.yml's)")
    up.add_argument("--evaluation-interval", metavar="DURATION",
                    help="rule evaluation interval, e.g. 5s (default: prometheus/prometheus.yml's)")
    up.set_defaults(func=run_up)

    sink = stack_sub.add_parser("sink", help="an Alertmanager webhook receiver that prints every alert",
                                description="Receive Alertmanager webhook notifications on any path, print one "
                                            "line per alert, serve what arrived as JSON on GET /.")
    sink.add_argument("--listen", type=listen_address, default=listen_address("127.0.0.1:9095"),
                      metavar="HOST:PORT", help="default: 127.0.0.1:9095")
    sink.add_argument("--log", type=Path, metavar="FILE", help="also append every notification as JSON to FILE")
    sink.set_defaults(func=run_sink)


class _Stopper:
    """SIGINT/SIGTERM set an event instead of raising in the middle of a start or stop."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def __enter__(self) -> _Stopper:
        self._old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signum
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def run_up(args: argparse.Namespace) -> int:
    try:
        root = args.root.resolve() if args.root else find_root()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = (args.config or root / "examples" / "mock.yaml").resolve()
    if not config.is_file():
        print(f"error: {config}: no such config file", file=sys.stderr)
        return 2
    run_dir = args.run_dir.resolve()
    opts = StackOptions(root=root, run_dir=run_dir, config=config, host=args.host,
                        ports={name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS},
                        mock=args.mock, grafana=args.grafana, probe_interval=args.interval,
                        scrape_interval=args.scrape_interval, evaluation_interval=args.evaluation_interval)
    stack = Stack(run_dir)
    sink: WebhookSink | None = None
    code = 0
    with _Stopper() as stopper:
        try:
            print(f"tokenpulse stack: starting (configs, data and logs in {run_dir})", flush=True)
            sink, warnings = bring_up(stack, opts, echo=sys.stdout)
            if stopper.event.is_set():
                return 0
            rows = [("alert sink", sink.url + "/", "Alertmanager webhook receiver; alerts.jsonl in the run dir")]
            rows += [(s.name, s.url, s.note) for s in stack.services]
            width = max(len(name) for name, _, _ in rows)
            print("tokenpulse stack is up:")
            for name, url, note in rows:
                print(f"  {name:<{width}}  {url}" + (f"  ({note})" if note else ""))
            for warning in warnings:
                print(f"  note: {warning}")
            print("Ctrl-C stops everything.", flush=True)
            while not stopper.event.wait(0.5):
                dead = stack.exited()
                if dead is not None:
                    code = dead.proc.poll() if dead.proc else None  # type: ignore[assignment]
                    print(f"error: {dead.name} exited (code {code}); stopping the stack\n{stack.log_tail(dead)}",
                          file=sys.stderr)
                    code = 1
                    break
        except StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
        finally:
            print("tokenpulse stack: stopping", flush=True)
            stack.stop()
            if sink is not None:
                sink.stop()
            print("tokenpulse stack: stopped", flush=True)
    return code


def run_sink(args: argparse.Namespace) -> int:
    host, port = args.listen
    try:
        sink = WebhookSink(host, port, echo=sys.stdout, log_path=args.log)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"tokenpulse alert sink listening on {sink.url}", flush=True)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=sink.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sink.serve_forever()
    return 0
