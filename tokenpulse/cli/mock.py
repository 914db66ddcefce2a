"""`tokenpulse mock`: serve the embedded mock provider farm until SIGINT/SIGTERM (tokenpulse.mock.command
holds the options and the handler, shared with `python -m tokenpulse.mock`)."""

from __future__ import annotations

from typing import Any

from tokenpulse.mock.command import add_arguments, run


def register(subparsers: Any) -> None:
    """Add the `mock` subcommand to an argparse subparsers object (from add_subparsers())."""
    parser = subparsers.add_parser(
        "mock", help="serve the mock OpenRouter-compatible provider farm",
        description="Serve the embedded OpenRouter/OpenAI-compatible mock provider farm until "
                    "interrupted. Base URL: http://HOST:PORT/api/v1 (OpenAI-compatible: /v1).")
    add_arguments(parser)
    parser.set_defaults(func=run)
