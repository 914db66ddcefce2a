"""Compact JSON encoding for what tokenpulse writes per request: request bodies and JSONL records.

Why one helper: both are encoded once per request of a load test, where the per-request CPU decides
how many streams one Locust process carries (benchmarks/locust_capacity.py). orjson encodes them in
a fraction of the stdlib's time; what orjson refuses (integers beyond 64 bits, lone surrogates, types
it does not know) takes the stdlib path, so nothing that encoded before fails now. orjson writes
non-ASCII characters as UTF-8 rather than `\\u` escapes: the same JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

try:
    from orjson import OPT_APPEND_NEWLINE as _NEWLINE
    from orjson import dumps as _orjson_dumps
except ImportError:  # orjson is a dependency; without it everything takes the stdlib path
    _orjson_dumps = None  # type: ignore[assignment]
    _NEWLINE = 0


def dumps_compact(obj: Any, *, newline: bool = False) -> bytes:
    """`obj` as compact JSON bytes (no spaces), with a trailing newline if asked (a JSONL line, written
    by orjson in place rather than by copying the record). NaN and infinities become null, on both
    paths: they are not JSON, and a server's bad number must not cost the record that carries it."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(obj, option=_NEWLINE if newline else 0)
        except TypeError:  # orjson.JSONEncodeError
            pass
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(finite(obj), separators=(",", ":"), allow_nan=False)
    return (text + "\n" if newline else text).encode()


def dumps_pretty(obj: Any) -> str:
    """`obj` as indented JSON text for people (`measure --json`), NaN and infinities as null like
    `dumps_compact`: `json.dumps` would print `NaN`, which no JSON parser accepts."""
    try:
        return json.dumps(obj, indent=2, allow_nan=False)
    except ValueError:
        return json.dumps(finite(obj), indent=2, allow_nan=False)


def finite(value: Any) -> Any:
    """A copy of a JSON-ready value with every NaN and infinity replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
