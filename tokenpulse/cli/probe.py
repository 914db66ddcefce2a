"""`tokenpulse probe`: the scheduled prober (Prometheus metrics, status page), or one round with --once.

Exit codes: 0 (stopped by SIGTERM/SIGINT, or --once with every probe ok), 1 (--once with a failed
probe), 2 (bad config or usage, unusable --listen address; nothing was started).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from tokenpulse.cli.argtypes import interval_seconds, positive_seconds
from tokenpulse.config import Config, ConfigError, load_config
from tokenpulse.core.keys import read_api_key

DEFAULT_LISTEN = "127.0.0.1:9464"
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Libraries that log every request or job at INFO; the prober reports those things itself.
QUIET_LOGGERS = {"apscheduler": logging.ERROR, "httpx": logging.WARNING, "httpcore": logging.WARNING}


def listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (all interfaces)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:9464, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="probe every configured provider on a schedule; serve /metrics and a status page",
        description="Probe every target of the config (endpoint x model x provider x profile) on its "
                    "schedule and export Prometheus metrics, /healthz, /readyz, a status page at / and "
                    "/api/status. With --once, probe every target once and print the results. Exit 2 on "
                    "a bad config; SIGTERM/SIGINT stop scheduling, let in-flight probes finish, exit 0.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="YAML config (see examples/)")
    p.add_argument("--listen", type=listen_address, default=listen_address(DEFAULT_LISTEN), metavar="HOST:PORT",
                   help=f"address of the HTTP server (default: {DEFAULT_LISTEN})")
    p.add_argument("--interval", type=interval_seconds, metavar="SECONDS",
                   help="override every target's probe interval (demos, tests)")
    p.add_argument("--once", action="store_true", help="probe every target once, print, exit 0 if all ok else 1")
    p.add_argument("--format", choices=("table", "json"), default="table", help="--once output (default: table)")
    p.add_argument("--shutdown-grace", type=positive_seconds, default=10.0, metavar="SECONDS",
                   help="on SIGTERM, how long in-flight probes may run before they are cancelled (default: 10)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="default: info")
    p.set_defaults(func=run)


def setup_logging(level: str) -> None:
    """Log to stderr. Redaction needs nothing here: the CLI entry point installed it for every record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet, root.level))


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    for endpoint in config.endpoints:  # registers each key with the redactor; ApiKeyError exits 2
        read_api_key(endpoint.api_key_env)
    setup_logging(args.log_level)
    if args.once:
        return _run_loop(lambda: _once(config, args))
    return _run_loop(lambda: _serve(config, args))


def _run_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """uvloop when available (the prober's CPU share matters at a thousand targets), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


async def _once(config: Config, args: argparse.Namespace) -> int:
    from tokenpulse.prober.once import probe_once, render_json, render_text

    report = await probe_once(config)
    print(render_json(report) if args.format == "json" else render_text(report))
    return 0 if report.ok else 1


async def _serve(config: Config, args: argparse.Namespace) -> int:
    from prometheus_client import disable_created_metrics

    from tokenpulse.prober.service import Prober

    # Process-wide settings of the long-running prober. `_created` series would double the exposition
    # for no use here (and keep /metrics off the fast renderer). /metrics renders in a worker thread: a
    # 1 ms GIL switch interval (Python's default is 5 ms) bounds how long the event loop waits for the
    # GIL while a large exposition renders, which keeps scheduler lag low during scrapes.
    disable_created_metrics()
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
    prober = Prober(config, interval_override=args.interval, listen=args.listen,
                    shutdown_grace_s=args.shutdown_grace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logging.getLogger("tokenpulse.prober").info("%s received: stopping", signal.Signals(signum).name)
            stop.set()
        else:  # a second signal: do not wait for in-flight probes
            for task in asyncio.all_tasks(loop):
                if task.get_name().startswith("probe "):
                    task.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await prober.start()
    except OSError as exc:
        host, port = args.listen
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        await prober.stop()
        return 2
    try:
        await stop.wait()
    finally:
        await prober.stop()
    return 0
