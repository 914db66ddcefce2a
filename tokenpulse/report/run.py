"""Reading a run folder: meta.json, every records-*.jsonl and health-*.jsonl (from every worker).

A folder is a run when it has meta.json (written by the Locust master or the only process) or at least
one records file. Records from several machines are collected simply by copying their files into one
folder; the file names carry the worker index, host and pid, so they never collide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpulse.runfolder.records import HEALTH_GLOB, META_FILE, RECORDS_GLOB, clean_record, iter_jsonl
from tokenpulse.runfolder.schedule import Schedule


class RunError(Exception):
    """Not a readable run folder; the message is for the user."""


@dataclass(slots=True)
class RunData:
    path: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    health: list[dict[str, Any]]
    record_files: list[str] = field(default_factory=list)

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
    for f in files:
        records.extend(r for r in map(clean_record, iter_jsonl(f)) if r is not None)
    records.sort(key=lambda r: r["start_time"])
    health: list[dict[str, Any]] = []
    for f in sorted(folder.glob(HEALTH_GLOB)):
        health.extend(iter_jsonl(f))
    return RunData(path=folder, meta=meta, records=records, health=health, record_files=[f.name for f in files])
