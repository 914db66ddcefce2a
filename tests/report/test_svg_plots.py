"""report.html's plots: one colour per target on every plot, p95 dashed in its p50's colour, the CDF as a
step function, charts that scale with the page (a viewBox, no fixed size)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.report.synth import MODELS, closed_loop, write_run
from tokenpulse.report.build import write_report
from tokenpulse.report.svg import Series, line_chart, target_colors


def _charts(html: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r'<svg[^>]*aria-label="([^"]*)"[^>]*>.*?</svg>', html, re.S)}


def test_each_target_keeps_its_colour_and_p95_is_dashed_in_it(tmp_path: Path) -> None:
    targets = [("swiftinfer", MODELS[0]), ("steadystack", MODELS[0])]
    meta, records = closed_loop([2, 4, 8], step_s=10, targets=targets)
    write_report(write_run(tmp_path, meta, records))
    html = (tmp_path / "report.html").read_text()
    colors = target_colors(["swiftinfer", "steadystack"])
    assert len(set(colors.values())) == 2
    charts = _charts(html)
    ttft = charts["TTFT against load"]
    lines = re.findall(r'<polyline points="[^"]*" fill="none" stroke="([^"]*)" stroke-width="2"( stroke-dasharray)?',
                       ttft)
    for name, color in colors.items():
        assert (color, "") in lines and (color, " stroke-dasharray") in lines, (name, lines)
    used = {c for chart in charts.values() for c in re.findall(r'stroke="(#[0-9a-f]{6})"', chart)}
    assert used <= {*colors.values(), "#444"}, used  # no colour beyond the targets' (and the all-targets grey)
    cdf = charts["TTFT distribution (CDF)"]
    assert re.search(r'<path d="M[\d.]+,[\d.]+ V[\d.]+( H[\d.]+ V[\d.]+)+"', cdf)  # a step function
    for chart in charts.values():
        assert "viewBox" in chart and ' width="' not in chart.split(">", 1)[0]


def test_legend_sits_under_the_plot_and_a_fixed_x_range_is_kept() -> None:
    svg = line_chart([Series("a", [(1, 1), (2, 2)]), Series("b", [(1, 2), (2, 3)], dashed=True)], title="t",
                     x_label="x", y_label="y", x_range=(0, 10), vlines=[5])
    view = [float(v) for v in re.search(r'viewBox="([^"]*)"', svg).group(1).split()]  # type: ignore[union-attr]
    legend_y = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" class="legend">', svg)]
    assert len(legend_y) == 2 and min(legend_y) > 330 - 46 and max(legend_y) < view[3]
    assert ">10</text>" in svg and 'class="vline"' in svg
