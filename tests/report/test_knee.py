"""The knee: stated only when the intervals support it, never a ZeroDivisionError, "no knee within the
tested levels" as an explicit answer, and drawn only on its own target's plots."""

from __future__ import annotations

import re
from pathlib import Path

from synth import MODELS, closed_loop, write_run

from tokenpulse.report.build import write_report
from tokenpulse.report.knee import MIN_STEP_OK, NO_KNEE, StepPoint, find_knee
from tokenpulse.report.run import load_run
from tokenpulse.report.summary import summarize


def test_repeated_level_does_not_divide_by_zero_and_is_no_knee(tmp_path: Path) -> None:
    meta, records = closed_loop([16, 16], step_s=10)
    summary = summarize(load_run(write_run(tmp_path, meta, records)))
    knee = summary["knee"]["all"]
    assert knee["level"] is None and knee["reason"].startswith(NO_KNEE)
    assert "two distinct levels" in knee["reason"] and knee["levels_used"] == [16.0]


def test_repeated_levels_are_pooled_between_others() -> None:
    points = [StepPoint(4, 100, 0.2, 50, 5), StepPoint(8, 200, 0.2, 50, 5), StepPoint(8, 204, 0.2, 50, 5),
              StepPoint(16, 205, 0.2, 50, 5)]
    knee = find_knee(points)
    assert knee["levels_used"] == [4, 8, 16] and knee["level"] == 8


def test_a_dip_inside_the_noise_is_not_a_knee() -> None:
    # Levels close together, throughput 100 / 104 / 99 with se 8: nothing is significant either way.
    noisy = [StepPoint(10, 100, 0.2, 60, 8), StepPoint(11, 104, 0.2, 60, 8), StepPoint(12, 99, 0.21, 60, 8)]
    knee = find_knee(noisy)
    assert knee["level"] is None and knee["reason"].startswith(NO_KNEE) and "within the noise" in knee["reason"]
    # The same means with no noise at all: the drop is real, and it is a knee.
    exact = [StepPoint(10, 100, 0.2, 60, 0), StepPoint(11, 104, 0.2, 60, 0), StepPoint(12, 99, 0.21, 60, 0)]
    assert find_knee(exact)["level"] == 11


def test_a_flat_sweep_of_a_big_target_has_no_knee(tmp_path: Path) -> None:
    meta, records = closed_loop([1, 2, 4, 8], step_s=15)  # capacity unlimited: throughput doubles every step
    knee = summarize(load_run(write_run(tmp_path, meta, records)))["knee"]["all"]
    assert knee["level"] is None and "still grew significantly up to 8" in knee["reason"]


def test_saturation_is_found_at_the_target_capacity(tmp_path: Path) -> None:
    meta, records = closed_loop([2, 4, 8, 16], step_s=15, capacity=lambda p, m: 4)
    knee = summarize(load_run(write_run(tmp_path, meta, records)))["knee"]["all"]
    assert knee["level"] == 4 and "significantly below" in knee["reason"]


def test_steps_with_too_few_completions_take_no_part() -> None:
    few = [StepPoint(1, 10, 0.2, MIN_STEP_OK - 1, 1), StepPoint(2, 20, 0.2, MIN_STEP_OK - 1, 1),
           StepPoint(4, 21, 0.2, MIN_STEP_OK, 1)]
    knee = find_knee(few)
    assert knee["level"] is None and knee["levels_used"] == [4]


def _chart(html: str, title: str) -> str:
    match = re.search(r"<svg[^>]*>(?:(?!</svg>).)*?" + re.escape(title) + r".*?</svg>", html, re.S)
    assert match, title
    return match.group(0)


def test_knee_is_drawn_only_on_its_own_targets_plots(tmp_path: Path) -> None:
    # swiftinfer on the first model saturates at 4 slots; on the second model it never does.
    targets = [("swiftinfer", MODELS[0]), ("swiftinfer", MODELS[1])]
    meta, records = closed_loop([2, 4, 8, 16], step_s=15, targets=targets,
                                capacity=lambda p, m: 4 if m == MODELS[0] else 10**6)
    summary = write_report(write_run(tmp_path, meta, records))
    names = [t["name"] for t in summary["targets"]]
    assert summary["knee"]["targets"][names[0]]["level"] == 4
    assert summary["knee"]["targets"][names[1]]["level"] is None
    html = (tmp_path / "report.html").read_text()
    assert "class=\"marker\"" in _chart(html, f"Output throughput: {names[0]}")
    assert "class=\"marker\"" not in _chart(html, f"Output throughput: {names[1]}")
    assert "class=\"marker\"" not in _chart(html, "TTFT against load")  # overlays every target
    md = (tmp_path / "report.md").read_text()
    assert NO_KNEE in md
