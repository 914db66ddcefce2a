"""The fast /metrics renderer writes exactly what prometheus-client's generate_latest writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prober_support import result
from prometheus_client import Counter, generate_latest
from prometheus_client import metrics as pc_metrics
from prometheus_client.core import GaugeMetricFamily

from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.exposition import FastExposition


@pytest.fixture(params=[False, True], ids=["created-off", "created-on"])
def created_series(request: pytest.FixtureRequest) -> Iterator[bool]:
    saved = pc_metrics._use_created
    pc_metrics._use_created = request.param
    yield request.param
    pc_metrics._use_created = saved


class _Custom:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("tokenpulse_test_custom", "A custom collector.", labels=["x"])
        family.add_metric(["a"], 1.5)
        yield family


def populated() -> ProberMetrics:
    metrics = ProberMetrics()
    for i in range(12):
        labels = {"endpoint": "mock", "model": f'm/"quoted"\\{i}', "provider": f"p{i}\nline"}
        metrics.requests.touch(labels)
        metrics.requests.observe(labels, result(ttft=0.1 * (i + 1), speed=40.0 + i))
        metrics.set_state(labels, "up" if i % 2 else "down")
        metrics.misfires.labels(**labels).inc(i)
        metrics.last_probe.labels(**labels).set(1.8e9 + i)
    metrics.credits_remaining.labels(endpoint="mock").set(99.25)
    metrics.scheduler_lag.observe(0.003)
    metrics.in_flight.set(2)
    return metrics


def test_byte_identical_to_generate_latest(created_series: bool) -> None:
    metrics = populated()
    renderer = FastExposition(metrics.registry)
    assert renderer.render() == generate_latest(metrics.registry)
    more = {"endpoint": "mock", "model": "late", "provider": "p-late"}
    metrics.requests.observe(more, result(ttft=2.5))  # a series added after the first render
    assert renderer.render() == generate_latest(metrics.registry)


def test_unknown_collectors_are_rendered_by_prometheus_client() -> None:
    metrics = populated()
    metrics.registry.register(_Custom())
    Counter("tokenpulse_test_plain", "No labels.", registry=metrics.registry).inc()
    assert FastExposition(metrics.registry).render() == generate_latest(metrics.registry)
