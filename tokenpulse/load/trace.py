"""Trace replay input: when each request arrives and how long its prompt and answer are.

Why replay a trace: a synthetic rate (even a bursty one) is a model of traffic; a production trace is
the traffic. A trace gives per request its arrival time and its input and output lengths (optionally
the messages themselves); `tokenpulse load --trace FILE` sends each at its own time, scaled by
`--speed` (2 = twice as fast), so the target sees the trace's bursts and its mix of lengths.

Formats (local files only, read before anything starts; a bad line stops the run with `file:line:
problem`, exit 2):
- `jsonl` (ours): one object per line, `{"timestamp": <seconds>, "input_tokens": N, "output_tokens":
  M}`, optionally `"messages": [...]` (OpenAI messages, sent as they are, `input_tokens` then only
  labels the record).
- `mooncake`: the Mooncake / aiperf trace JSONL, `{"timestamp": <milliseconds>, "input_length": N,
  "output_length": M, "hash_ids": [...]}`. Each hash id is a block of 512 tokens; requests that share
  leading hash ids get prompts that share those blocks of text, so the trace's prefix reuse reaches
  the target's prompt cache.
- `burstgpt`: the BurstGPT CSV (`Timestamp` in seconds, `Request tokens`, `Response tokens`; other
  columns ignored). Its failed requests have `Response tokens` 0: they are replayed with 1 output
  token (the request was sent; the trace does not say how long its answer would have been).

Times are relative to the first request (the trace is sorted by time when read). Lengths are bounded
like the config's (1..10M input, 1..1M output tokens); a trace of more than `MAX_ITEMS` requests is
refused rather than read into memory.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

TraceFormat = Literal["jsonl", "mooncake", "burstgpt"]
TRACE_FORMATS: tuple[str, ...] = ("jsonl", "mooncake", "burstgpt")
#: Mooncake's block of prompt tokens per hash id.
MOONCAKE_BLOCK_TOKENS = 512
MAX_ITEMS = 5_000_000
MAX_INPUT_TOKENS = 10_000_000
MAX_OUTPUT_TOKENS = 1_000_000
#: The first request is sent this long after the run starts, so every user is running by then (the
#: replayed times are the trace's own, offset by this lead-in).
LEAD_IN_S = 1.0


class TraceError(ValueError):
    """A trace that cannot be replayed; `str()` is `file:line: problem` (or `file: problem`)."""


@dataclass(frozen=True, slots=True)
class TraceItem:
    """One request of a trace: seconds after the trace's first request, lengths, optional content."""

    t_s: float
    input_tokens: int
    output_tokens: int
    messages: tuple[dict[str, Any], ...] | None = None
    hash_ids: tuple[int, ...] | None = None


