"""Reading the records files of a run folder into compact records, in parallel worker processes.

Why in parallel, and why byte ranges: parsing and cleaning JSON is most of a big report's time (a
million records: 2 GB of JSONL), and every record is independent. The files are cut into ranges of
about CHUNK_BYTES that start and end at line boundaries (`plan_chunks`), so a run of one big file
parallelizes as well as one with a file per worker; each range is read, parsed (orjson), cleaned and
compacted in a worker, which sends back only the compact records and its counted chunk gaps.

The result does not depend on how many processes read: ranges are fixed by the files alone, results
are joined in file-and-offset order (the order a single process reads in), and the gap sample restarts
at each range. A run smaller than one range, or a platform without worker processes, is read in the
calling process, with the same functions (also when the process has threads: see `_read_parallel`).

Compaction (`compact_record`): a run of a million requests must report in under a minute and 2 GB.
Each record keeps only the fields the report computes with (KEPT_FIELDS), its strings interned, and no
null or false values; its chunk gaps (tens of millions in such a run) are counted once, in integer
microseconds (the records' own resolution, so exactly), per (target, step, phase) of the successful
requests; and its token times (only used to place tokens in measured windows) shrink to their first and
last when no window edge falls between them (nearly every request), else to a float32 array (30 µs at
600 s is far below any window edge that matters).

Chunk gaps of a big run are a systematic sample: counting them costs ~35 µs per 128-token record, so
when the records files hold more than GAP_SAMPLE_BYTES, only every k-th record of each range (in
reading order, whatever its gaps: an unbiased sample) has its gaps counted, k = ceil(bytes /
GAP_SAMPLE_BYTES); the summary's `chunk_gap_sample_every` says k, and the chunk-gap figures carry their
own `n`. Below that (~50,000 records of 128 tokens) every gap counts.
"""

from __future__ import annotations

import gc
import multiprocessing
import operator
import os
import sys
import threading
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpulse.runfolder.records import _loads_line, clean_fields, reasoning_exhausted
from tokenpulse.runfolder.schedule import Schedule

#: Flag of a compact record that spent its whole budget on reasoning (runfolder.records.reasoning_exhausted).
EXHAUSTED = "reasoning_exhausted"

GapKey = tuple[str, str, str, Any, Any]
Gaps = dict[GapKey, Counter[int]]

#: The record fields a report computes with (report/figures.py, summary.py, html.py); the rest is dropped
#: on reading.
KEPT_FIELDS = frozenset({
    "outcome", "error_class", "ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s", "output_tokens_per_s",
    "queue_wait_s", "prompt_tokens", "output_tokens", "reasoning_tokens", "tokens_estimated", "token_times_s",
    "start_time", "t_s", "step", "phase", "endpoint", "model", "target_provider", "estimated_cost_usd",
    "input_tokens_target", EXHAUSTED,
    "generation_id", "cost_usd", "provider",  # the /generation join, the provider matrix, report/routing.py
    "cached_tokens",  # report/cache.py (input_tokens_target: report/prefill.py, prompts.py)
    # structured answers (report/validity.py)
    "structured", "validity", "tool_required", "tool_called", "finish_reason", "first_tool_call_s",
})
_INTERNED = ("outcome", "error_class", "phase", "endpoint", "model", "target_provider", "provider")
#: What `reasoning_exhausted` reads beyond the kept fields (judged once, on reading; only the flag is kept).
_BUDGET_FIELDS = frozenset({"start_time", "output_tokens_target", "finish_reason"})

_MICRO = 1e6
#: Records files larger than this have the chunk gaps of every k-th record counted (module docstring).
GAP_SAMPLE_BYTES = 100_000_000
#: Size of the byte ranges the files are cut into (one task of a reading process each).
CHUNK_BYTES = 32 * 1024 * 1024
#: At most this many reading processes (beyond the CPUs the report may use, they only cost memory).
MAX_READERS = 8


def gap_key(record: dict[str, Any]) -> GapKey:
    return (str(record.get("endpoint")), str(record.get("model")), str(record.get("target_provider")),
            record.get("step"), record.get("phase"))


