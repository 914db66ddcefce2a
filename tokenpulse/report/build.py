"""Write a run folder's summary.json, report.md and report.html from its records (re-runnable at will)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tokenpulse.report.html import render_html, ttft_samples, ttft_timeline
from tokenpulse.report.markdown import markdown_report
from tokenpulse.report.run import RunError, load_run, paused_gc
from tokenpulse.report.servermetrics import server_series
from tokenpulse.report.summary import summarize

SUMMARY_FILE = "summary.json"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(run_dir: str | Path) -> dict[str, Any]:
    """Summarize the records and (re)write the three report files; returns the summary."""
    run = load_run(run_dir)
    with paused_gc():
        summary = summarize(run)
        folder = Path(run_dir)
        _write(folder / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        _write(folder / MARKDOWN_FILE, markdown_report(summary))
        server = server_series(run)
        timeline = ttft_timeline(run, summary) if server else None  # only plotted beside the server's figures
        _write(folder / HTML_FILE, render_html(summary, ttft_samples(run, summary), timeline, server))
    return summary


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """A run's summary: recomputed from its records when it has them, else its summary.json."""
    folder = Path(run_dir)
    try:
        run = load_run(folder)
    except RunError:
        path = folder / SUMMARY_FILE
        if not path.exists():
            raise
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise RunError(f"{path}: invalid JSON: {exc}") from None
    with paused_gc():
        return summarize(run)