def detect_format(path: str | Path) -> TraceFormat:
    """`burstgpt` for .csv files, `mooncake` when the first record has `input_length`, else `jsonl`."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return "burstgpt"
    try:
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    return "mooncake" if '"input_length"' in line else "jsonl"
    except (OSError, UnicodeDecodeError):
        pass  # load_trace reports the file's problem
    return "jsonl"


def load_trace(path: str | Path, fmt: TraceFormat | None = None) -> list[TraceItem]:
    """Read and check the whole trace; its items sorted by time, relative to the first. Raises TraceError."""
    source = str(path)
    fmt = fmt or detect_format(path)
    if fmt not in TRACE_FORMATS:
        raise TraceError(f"{source}: unknown trace format {fmt!r} (one of {', '.join(TRACE_FORMATS)})")
    try:
        raw = list(_read_csv(path, source) if fmt == "burstgpt" else _read_jsonl(path, source, fmt))
    except OSError as exc:
        raise TraceError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{source}: not UTF-8 text") from None
    if not raw:
        raise TraceError(f"{source}: no requests in the trace")
    raw.sort(key=lambda item: item.t_s)
    first = raw[0].t_s
    return [TraceItem(item.t_s - first, item.input_tokens, item.output_tokens, item.messages, item.hash_ids)
            for item in raw]


def _read_jsonl(path: str | Path, source: str, fmt: TraceFormat) -> Iterator[TraceItem]:
    count = 0
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:
                problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid JSON"
                raise TraceError(f"{source}:{lineno}: invalid JSON: {problem}") from None
            try:
                item = _mooncake_item(record) if fmt == "mooncake" else _jsonl_item(record)
            except ValueError as exc:
                raise TraceError(f"{source}:{lineno}: {exc}") from None
            count += 1
            if count > MAX_ITEMS:
                raise TraceError(f"{source}:{lineno}: more than {MAX_ITEMS} requests; split the trace")
            yield item


def _read_csv(path: str | Path, source: str) -> Iterator[TraceItem]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("Timestamp", "Request tokens", "Response tokens") if c not in (reader.fieldnames or ())]
        if missing:
            raise TraceError(f"{source}:1: BurstGPT CSV needs the columns Timestamp, Request tokens and "
                             f"Response tokens (missing: {', '.join(missing)})")
        for count, row in enumerate(reader, start=1):
            lineno = reader.line_num
            try:
                t = _seconds(row.get("Timestamp"), "Timestamp", 1.0)
                inp = _tokens(row.get("Request tokens"), "Request tokens", MAX_INPUT_TOKENS)
                out = _tokens(row.get("Response tokens"), "Response tokens", MAX_OUTPUT_TOKENS, minimum=0)
            except ValueError as exc:
                raise TraceError(f"{source}:{lineno}: {exc}") from None
            if count > MAX_ITEMS:
                raise TraceError(f"{source}:{lineno}: more than {MAX_ITEMS} requests; split the trace")
            yield TraceItem(t, inp, max(1, out))


def _jsonl_item(record: Any) -> TraceItem:
    if not isinstance(record, dict):
        raise ValueError('expected an object {"timestamp": s, "input_tokens": n, "output_tokens": m}')
    messages = record.get("messages")
    if messages is not None:
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise ValueError("messages must be a non-empty list of objects with a role")
    t = _seconds(record.get("timestamp"), "timestamp", 1.0)
    inp = _tokens(record.get("input_tokens"), "input_tokens", MAX_INPUT_TOKENS,
                  required=messages is None, default=1)
    out = _tokens(record.get("output_tokens"), "output_tokens", MAX_OUTPUT_TOKENS)
    return TraceItem(t, inp, out, tuple(dict(m) for m in messages) if messages is not None else None)


def _mooncake_item(record: Any) -> TraceItem:
    if not isinstance(record, dict):
        raise ValueError('expected an object {"timestamp": ms, "input_length": n, "output_length": m}')
    t = _seconds(record.get("timestamp"), "timestamp", 0.001)
    inp = _tokens(record.get("input_length"), "input_length", MAX_INPUT_TOKENS)
    out = _tokens(record.get("output_length"), "output_length", MAX_OUTPUT_TOKENS)
    ids = record.get("hash_ids")
    if ids is not None and not (isinstance(ids, list) and all(type(i) is int and 0 <= i < 2**63 for i in ids)):
        raise ValueError("hash_ids must be a list of non-negative integers")
    return TraceItem(t, inp, out, None, tuple(ids) if ids else None)


def _seconds(value: Any, name: str, scale: float) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0")
    return float(value) * scale


def _tokens(value: Any, name: str, maximum: int, *, minimum: int = 1, required: bool = True,
            default: int = 1) -> int:
    if value is None and not required:
        return default
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {value[:40]!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be a whole number from {minimum} to {maximum}")
    return value


def replay_times(items: list[TraceItem], *, speed: float, worker: int = 0, workers: int = 1,
                 lead_in_s: float = LEAD_IN_S) -> list[tuple[float, TraceItem]]:
    """This process's arrivals: (seconds after the run start, item) for every `workers`-th item from
    `worker` on (each request of the trace is sent by exactly one process), at the trace's times / speed."""
    return [(lead_in_s + item.t_s / speed, item) for i, item in enumerate(items) if i % workers == worker]


def trace_span_s(items: list[TraceItem], speed: float, lead_in_s: float = LEAD_IN_S) -> float:
    """Seconds from the run start to the last replayed arrival."""
    return lead_in_s + (items[-1].t_s / speed if items else 0.0)
