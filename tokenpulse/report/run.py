"""Reading a run folder: meta.json, every records-*.jsonl and health-*.jsonl (from every worker).

A folder is a run when it has meta.json (written by the Locust master or the only process) or at least
one records file. Records from several machines are collected simply by copying their files into one
folder; the file names carry the worker index, host and pid, so they never collide.

Why records are compacted as they are read (`compact_record`): a run of a million requests must report
in under a minute and 2 GB. Each record keeps only the fields the report computes with, its strings
interned, and no null or false values; its chunk gaps (tens of millions in such a run) are counted
once, in integer microseconds (the records' own resolution, so exactly), into `RunData.gap_counts`
per (target, step, phase) of the successful requests; and its token times (only used to place tokens
in measured windows) shrink to their first and last when no window edge falls between them (nearly
every request), else to a float32 array (30 µs at 600 s is far below any window edge that matters).

Chunk gaps of a big run are a systematic sample: counting them costs ~35 µs per 128-token record
(half the report's time at a million records), so when the records files hold more than
GAP_SAMPLE_BYTES, only every k-th record (in reading order, whatever its gaps: an unbiased sample) has
its gaps counted, k = ceil(bytes / GAP_SAMPLE_BYTES); `gap_sample_every` says k and the chunk-gap figures
carry it and their own `n`. Below that (~50,000 records of 128 tokens) every gap counts.

The cyclic garbage collector is paused while a run is read and summarized (`paused_gc`): records are
plain acyclic dicts that reference counting frees, and a million of them make every full collection
walk the whole heap again (3x slower reading).
"""

from __future__ import annotations

import gc
import json
import operator
import sys
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpulse.runfolder.generations import GenerationTally, join_generations
from tokenpulse.runfolder.records import HEALTH_GLOB, META_FILE, RECORDS_GLOB, clean_record, iter_jsonl
from tokenpulse.runfolder.schedule import Schedule

GapKey = tuple[str, str, str, Any, Any]

#: The record fields a report computes with (report/figures.py, summary.py, html.py); the rest is dropped
#: on reading.
KEPT_FIELDS = frozenset({
    "outcome", "error_class", "ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s", "output_tokens_per_s",
    "queue_wait_s", "prompt_tokens", "output_tokens", "reasoning_tokens", "tokens_estimated", "token_times_s",
    "start_time", "t_s", "step", "phase", "endpoint", "model", "target_provider", "estimated_cost_usd",
    "generation_id", "cost_usd", "provider",  # the /generation join, the provider matrix, report/routing.py
    "cached_tokens", "input_tokens_target",  # report/cache.py, report/prefill.py
    # structured answers (report/validity.py)
    "structured", "validity", "tool_required", "tool_called", "finish_reason", "first_tool_call_s",
})
_INTERNED = ("outcome", "error_class", "phase", "endpoint", "model", "target_provider", "provider")


_MICRO = 1e6
#: Records files larger than this have the chunk gaps of every k-th record counted (module docstring).
GAP_SAMPLE_BYTES = 100_000_000


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside (see the module docstring); restores the collector's state."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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


def compact_record(record: dict[str, Any], gaps: dict[GapKey, Counter[int]] | None,
                   edges: list[float] | None = None) -> dict[str, Any]:
    """The record with only the fields the report reads (see the module docstring); its chunk gaps go
    into `gaps` when it succeeded (and `gaps` is given: it is None for records left out of the sample);
    `edges`: the measured windows' edges (`window_edges`), None to keep every token time."""
    # None and False are what a missing field reads as (`.get`): leaving them out keeps a typical record
    # at <= 21 keys, the largest dict before CPython doubles its table (464 bytes instead of 832).
    out = {k: v for k, v in record.items() if k in KEPT_FIELDS and v is not None and v is not False}
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


class RunError(Exception):
    """Not a readable run folder; the message is for the user."""


@dataclass(slots=True)
class RunData:
    path: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    health: list[dict[str, Any]]
    record_files: list[str] = field(default_factory=list)
    #: successful requests' chunk gaps in integer µs per (endpoint, model, target_provider, step, phase);
    #: None when the records were not read by `load_run` (then figures count them from token times).
    gap_counts: dict[GapKey, Counter[int]] | None = None
    #: chunk gaps were counted for every k-th record (1: all of them)
    gap_sample_every: int = 1
    #: how the /generation lookups went (runfolder/generations.py); their fields are on the records
    generations: GenerationTally = field(default_factory=GenerationTally)

    @property
    def schedule(self) -> Schedule | None:
        data = self.meta.get("schedule")
        return Schedule.from_dict(data) if data else None

    @property
    def run_start(self) -> float:
        start = self.meta.get("run_start")
        if start is not None:
            return float(start)
        if self.records:  # no meta (a run killed before the controller wrote it): infer from a record
            r = self.records[0]
            return float(r["start_time"]) - float(r.get("t_s", 0.0))
        return 0.0

    @property
    def run_end(self) -> float:
        """When the run stopped: meta's run_end, else the last record's end (a killed run)."""
        end = self.meta.get("run_end")
        last = max((record_end(r) for r in self.records), default=self.run_start)
        return float(end) if end is not None else last


def record_end(record: dict[str, Any]) -> float:
    return float(record["start_time"]) + float(record.get("e2e_s") or 0.0)


def load_run(path: str | Path) -> RunData:
    folder = Path(path)
    if not folder.is_dir():
        raise RunError(f"{folder}: not a directory")
    meta: dict[str, Any] = {}
    meta_path = folder / META_FILE
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunError(f"{meta_path}: invalid JSON: {exc}") from None
    files = sorted(folder.glob(RECORDS_GLOB))
    if not meta and not files:
        raise RunError(f"{folder}: no {META_FILE} and no {RECORDS_GLOB}: not a tokenpulse run folder")
    records: list[dict[str, Any]] = []
    gaps: dict[GapKey, Counter[int]] = {}
    every = max(1, -(-sum(f.stat().st_size for f in files) // GAP_SAMPLE_BYTES))
    edges = window_edges(meta)
    i = 0
    with paused_gc():
        for f in files:
            for raw in iter_jsonl(f):
                r = clean_record(raw)
                if r is not None:
                    records.append(compact_record(r, gaps if i % every == 0 else None, edges))
                    i += 1
        records.sort(key=lambda r: r["start_time"])
        generations = join_generations(folder, records)
    health: list[dict[str, Any]] = []
    for f in sorted(folder.glob(HEALTH_GLOB)):
        health.extend(iter_jsonl(f))
    return RunData(path=folder, meta=meta, records=records, health=health, record_files=[f.name for f in files],
                   gap_counts=gaps, gap_sample_every=every, generations=generations)
