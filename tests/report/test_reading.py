"""Reading records in parallel byte ranges (report/reading.py): the same summary as one process, every
line read exactly once, and the one-pass cleaner equal to clean_record + compact_record."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.report.synth import closed_loop, record, write_run
from tokenpulse.report import reading
from tokenpulse.report import run as run_module
from tokenpulse.report.markdown import markdown_report
from tokenpulse.report.reading import KEPT_FIELDS, compact_record, plan_chunks, read_chunk
from tokenpulse.report.run import load_run
from tokenpulse.report.summary import summarize
from tokenpulse.runfolder.records import clean_fields, clean_record, iter_jsonl


def _messy_run(folder: Path) -> Path:
    """A two-target sweep split over two worker files, with lines a report must survive between them."""
    meta, records = closed_loop([2, 4, 8], step_s=6.0, targets=(("swiftinfer", "m1"), ("steadystack", "m1")))
    for i, r in enumerate(records):
        r["input_tokens_target"] = 60
        if i % 17 == 0:
            r.update(outcome="error", error_class="server_error", token_times_s=[], ttft_s=None, ttfc_s=None)
        if i % 23 == 0:  # spent its whole budget on reasoning: no TTFC
            r.update(ttfc_s=None, reasoning_tokens=20, output_tokens_target=20, finish_reason="length")
    write_run(folder, meta, [])
    junk = [b"not json\n", b"[1, 2]\n", b'{"start_time": "yesterday"}\n', b'{"ttft_s": NaN, "start_time": 1}\n']
    for w in range(2):
        with open(folder / f"records-w{w}-host-{w}.jsonl", "wb") as fh:
            for i, r in enumerate(records[w::2]):
                fh.write(json.dumps(r).encode() + b"\n")
                if i % 50 == 0:
                    fh.write(junk[i // 50 % len(junk)])
            fh.write(b'{"torn": ')  # a last line cut mid-write
    return folder


def test_parallel_read_gives_the_serial_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _messy_run(tmp_path / "run")
    monkeypatch.setattr(reading, "CHUNK_BYTES", 8_000)  # many ranges, most starting mid-file
    monkeypatch.setattr(run_module, "GAP_SAMPLE_BYTES", 100_000)  # the gap sample is on: every k-th per range
    forked: list[int] = []
    real = reading._read_parallel

    def counting(*args: Any) -> list[reading.ChunkResult]:
        forked.append(args[-1])
        return real(*args)

    monkeypatch.setattr(reading, "_read_parallel", counting)
    serial, parallel = load_run(folder, workers=1), load_run(folder, workers=2)
    assert forked == [2]  # the second read really ran in two processes
    assert serial.gap_sample_every > 1 and len(plan_chunks(sorted(folder.glob("records-*.jsonl")), 8_000)) > 10
    assert parallel.records == serial.records
    one, two = summarize(serial), summarize(parallel)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert one["run"]["records"] == sum(1 for f in folder.glob("records-*.jsonl") for r in iter_jsonl(f)
                                        if clean_record(r) is not None)


def test_ranges_hold_every_line_once(tmp_path: Path) -> None:
    path = tmp_path / "records-local.jsonl"
    lines = [json.dumps(record(float(i), ttft=0.1, tokens=1 + i % 30)).encode() + b"\n" for i in range(150)]
    path.write_bytes(b"".join(lines))
    for size in (1, 97, 4096, 10**9):
        chunks = plan_chunks([path], size)
        assert chunks[0].start == 0 and chunks[-1].end == path.stat().st_size
        assert all(a.end == b.start for a, b in zip(chunks, chunks[1:], strict=False))
        data = path.read_bytes()
        assert all(c.start == 0 or data[c.start - 1:c.start] == b"\n" for c in chunks)
        got = [r["start_time"] for c in chunks for r in read_chunk(c, 1, None).records]
        assert got == [json.loads(line)["start_time"] for line in lines]


MESSY: list[dict[str, Any]] = [
    {"start_time": 1e9, "ttft_s": float("inf"), "e2e_s": True, "step": 1.5, "phase": 3, "token_times_s": [0.1, "x"],
     "prompt_tokens": -1, "output_tokens": 12.0, "estimated_cost_usd": 1e9, "tokens_estimated": False,
     "outcome": "ok", "error_class": None, "user_id": 3, "reasoning_tokens": False},
    {"start_time": 1e9, "ttft_s": 0.2, "ttfc_s": None, "reasoning_tokens": 9, "output_tokens": 9,
     "output_tokens_target": 9, "outcome": "ok", "token_times_s": [0.2, 0.3], "input_tokens_target": "64"},
    {"start_time": -5, "ttft_s": 0.1},
    {"start_time": True},
    {"start_time": 1e9, "output_tokens_per_s": 10**400, "queue_wait_s": 0.0, "model": "m", "tokens_estimated": True},
]


@pytest.mark.parametrize("raw", MESSY)
def test_one_pass_cleaner_equals_clean_then_compact(raw: dict[str, Any]) -> None:
    cleaned = clean_record(copy.deepcopy(raw))
    expected = None if cleaned is None else compact_record(cleaned, None, None)
    got = clean_fields(copy.deepcopy(raw), KEPT_FIELDS)
    if got is not None and got.get("reasoning_tokens") and "ttfc_s" not in got:
        reading.mark_exhausted(got, copy.deepcopy(raw))
    got = None if got is None else reading._compacted(got, None, None)
    assert got == expected


def test_report_shows_prompt_target_and_reasoning_exhausted(tmp_path: Path) -> None:
    folder = _messy_run(tmp_path / "run")
    summary = summarize(load_run(folder, workers=1))
    prompts = summary["prompts"]
    fig = prompts["targets"]["swiftinfer"]
    assert fig["input_tokens"]["target_mean"] == 60 and fig["input_tokens"]["prompt_tokens_mean"] == 64
    assert abs(fig["input_tokens"]["ratio"] - 64 / 60) < 1e-12
    assert prompts["all"]["reasoning_exhausted"]["requests"] > 0
    assert any("miscalibrated" in w for w in summary["warnings"])
    assert any("on reasoning and gave no answer" in w for w in summary["warnings"])
    report = markdown_report(summary)
    assert "## Prompt length and reasoning budget" in report and "| swiftinfer |" in report
    ex = prompts["all"]["reasoning_exhausted"]
    assert f"{ex['requests']} of {ex['of_ok']} ok" in report
