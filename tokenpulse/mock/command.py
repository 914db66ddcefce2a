"""The mock farm's own command line (`python -m tokenpulse.mock`, and `tokenpulse mock` through the CLI).

Prints one line with the base URL once listening (MockServerProcess parses it), nothing else on
stdout. A farm file that does not validate prints one `error: <file>: <field path>: <problem>` line
per problem on stderr and exits 2; a port that cannot be bound exits 1.

Here rather than in tokenpulse.cli because MockServerProcess starts the mock as `python -m
tokenpulse.mock`, which must not import the rest of the CLI (0.3 s more per start, measured), and an
app does not import the CLI above it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tokenpulse.mock.farm import FarmConfigError, default_farm, load_farm
from tokenpulse.mock.runner import run_mock_server, url_host

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def idle_seconds(text: str) -> float:
    """--idle-timeout: the farm's `idle_timeout_s` bounds (0 < s <= one day)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    if value > 86_400:
        raise argparse.ArgumentTypeError(f"must be at most 86400 (one day), got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind, 0 for any (default: 8080)")
    parser.add_argument("--config", metavar="FARM.yaml",
                        help="farm definition (default: the built-in default_farm.yaml)")
    parser.add_argument("--seed", type=int, help="override the farm's seed")
    parser.add_argument("--idle-timeout", type=idle_seconds, metavar="SECONDS",
                        help="close connections that send no complete request for this long "
                             "(default: the farm's idle_timeout_s, 75)")


def run(args: argparse.Namespace) -> int:
    """Handler of the `mock` subcommand; returns the process exit code."""
    try:
        farm = load_farm(args.config) if args.config else default_farm()
    except FarmConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    if args.seed is not None:
        farm = farm.model_copy(update={"seed": args.seed})
    if args.idle_timeout is not None:
        farm = farm.model_copy(update={"idle_timeout_s": args.idle_timeout})
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def ready(port: int) -> None:
        base = f"http://{url_host(args.host)}:{port}"
        print(f"tokenpulse mock serving {base}/api/v1 (OpenAI-compatible: {base}/v1)", flush=True)

    try:
        run_mock_server(farm, args.host, args.port, ready=ready)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_OK