def gap_counter(times: Any, into: Counter[int] | None = None) -> Counter[int]:
    """Chunk gaps of one request's token times, counted in integer microseconds."""
    counts: Counter[int] = Counter() if into is None else into
    if times is not None and len(times) > 1:
        # Whole microseconds first (the records' resolution), then differences: exact, and every step
        # runs in C (a run holds tens of millions of gaps).
        us = list(map(round, map(_MICRO.__mul__, times)))
        counts.update(map(operator.sub, us[1:], us))
    return counts


def window_edges(meta: dict[str, Any]) -> list[float] | None:
    """Unix times where a measured window starts or ends, when meta.json fixes them all (else None)."""
    data, start, end = meta.get("schedule"), meta.get("run_start"), meta.get("run_end")
    if not data or start is None or end is None:
        return None
    try:
        steps = Schedule.from_dict(data).steps
        edges = {float(start) + s.measure_start_s for s in steps} | {float(start) + s.end_s for s in steps}
    except (KeyError, TypeError, ValueError):
        return None
    return sorted(edges | {float(end)})


def mark_exhausted(out: dict[str, Any], record: dict[str, Any]) -> None:
    """Set the EXHAUSTED flag on `out` (the kept fields of the cleaned `record`) when its request spent
    its whole `max_tokens` on reasoning: the budget fields it is judged by are not kept."""
    budget = clean_fields(record, _BUDGET_FIELDS) or {}
    if reasoning_exhausted({**out, **budget}):
        out[EXHAUSTED] = True


def compact_record(record: dict[str, Any], gaps: Gaps | None, edges: list[float] | None = None) -> dict[str, Any]:
    """The record (already cleaned) with only the fields the report reads (see the module docstring);
    its chunk gaps go into `gaps` when it succeeded (and `gaps` is given: it is None for records left out
    of the sample); `edges`: the measured windows' edges (`window_edges`), None to keep every token time."""
    # None and False are what a missing field reads as (`.get`): leaving them out keeps a typical record
    # small (a dict of <= 21 keys takes 464 bytes, the next table size 832).
    out = {k: v for k, v in record.items() if k in KEPT_FIELDS and v is not None and v is not False}
    if out.get("reasoning_tokens") and "ttfc_s" not in out:
        mark_exhausted(out, record)
    return _compacted(out, gaps, edges)


