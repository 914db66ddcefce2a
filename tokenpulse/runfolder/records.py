"""Per-request JSONL: one line per finished request, written with a single `write(2)` the moment it ends.

Why one unbuffered append per record: a run killed with SIGKILL (OOM killer, CI timeout) must keep
every request it completed. The kernel finishes a `write` before it delivers a kill, and the file is
opened with O_APPEND, so the file only ever holds whole lines; no Python buffer can hold one back.

Distributed runs: every Locust process that runs users writes its own `records-<process>.jsonl` (and
`health-<process>.jsonl`) in the run folder; nothing per request crosses the network, so the master is
never a bottleneck and a lost connection loses no record. `--processes` puts all files in one folder; on
several machines each writes locally and the files are collected into one folder for `tokenpulse
report`, which reads every `records-*.jsonl` it finds (docs/load-testing.md).

Fields: `StreamResult.to_dict()` (the names of `tokenpulse measure --json`, with the token arrival times
`token_times_s` and, with ground truth, `truth_lags_s`), plus where and when the request ran:
`start_time` (Unix seconds), `t_s` (seconds since the run start), `user_id`, `worker`, `step`, `level`,
`phase` (warmup or measure), `users` (target concurrency), `endpoint`, `model`, `target_provider` (the
configured provider; `provider` is what the server said), `queue_wait_s` (open-loop arrival rate only),
`scheduled_t_s` (open loop: when the arrival was scheduled, seconds since the run start), `turn`,
`input_tokens_target`, `output_tokens_target` and `estimated_cost_usd`. `outcome` is `ok`, `error` or
`cancelled` (still in flight when the drain after a step change or the run's end passed; the timings
it reached are kept). `step` is the step in which the request was *sent*. No request text, header
or key is ever written; error messages were already redacted by the recorder.

Reading back (`iter_jsonl`, `clean_record`): a report must never fail on what a file holds, whoever wrote
it. Lines that are not JSON objects are skipped (also JSON nested deeper than the parser can go); NaN
and infinities (which other writers emit) become null; a field the report computes with that holds no
usable number or string is dropped, and token counts and costs follow the recorder's rule
(tokenpulse/core/usage.py): one that is invalid is dropped and the record marked `usage_invalid`.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpulse.core.jsonwire import dumps_compact, finite
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.usage import INVALID, cost_usd, token_count

try:
    from orjson import loads as _strict_loads  # refuses NaN, Infinity, 1e999 and nesting past 1,024
except ImportError:  # orjson is a dependency; without it every line takes the stdlib path
    def _strict_loads(data: bytes) -> Any:  # type: ignore[misc]
        raise ValueError("orjson is not installed")

META_FILE = "meta.json"
RECORDS_GLOB = "records-*.jsonl"
HEALTH_GLOB = "health-*.jsonl"
RECORD_VERSION = 1


class JsonlAppender:
    """Append-only JSONL file; each `write` is one `os.write` of one complete line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.count = 0

    def write(self, obj: dict[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = _encode_line(obj)
        view = memoryview(data)
        while view:  # a regular file takes it in one go; loop only for the pathological partial write
            written = os.write(self._fd, view)
            view = view[written:]
        self.count += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _encode_line(obj: dict[str, Any]) -> bytes:
    """One JSON line (tokenpulse/core/jsonwire.py: orjson, stdlib fallback, NaN and infinities as null)."""
    return dumps_compact(obj, newline=True)


def build_record(result: StreamResult, **context: Any) -> dict[str, Any]:
    """The JSONL record of one request: the measure --json fields plus the load-test context. The series
    are written as the recorder made them, at microsecond resolution (0.1 µs for ground-truth lags)."""
    record = result.to_dict(include_series=True)
    if result.truth_lags_s is None:
        del record["truth_lags_s"]
    record["v"] = RECORD_VERSION
    record.update(context)
    return record


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Complete JSON lines of a file; a torn last line (impossible with JsonlAppender, possible with
    other writers) is skipped rather than failing the whole report."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            obj = _loads_line(line)
            if isinstance(obj, dict):
                yield obj


def _loads_line(line: bytes) -> Any:
    """One line's JSON value with only finite numbers, or None. orjson parses strict JSON (what
    JsonlAppender writes) fast; the stdlib takes the rest (NaN, Infinity, integers past 64 bits)."""
    try:
        return _strict_loads(line)
    except ValueError:
        pass
    try:
        return finite(json.loads(line))
    except (ValueError, RecursionError):
        return None


_REAL = (int, float)
_MAX_FLOAT = sys.float_info.max
#: 9999-12-31T23:59:59Z: the last Unix time a date can be printed for.
_MAX_UNIX_TIME = 253_402_300_799
#: Record fields that reports compute with, by the kind of value they must hold.
_NUMBER_FIELDS = ("t_s", "scheduled_t_s", "ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s", "output_tokens_per_s",
                  "queue_wait_s", "retry_after_s", "truth_ttft_s", "level", "users", "first_tool_call_s")
_INT_FIELDS = ("step", "user_id", "turn", "http_status", "chunk_count", "bytes_received", "keepalive_count",
               "input_tokens_target", "output_tokens_target")
_STRING_FIELDS = ("outcome", "error_class", "error_message", "phase", "endpoint", "model", "target_provider",
                  "provider", "worker", "generation_id", "finish_reason")
_SERIES_FIELDS = ("token_times_s", "truth_lags_s")
_TOKEN_FIELDS = ("prompt_tokens", "output_tokens", "reasoning_tokens", "cached_tokens")
_COST_FIELDS = ("cost_usd", "estimated_cost_usd")


def _number(value: Any) -> bool:
    """A finite int or float that converts to float (not a bool, NaN, infinity or a 400-digit int)."""
    return type(value) in _REAL and -_MAX_FLOAT <= value <= _MAX_FLOAT


_NUMBER, _INT, _STRING, _SERIES, _TOKENS, _COST = range(6)
#: field -> the kind of value it must hold (the tables above, as one lookup per field).
_KIND: dict[str, int] = {
    **dict.fromkeys(_NUMBER_FIELDS, _NUMBER), **dict.fromkeys(_INT_FIELDS, _INT),
    **dict.fromkeys(_STRING_FIELDS, _STRING), **dict.fromkeys(_SERIES_FIELDS, _SERIES),
    **dict.fromkeys(_TOKEN_FIELDS, _TOKENS), **dict.fromkeys(_COST_FIELDS, _COST),
}


def _valid(kind: int, value: Any) -> bool:
    """`value` (not None) is usable as a field of this kind."""
    if kind == _NUMBER:
        return _number(value)
    if kind == _INT:
        return type(value) is int and -_MAX_FLOAT <= value <= _MAX_FLOAT
    if kind == _STRING:
        return type(value) is str
    if kind == _SERIES:
        return _series(value)
    if kind == _TOKENS:
        return token_count(value) is not INVALID
    return cost_usd(value) is not INVALID


def _placed(record: dict[str, Any]) -> bool:
    """A usable `start_time`: a Unix time from 1970 to 9999."""
    start = record.get("start_time")
    return isinstance(start, _REAL) and not isinstance(start, bool) and 0 <= start <= _MAX_UNIX_TIME


def clean_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """`record` made safe for the reports (in place), or None when it cannot be placed in time (no
    usable `start_time`: a Unix time from 1970 to 9999). Once per record read: a few dict lookups, no
    pass over its fields."""
    if not _placed(record):
        return None
    invalid = False
    for key, kind in _KIND.items():
        value = record.get(key)
        if value is not None and not _valid(kind, value):
            del record[key]
            invalid = invalid or kind >= _TOKENS
    if invalid:
        record["usage_invalid"] = True
    return record


def clean_fields(record: dict[str, Any], keep: frozenset[str]) -> dict[str, Any] | None:
    """`clean_record` of only the fields in `keep`, as a new dict without None or False values (what a
    missing field reads as anyway), or None when it cannot be placed in time. One pass over the record:
    what a reader of a million records calls instead of cleaning fields it then drops."""
    if not _placed(record):
        return None
    out: dict[str, Any] = {}
    invalid = False
    kinds = _KIND
    for key, value in record.items():
        if value is None or key not in keep:
            continue
        kind = kinds.get(key)
        if kind is None:
            if value is not False:
                out[key] = value
        elif type(value) is float and kind == _NUMBER:  # nearly every field: the check inline
            if -_MAX_FLOAT <= value <= _MAX_FLOAT:
                out[key] = value
        elif _valid(kind, value):
            if value is not False:
                out[key] = value
        elif kind >= _TOKENS:
            invalid = True
    if invalid and "usage_invalid" in keep:
        out["usage_invalid"] = True
    return out


def _series(value: Any) -> bool:
    """A list of finite numbers (their sum, in C, is finite only then; a str or None raises)."""
    if type(value) is not list:
        return False
    try:
        return _number(float(sum(value)))
    except (TypeError, OverflowError):
        return False


def process_tag(worker_index: int | None, pid: int | None = None) -> str:
    """File-name tag of one Locust process: `local`, or `w<index>-<host>-<pid>` for a worker."""
    if worker_index is None:
        return "local"
    host = os.uname().nodename.split(".")[0] or "host"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in host)
    return f"w{worker_index}-{safe}-{pid or os.getpid()}"


def reasoning_exhausted(record: dict[str, Any]) -> bool:
    """An `ok` stream that spent its whole `max_tokens` on reasoning and gave no answer: it measured no
    TTFC, and its speed is the reasoning's. Such requests are counted and warned about, never mixed in
    silently (raise max_tokens or lower the reasoning effort)."""
    if record.get("outcome") != "ok" or record.get("ttfc_s") is not None:
        return False
    reasoning, output, budget = (record.get("reasoning_tokens"), record.get("output_tokens"),
                                 record.get("output_tokens_target"))
    if not reasoning or not output:
        return False
    return reasoning >= output and (budget is None or output >= budget or record.get("finish_reason") == "length")


@dataclass(slots=True)
class RunTally:
    """Counts over every record of a run folder (all steps and phases): what `tokenpulse load` checks
    before it calls a run usable."""

    records: int = 0
    ok: int = 0
    cancelled: int = 0
    error_classes: Counter[str] = field(default_factory=Counter)
    reasoning_exhausted: int = 0

    @property
    def errors(self) -> int:
        return sum(self.error_classes.values())

    @property
    def all_failed(self) -> bool:
        """Requests were sent and not one succeeded (cancelled ones aside, which say nothing)."""
        return self.errors > 0 and self.ok == 0


def tally(run_dir: str | Path) -> RunTally:
    out = RunTally()
    for path in sorted(Path(run_dir).glob(RECORDS_GLOB)):
        for record in iter_jsonl(path):
            out.records += 1
            outcome = record.get("outcome")
            if outcome == "ok":
                out.ok += 1
                if reasoning_exhausted(record):
                    out.reasoning_exhausted += 1
            elif outcome == "cancelled":
                out.cancelled += 1
            else:
                out.error_classes[str(record.get("error_class"))] += 1
    return out
