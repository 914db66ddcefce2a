"""Reading a run folder: meta.json, every records-*.jsonl and health-*.jsonl (from every worker).

A folder is a run when it has meta.json (written by the Locust master or the only process) or at least
one records file. Records from several machines are collected simply by copying their files into one
folder; the file names carry the worker index, host and pid, so they never collide.

Records are read by `reading.py` (in parallel worker processes for a big run) into compact records:
only the fields the report computes with, chunk gaps counted once as they are read (`RunData.gap_counts`,
a systematic sample in a big run: `gap_sample_every`), token times shrunk (see reading.py for why).

The cyclic garbage collector is paused while a run is read and summarized (`paused_gc`): records are
plain acyclic dicts that reference counting frees, and a million of them make every full collection
walk the whole heap again (3x slower reading).
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpulse.report.reading import GAP_SAMPLE_BYTES, GapKey, read_records, window_edges
from tokenpulse.report.reading import gap_counter as gap_counter  # figures.py counts unread records' gaps
from tokenpulse.runfolder.generations import GenerationTally, join_generations
from tokenpulse.runfolder.records import HEALTH_GLOB, META_FILE, RECORDS_GLOB, iter_jsonl
from tokenpulse.runfolder.schedule import Schedule


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
        if end is not None:  # read on every figure: the pass over the records only when meta has no end
            return float(end)
        return max((record_end(r) for r in self.records), default=self.run_start)


def record_end(record: dict[str, Any]) -> float:
    return float(record["start_time"]) + float(record.get("e2e_s") or 0.0)


def load_run(path: str | Path, workers: int | None = None) -> RunData:
    """The run folder read back; `workers`: processes that read the records (None: one per CPU for a
    big run, reading.py; 1: this process only). The result is the same whatever their number."""
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
    every = max(1, -(-sum(f.stat().st_size for f in files) // GAP_SAMPLE_BYTES))
    with paused_gc():
        records, gaps = read_records(files, every, window_edges(meta), workers)
        records.sort(key=lambda r: r["start_time"])
        generations = join_generations(folder, records)
    health: list[dict[str, Any]] = []
    for f in sorted(folder.glob(HEALTH_GLOB)):
        health.extend(iter_jsonl(f))
    return RunData(path=folder, meta=meta, records=records, health=health, record_files=[f.name for f in files],
                   gap_counts=gaps, gap_sample_every=every, generations=generations)