def _compacted(out: dict[str, Any], gaps: Gaps | None, edges: list[float] | None) -> dict[str, Any]:
    """`out` (only kept fields, no None or False) with its strings interned, gaps counted, times shrunk."""
    for k in _INTERNED:
        v = out.get(k)
        if type(v) is str:
            out[k] = sys.intern(v)
    times = out.get("token_times_s")
    if times:
        if gaps is not None and out.get("outcome") == "ok":
            key = gap_key(out)
            counter = gaps.get(key)
            if counter is None:
                counter = gaps[key] = Counter()
            gap_counter(times, counter)
        start = out["start_time"]
        if edges is not None:
            j = bisect_right(edges, start + times[0])
            if j == len(edges) or edges[j] > start + times[-1]:  # no edge splits its tokens
                out["token_times_s"] = (times[0], times[-1]) if len(times) > 1 else (times[0],)
                return out
        out["token_times_s"] = array("f", times)
    return out


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes [start, end) of one records file: whole lines (the last one of a file may be torn)."""

    path: str
    start: int
    end: int


def plan_chunks(files: Sequence[Path], chunk_bytes: int = CHUNK_BYTES) -> list[Chunk]:
    """The files cut into ranges of about `chunk_bytes`, each ending just after a newline (or at the end
    of its file): a function of the files alone, so any number of readers reads the same ranges."""
    out: list[Chunk] = []
    for path in files:
        size = path.stat().st_size
        start = 0
        with open(path, "rb") as fh:
            while start < size:
                end = start + chunk_bytes
                if end >= size:
                    end = size
                else:
                    fh.seek(end - 1)
                    rest = fh.readline()  # up to and including the newline that ends the line at `end - 1`
                    end = min(size, end - 1 + len(rest))
                out.append(Chunk(str(path), start, end))
                start = end
    return out


@dataclass(slots=True)
class ChunkResult:
    records: list[dict[str, Any]]
    gaps: Gaps


def read_chunk(chunk: Chunk, every: int, edges: list[float] | None) -> ChunkResult:
    """The compact records of one range, in file order, and the chunk gaps of every `every`-th one that
    can be placed in time (counted from the range's start). Lines that are not JSON objects, records
    without a usable start time and a torn last line are skipped, as `iter_jsonl` and `clean_record` do."""
    was = gc.isenabled()
    gc.disable()  # acyclic dicts only: a full collection would walk all of them again and again
    try:
        with open(chunk.path, "rb") as fh:
            fh.seek(chunk.start)
            data = fh.read(chunk.end - chunk.start)
        lines = data.split(b"\n")
        del data
        lines.pop()  # b"" after the last newline, or a torn line (no newline: never complete)
        records: list[dict[str, Any]] = []
        gaps: Gaps = {}
        keep = KEPT_FIELDS
        i = 0
        for line in lines:
            raw = _loads_line(line)
            if type(raw) is not dict:
                continue
            r = clean_fields(raw, keep)
            if r is not None:
                if r.get("reasoning_tokens") and "ttfc_s" not in r:  # rare: judge it with its budget
                    mark_exhausted(r, raw)
                records.append(_compacted(r, gaps if i % every == 0 else None, edges))
                i += 1
        return ChunkResult(records, gaps)
    finally:
        if was:
            gc.enable()


#: Fewer CPUs than this read in-process: on 2 CPUs the readers' fork, pickling and join cost more CPU
#: than the parallel parse saves (docs/benchmarks.md, "report on 1,000,000 records"), and the report's
#: summarizing, which is single-process, then competes with them.
MIN_PARALLEL_CPUS = 4


def readers(chunks: int) -> int:
    """Reading processes for this many ranges: one per CPU this process may run on, at most one per range;
    1 (this process) below MIN_PARALLEL_CPUS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if cpus < MIN_PARALLEL_CPUS:
        return 1
    return max(1, min(cpus, chunks, MAX_READERS))


def read_records(files: Sequence[Path], every: int, edges: list[float] | None,
                 workers: int | None = None, chunk_bytes: int | None = None) -> tuple[list[dict[str, Any]], Gaps]:
    """Every compact record of the files in reading order, and their counted chunk gaps merged; `workers`:
    reading processes (None: `readers`; 1: this process); `chunk_bytes`: None for CHUNK_BYTES."""
    chunks = plan_chunks(files, CHUNK_BYTES if chunk_bytes is None else chunk_bytes)
    n = readers(len(chunks)) if workers is None else max(1, min(workers, len(chunks)))
    results = None
    if n > 1 and _can_fork():
        try:
            results = _read_parallel(chunks, every, edges, n)
        except (OSError, BrokenExecutor):  # no processes here (limits, a sandbox), or one was killed (OOM)
            results = None
    records: list[dict[str, Any]] = []
    gaps: Gaps = {}
    for result in results if results is not None else (read_chunk(c, every, edges) for c in chunks):
        records.extend(result.records)
        for key, counts in result.gaps.items():
            total = gaps.get(key)
            if total is None:
                gaps[key] = counts
            else:
                total.update(counts)
    return records, gaps


def _read_parallel(chunks: list[Chunk], every: int, edges: list[float] | None, workers: int) -> list[ChunkResult]:
    """The ranges read by `workers` forked processes, results in range order.

    Fork, and only from a process with one thread: a fork copies nothing yet (the records are not read)
    and needs no re-import of the caller's main module (which spawn and forkserver do, and which fails
    in a script without a `__main__` guard); forking a process with threads (`tokenpulse load`, which
    reports at its end) can deadlock the child, so there `_can_fork` says no and the records are read here."""
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(read_chunk, chunks, [every] * len(chunks), [edges] * len(chunks)))


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
