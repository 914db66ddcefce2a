"""`python -m tokenpulse.mock`: the mock server on its own (what MockServerProcess runs).

Same options and behaviour as `tokenpulse mock`, without importing the rest of the CLI.
"""

from __future__ import annotations

import argparse
import sys

from tokenpulse.mock.command import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenpulse.mock",
                                     description="Serve the tokenpulse mock provider farm.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
