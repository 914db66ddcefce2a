"""Prometheus `/metrics` on the Locust master while a test runs (the `LoadMetrics` family).

Why on the master: Grafana should show one load test as one scrape target, whatever the number of
workers. Workers cannot be scraped reliably (they come and go, and may sit behind NAT), so they attach a
compact summary of each finished request and their health samples to Locust's periodic worker report
(`report_to_master`, every few seconds), and the master feeds them into the same `RequestMetrics` the
prober uses: one request is recorded identically whichever path measured it (metric names are shared;
the scrape job tells the prober from the load test).

What a worker sends per request is the typed wire record `observation.Observation` (to_dict /
from_dict): the figures `RequestMetrics.observe` reads, nothing else. Label values come from the config
(endpoint, model, provider: by target index) and from enums (outcome, error class); the worker label is
Locust's worker index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import start_http_server

from tokenpulse.config import Target
from tokenpulse.load.observation import Observation
from tokenpulse.metrics import LoadMetrics


class LoadExporter:
    """Owns the master's registry and applies observations, health samples and shape state to it."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.metrics = LoadMetrics()
        self.labels = [t.labels for t in targets]
        for labels in self.labels:
            self.metrics.requests.touch(labels)
        self.port: int | None = None
        self._server: Any = None

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the HTTP endpoint (a daemon thread: a greenlet under Locust's monkey-patching)."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.metrics.registry)
        self.port = int(self._server.server_address[1])
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def observe(self, obs: Observation) -> None:
        index = obs.target
        if not 0 <= index < len(self.labels):
            return  # a worker with a different config: ignore rather than invent labels
        self.metrics.requests.observe(self.labels[index], obs, cost_usd=obs.cost_usd)
        if obs.queue_wait_s is not None:
            self.metrics.queue_wait.observe(obs.queue_wait_s)

    def health(self, worker: str, cpu: float | None, lags: Sequence[float]) -> None:
        if cpu is not None:
            self.metrics.generator_cpu.labels(worker=worker).set(cpu)
        lag = self.metrics.client_lag.labels(worker=worker)
        for value in lags:
            lag.observe(value)

    def shape(self, *, step: int, users: int, target_users: int, rate: float | None) -> None:
        self.metrics.step.set(step)
        self.metrics.users.set(users)
        self.metrics.target_concurrency.set(target_users)
        self.metrics.target_rate.set(rate or 0.0)
