"""Helpers for the Locust-run tests: config files, CLI invocations, reading run folders."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

MODEL = "nvidia/nemotron-3-super-120b-a12b"
REPO = Path(__file__).resolve().parents[2]


def write_config(path: Path, base_url: str, providers: list[str], *, price: bool = True,
                 workload: dict[str, Any] | None = None, slo: dict[str, Any] | None = None) -> Path:
    model: dict[str, Any] = {"id": MODEL, "providers": providers}
    if price:
        model["price"] = {"prompt_per_mtok": 0.09, "completion_per_mtok": 0.45}
    config = {
        "endpoints": [{"name": "mock", "base_url": base_url, "models": [model]}],
        "load": {"workload": {"input_tokens_mean": 64, "output_tokens_mean": 16, "fixed_output": True,
                              "reasoning": {"enabled": False}, **(workload or {})},
                 "timeouts": {"connect_s": 5, "ttft_s": 30, "idle_s": 15, "total_s": 60}},
        "slo": slo or {"ttft_s": 2.0, "tpot_s": 0.05},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def tokenpulse(*args: str, timeout: float = 150, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """`tokenpulse ARGS` in a subprocess (the CLI process itself never imports Locust)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "tokenpulse", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"tokenpulse {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def records(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(run_dir.glob("records-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows


def locust_counts(run_dir: Path) -> dict[tuple[str, str], int]:
    """Locust's own final request counts by (type, name), from the summary table it prints at exit
    (locust.log). Its `_stats.csv` is a periodic snapshot (every second) that can miss the last second."""
    lines = (run_dir / "locust.log").read_text(encoding="utf-8").splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Type ") and "# fails" in line)
    counts: dict[tuple[str, str], int] = {}
    for line in lines[start + 2:]:
        if line.startswith("-") or "Aggregated" in line:
            break
        kind, name, count = line.split()[:3]
        counts[(kind, name)] = int(count)
    return counts


def locust_csv_counts(run_dir: Path) -> dict[tuple[str, str], int]:
    """Counts from Locust's `_stats.csv` (written every second while the test runs)."""
    with open(run_dir / "locust_stats.csv", newline="", encoding="utf-8") as fh:
        return {(row["Type"], row["Name"]): int(row["Request Count"]) for row in csv.DictReader(fh)
                if row["Name"] != "Aggregated"}


def summary(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))


