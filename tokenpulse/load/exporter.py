"""Prometheus `/metrics` on the Locust master while a test runs (the `LoadMetrics` family).

Why on the master: Grafana should show one load test as one scrape target, whatever the number of
workers. Workers cannot be scraped reliably (they come and go, and may sit behind NAT), so they attach a
compact summary of each finished request and their health samples to Locust's periodic worker report
(`report_to_master`, every few seconds), and the master feeds them into the same `RequestMetrics` the
prober uses: one request is recorded identically whichever path measured it (metric names are shared;
the scrape job tells the prober from the load test).

A compact observation is a list of plain numbers (msgpack-friendly): the figures `RequestMetrics.observe`
reads, nothing else. Label values come from the config (endpoint, model, provider: by target index) and
from enums (outcome, error class); the worker label is Locust's worker index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import start_http_server

from tokenpulse.config import Target
from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import StreamResult
from tokenpulse.metrics import LoadMetrics

Observation = list[Any]


def observation(target_index: int, result: StreamResult, cost_usd: float | None,
                queue_wait_s: float | None) -> Observation:
    """The compact form of one request for the worker -> master report."""
    return [target_index, result.outcome.value, result.error_class.value if result.error_class else None,
            result.ttfb_s, result.ttft_s, result.ttfc_s, result.e2e_s, result.tpot_s, result.output_tokens_per_s,
            result.prompt_tokens, result.output_tokens, result.reasoning_tokens, result.tokens_estimated,
            cost_usd, queue_wait_s]


def result_from_observation(obs: Sequence[Any]) -> StreamResult:
    """Rebuild the fields `RequestMetrics.observe` reads (series are not carried: chunk gaps stay in the
    JSONL, as LoadMetrics does not observe them)."""
    (_, outcome, error_class, ttfb, ttft, ttfc, e2e, tpot, speed, prompt, output, reasoning, estimated,
     cost, _) = obs
    return StreamResult(
        outcome=Outcome(outcome), error_class=ErrorClass(error_class) if error_class else None,
        error_message=None, http_status=None, t0_ns=0, ttfb_s=ttfb, ttft_s=ttft, ttfc_s=ttfc, e2e_s=e2e,
        tpot_s=tpot, output_tokens_per_s=speed, prompt_tokens=prompt, output_tokens=output,
        reasoning_tokens=reasoning, cached_tokens=None, cost_usd=cost, tokens_estimated=bool(estimated),
        chunk_count=0, token_times_s=[], provider=None, generation_id=None, finish_reason=None,
        retry_after_s=None, bytes_received=0, keepalive_count=0,
    )


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

    def observe(self, obs: Sequence[Any]) -> None:
        index = int(obs[0])
        if not 0 <= index < len(self.labels):
            return  # a worker with a different config: ignore rather than invent labels
        result = result_from_observation(obs)
        self.metrics.requests.observe(self.labels[index], result, cost_usd=obs[13])
        queue_wait = obs[14]
        if queue_wait is not None:
            self.metrics.queue_wait.observe(queue_wait)

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
