"""`tokenpulse` entry point: builds the argument parser from each command module and dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tokenpulse import __version__
from tokenpulse.core.keys import ApiKeyError
from tokenpulse.core.redact import install as install_redaction
from tokenpulse.core.redact import redacted_stdio

#: Command modules under tokenpulse.cli, in the order `--help` lists them. Each has `register(subparsers)`.
COMMAND_MODULES = ("demo", "measure", "mock", "probe", "load", "report", "stack", "rules")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenpulse",
        description="Load-test and monitor LLM inference APIs (OpenRouter and OpenAI-compatible): "
                    "TTFT, throughput, errors and availability per provider.",
    )
    parser.add_argument("--version", action="version", version=f"tokenpulse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tokenpulse.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything can log or raise: every command's logs and tracebacks go through the redactor.
    install_redaction()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with redacted_stdio():
            return int(args.func(args) or 0)
    except ApiKeyError as exc:  # a key that is not ASCII, or that must not go where it was pointed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
