"""Scheduling against the mock: jitter without drift, cadence, isolation of a hanging provider, misfires.

No absolute timing assertions: probe counts are compared with the number of grid slots that the same
run's own clock says fit into it.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from monitor.mock import MockServerThread
from monitor.prober.scheduler import GridIntervalTrigger

from prober_support import config_data, make_config, run_prober, sample

INTERVAL = 0.5
RUN_S = 4.0


def test_grid_trigger_jitter_does_not_accumulate() -> None:
    random.seed(3)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    trigger = GridIntervalTrigger(seconds=60, start_date=start, jitter=15, timezone=UTC)
    fire = trigger.get_next_fire_time(None, start - timedelta(seconds=1))
    for n in range(1, 2000):
        fire = trigger.get_next_fire_time(fire, fire)
        assert fire is not None
        offset = (fire - start).total_seconds() - n * 60
        assert 0 <= offset < 15, (n, offset)


def test_grid_trigger_after_a_late_start_picks_the_next_slot() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    trigger = GridIntervalTrigger(seconds=10, start_date=start, timezone=UTC)
    fire = trigger.get_next_fire_time(None, start + timedelta(seconds=25))
    assert fire == start + timedelta(seconds=30)


def expected_slots(elapsed: float) -> float:
    return elapsed / INTERVAL


def test_cadence_holds(farm_server: MockServerThread) -> None:
    providers = ["fast-a", "fast-b", "fast-c"]
    config = make_config(config_data(farm_server.base_url, providers, interval_s=30.0))
    prober, elapsed = asyncio.run(run_prober(config, RUN_S, interval=INTERVAL))
    counts = {p.probe.provider: p.history.probes for p in prober.runner.tracked.values()}
    for provider, count in counts.items():
        assert abs(count - expected_slots(elapsed)) <= 1, (provider, count, elapsed)
        assert sample(prober, "tokenpulse_requests_total", endpoint="mock", model="test/chat",
                      provider=provider, outcome="ok", error_class="none") == count
    assert prober.scheduler.misfires == 0


def test_a_hanging_provider_does_not_delay_the_others(farm_server: MockServerThread) -> None:
    """`hang` never sends a byte; each of its probes lasts until the 2 s TTFT timeout, four intervals.
    The fast providers keep their cadence; the hung target's skipped runs are counted as misfires."""
    providers = ["fast-a", "fast-b", "hang", "fast-c"]
    config = make_config(config_data(farm_server.base_url, providers))
    prober, elapsed = asyncio.run(run_prober(config, RUN_S, interval=INTERVAL))
    tracked = {p.probe.provider: p for p in prober.runner.tracked.values()}
    for provider in ("fast-a", "fast-b", "fast-c"):
        count = tracked[provider].history.probes
        assert abs(count - expected_slots(elapsed)) <= 1, (provider, count, elapsed)
        assert tracked[provider].state.state == "up"
    hung = tracked["hang"]
    assert 1 <= hung.history.probes < expected_slots(elapsed) / 2
    assert all(f.error_class == "timeout_ttft" for f in hung.history.failures)
    labels = {"endpoint": "mock", "model": "test/chat", "provider": "hang"}
    misfires = sample(prober, "tokenpulse_probe_misfires_total", **labels)
    assert misfires >= 1
    # every grid slot is either a probe or a counted misfire
    assert abs(hung.history.probes + misfires - expected_slots(elapsed)) <= 2
    assert sample(prober, "tokenpulse_requests_total", **labels, outcome="error",
                  error_class="timeout_ttft") == hung.history.probes
