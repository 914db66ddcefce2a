"""The Pareto marking of per-user speed against total throughput, and its plot (sans-IO, synthetic runs)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from tests.report.synth import closed_loop, write_run
from tokenpulse.report.build import write_report
from tokenpulse.report.pareto import pareto_optimal, pareto_summary


def test_a_point_beaten_on_both_axes_is_not_optimal() -> None:
    # (throughput, per-user speed): the third is beaten by the second on both
    assert pareto_optimal([(100, 50), (300, 40), (250, 30), (500, 20)]) == [True, True, False, True]


def test_better_on_one_axis_and_equal_on_the_other_dominates() -> None:
    assert pareto_optimal([(300, 40), (300, 35)]) == [True, False]
    assert pareto_optimal([(300, 40), (320, 40)]) == [False, True]


def test_equal_points_are_both_optimal() -> None:
    assert pareto_optimal([(200, 30), (200, 30), (100, 10)]) == [True, True, False]


def test_single_point_and_empty() -> None:
    assert pareto_optimal([(1.0, 1.0)]) == [True]
    assert pareto_optimal([]) == []


def test_non_finite_points_are_neither_optimal_nor_dominating() -> None:
    assert pareto_optimal([(math.nan, 100.0), (10, 5), (math.inf, math.inf)]) == [False, True, False]


def _steps(points: list[tuple[float, float | None, float | None]]) -> list[dict]:
    return [{"index": i, "level": level, "measured": True,
             "targets": {"a": {"throughput": {"output_tokens_per_s": tp}, "output_tps": {"p50": speed, "n": 20}}}}
            for i, (level, tp, speed) in enumerate(points)]


def test_summary_lists_every_level_with_both_figures() -> None:
    steps = _steps([(1, 50.0, 50.0), (2, 100.0, 50.0), (4, 100.0, 25.0), (8, None, None)])
    out = pareto_summary(steps, ["a"])
    assert out is not None
    points = out["targets"]["a"]
    assert [p["level"] for p in points] == [1, 2, 4]  # the level without a successful request is left out
    assert [p["optimal"] for p in points] == [False, True, False]
    assert all(p["n"] == 20 for p in points)
    assert pareto_summary(_steps([(1, 50.0, 50.0)]), ["a"]) is None  # one step: no trade-off


def test_levels_below_saturation_are_dominated_in_the_report(tmp_path: Path) -> None:
    # 4 slots: up to 4 users every request decodes at the same speed, so 1 and 2 users give the same
    # per-user speed as 4 for less throughput (dominated); past 4 each user's speed halves as the
    # users double while the throughput stays about flat (a trade-off: optimal unless it drops).
    meta, records = closed_loop([1, 2, 4, 8, 16], step_s=12, capacity=lambda p, m: 4, jitter=0.0)
    summary = write_report(write_run(tmp_path, meta, records))
    marks = {p["level"]: p["optimal"] for p in summary["pareto"]["targets"]["swiftinfer"]}
    assert marks == {1: False, 2: False, 4: True, 8: True, 16: True}, marks
    html = (tmp_path / "report.html").read_text()
    chart = re.search(r"<svg[^>]*>(?:(?!</svg>).)*?Per-user speed against total throughput.*?</svg>", html, re.S)
    assert chart
    svg = chart.group(0)
    assert svg.count('class="optimal"') == sum(marks.values())
    assert svg.count('fill="#fff"') == len(marks) - sum(marks.values())  # dominated: hollow
    for level in marks:
        assert f">{level:g}</text>" in svg  # every level labelled
    assert "TTFT against achieved rate" in html
