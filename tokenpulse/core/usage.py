"""What a valid usage number is: one rule for the recorder (a server's `usage`), the cost guard and the
reports (numbers read back from JSONL).

Why one rule: a server's usage decides cost, `--max-cost`, token metrics and every report total. A
value that is not a finite non-negative number (NaN, Infinity, -1, 1e308, a 400-digit integer, a string)
must never reach any of them: NaN or a negative cost defeats the cost cap, makes a Prometheus counter
NaN for good and prints invalid JSON; 1e308 overflows a report's sums. Such usage is *invalid*: the
record says so (`usage_invalid`) and its tokens and cost are treated as unknown, never mixed in.

The upper bounds are far beyond any real request (context windows hold millions of tokens; the dearest
models cost dollars per request) and low enough that the sum over any run's records stays finite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Largest token count taken as real (no request carries a trillion tokens).
MAX_TOKENS = 10**12
#: Largest cost of one request taken as real, USD.
MAX_COST_USD = 1e6


class _Invalid:
    """The marker of a value that is present but not a valid usage number."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def token_count(value: Any) -> int | None:
    """A token count: None when absent (None), an int in [0, MAX_TOKENS] (an integral float is
    accepted: some servers write 12.0), else `INVALID`."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return value if 0 <= value <= MAX_TOKENS else INVALID
    if kind is float and value.is_integer() and 0 <= value <= MAX_TOKENS:  # NaN/inf: is_integer False
        return int(value)
    return INVALID


def cost_usd(value: Any) -> float | None:
    """A cost in USD: None when absent, a float in [0, MAX_COST_USD], else `INVALID`."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return float(value) if 0 <= value <= MAX_COST_USD else INVALID
    if kind is float and 0.0 <= value <= MAX_COST_USD:  # NaN fails every comparison
        return value
    return INVALID


def finite_cost(value: float | None) -> float | None:
    """`value` when it is a usable cost (finite, >= 0), else None: for sums that must stay finite."""
    if value is None or type(value) not in (int, float) or not 0 <= value < math.inf:
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class Usage:
    """The usage figures a recorder keeps; every field None when absent (or when `invalid`)."""

    prompt_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    invalid: bool = False


NO_USAGE = Usage()
INVALID_USAGE = Usage(invalid=True)


def parse_usage(usage: Any) -> Usage:
    """A server's `usage` object, validated once per request (it arrives in the last chunk).

    Any present figure that is not a valid number makes the whole usage invalid: keeping the valid
    figures beside estimated ones would mix the two silently. Absent `*_details` objects (or null
    ones, as OpenAI sends) are absent figures, not invalid ones."""
    if usage is None:
        return NO_USAGE
    if type(usage) is not dict:
        return INVALID_USAGE
    values = (
        token_count(usage.get("prompt_tokens")),
        token_count(usage.get("completion_tokens")),
        token_count(_detail(usage, "completion_tokens_details", "reasoning_tokens")),
        token_count(_detail(usage, "prompt_tokens_details", "cached_tokens")),
        cost_usd(usage.get("cost")),
    )
    if any(v is INVALID for v in values):
        return INVALID_USAGE
    return Usage(*values)


def _detail(usage: Mapping[str, Any], container: str, key: str) -> Any:
    details = usage.get(container)
    return details.get(key) if type(details) is dict else None
