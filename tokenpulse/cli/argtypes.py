"""argparse value types shared by the commands, so every command rejects bad numbers the same way
(exit 2 with `error: argument --flag: ...`)."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def positive_seconds(text: str) -> float:
    """A duration flag (timeouts, grace): > 0 and at most a day, as in the config (huge values overflow
    the clock arithmetic)."""
    from tokenpulse.config import MAX_SECONDS

    try:
        value = positive_float(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (seconds)") from None
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:g} seconds (a day), got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def interval_seconds(text: str) -> float:
    """A probe interval: the config's floor and ceiling (tokenpulse.config) apply to the flag too."""
    from tokenpulse.config import MAX_SECONDS, MIN_INTERVAL_S

    value = positive_seconds(text)
    if not MIN_INTERVAL_S <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be between {MIN_INTERVAL_S:g} and {MAX_SECONDS:g} seconds, got {text}")
    return value
