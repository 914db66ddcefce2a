"""docs/config-reference.md and docs/metrics-reference.md are what tools/docs_gen.py makes of the code.

When this fails, the config model, the metric registries, the rule files or the dashboards changed: run
`make docs` (python -m tools.docs_gen) and commit the result.
"""

from __future__ import annotations

import pytest

from tokenpulse.config import Config
from tokenpulse.metrics import LoadMetrics, ProberMetrics
from tools import docs_gen


@pytest.mark.parametrize("rel", [docs_gen.CONFIG_DOC, docs_gen.METRICS_DOC], ids=lambda p: p.name)
def test_committed_reference_is_current(rel) -> None:
    generated = docs_gen.outputs()[rel]
    committed = (docs_gen.ROOT / rel).read_text(encoding="utf-8")
    assert committed == generated, f"{rel} is out of date: run `make docs` (python -m tools.docs_gen)"


def test_check_mode_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert docs_gen.main(["--check"]) == 0, capsys.readouterr().err


def test_every_config_field_is_in_the_reference() -> None:
    text = docs_gen.config_reference()
    for section in docs_gen._sections(Config):
        for name in section.model.model_fields:
            assert f"| `{name}` |" in text, f"{section.model.__name__}.{name}"


def test_every_metric_is_in_the_reference() -> None:
    text = docs_gen.metrics_reference()
    for container in (ProberMetrics(), LoadMetrics()):
        for metric in docs_gen._metric_objects(container):
            assert f"### `{docs_gen._exposed_name(metric)}`" in text


def test_per_target_series_count_matches_the_registry() -> None:
    """The stated prober figure is what one fully populated target exports (a live scrape of the mock farm
    showed 215 per target before any misfire, before the connection phase added 4: docs/scaling.md)."""
    text = docs_gen.metrics_reference()
    metrics = docs_gen._collect_metrics()
    prober = sum(m.series_per_target or 0 for m in metrics if "prober" in m.exported_by)
    assert f"| prober | {prober} |" in text
    assert prober == 230, "per-target series changed: re-measure and update docs/scaling.md#cardinality"
