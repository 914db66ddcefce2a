"""`tokenpulse probe --once`: probe every target once, concurrently (bounded), and report.

Why: the same probes as the scheduled prober, for cron jobs and CI smoke checks. It uses the same
runner (so a result means the same thing) and discovery, then prints a table or a JSON list whose rows
hold `endpoint`, `model`, `provider`, `profile` and the fields of `tokenpulse measure --json`
(`StreamResult.to_dict()`); the server-reported provider name, which that dict calls `provider`, is
renamed `reported_provider` so that `provider` stays the configured slug.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from tokenpulse.config import Config
from tokenpulse.core.format import fmt_number, fmt_seconds, render_table
from tokenpulse.core.recorder import StreamResult
from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.admission import CLIENT_MAX_CONNECTIONS, InFlightCap
from tokenpulse.prober.discovery import DiscoveryError, discover_listing, listing_names
from tokenpulse.prober.runner import ProbeRunner
from tokenpulse.prober.targets import (
    ProbeTarget,
    discovered_targets,
    discovery_models,
    key_ring,
    plan,
)
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver, new_async_client

log = logging.getLogger("tokenpulse.prober")


@dataclass(frozen=True, slots=True)
class OnceRow:
    """One target's probe; `result` is None when the prober itself failed (nothing was measured)."""

    probe: ProbeTarget
    result: StreamResult | None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok

    def to_dict(self) -> dict[str, Any]:
        if self.result is None:
            row: dict[str, Any] = {"outcome": "prober_error", "error_message": "the prober failed to run this "
                                   "probe (see its log); nothing was measured"}
        else:
            row = self.result.to_dict()
            row["reported_provider"] = row.pop("provider")
        return {"endpoint": self.probe.endpoint, "model": self.probe.model, "provider": self.probe.provider,
                "profile": self.probe.profile, **row}


@dataclass(frozen=True, slots=True)
class OnceReport:
    rows: list[OnceRow]
    discovery_errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.discovery_errors and bool(self.rows) and all(r.ok for r in self.rows)


async def probe_once(config: Config, *, metrics: ProberMetrics | None = None) -> OnceReport:
    """Probe every target (discovered ones included) once, under the prober's in-flight cap.
    Results are recorded in `metrics` too (a fresh registry unless given), exactly as the prober would."""
    keys = key_ring(config.endpoints)
    client = new_async_client(max_connections=CLIENT_MAX_CONNECTIONS)
    try:
        targets = list(config.targets())
        errors: list[str] = []
        wanted = discovery_models(config)
        # Concurrently: each listing request is bounded by discovery.TIMEOUT_S, and so is the lot.
        found = await asyncio.gather(*(discover_listing(client, endpoint, endpoint.models[index].id,
                                                        api_key=keys.for_endpoint(endpoint))
                                       for endpoint, index in wanted), return_exceptions=True)
        names: dict[tuple[str, str, str], tuple[str, ...]] = {}
        for (endpoint, index), listing in zip(wanted, found, strict=True):
            if isinstance(listing, DiscoveryError):
                log.warning("%s", listing)
                errors.append(str(listing))
            elif isinstance(listing, BaseException):
                raise listing
            else:
                model_id = endpoint.models[index].id
                targets += discovered_targets(config, endpoint, index, [p.tag for p in listing])
                names.update(listing_names(endpoint.name, model_id, listing))
        probes = plan(targets, keys, provider_names=names)
        runner = ProbeRunner(AsyncStreamDriver(client), metrics or ProberMetrics(), slo=config.slo,
                             confirm=config.probe.confirm, secrets=keys.secrets)
        cap = InFlightCap(config.probe.max_in_flight, config.slo.ttft_s)  # the scheduled prober's cap

        async def one(probe: ProbeTarget) -> OnceRow:
            slot = await cap.acquire()
            try:
                return OnceRow(probe, await runner.probe(probe))
            finally:
                cap.release(slot)

        rows = list(await asyncio.gather(*(one(p) for p in probes)))
    finally:
        await client.aclose()
    return OnceReport(rows, errors)


def render_json(report: OnceReport) -> str:
    return json.dumps([row.to_dict() for row in report.rows], indent=2)


def render_text(report: OnceReport) -> str:
    headers = ["endpoint", "model", "provider", "outcome", "TTFT", "TTFC", "E2E", "tok/s", "tokens"]
    rows = []
    for row in report.rows:
        r, p = row.result, row.probe
        provider = p.provider if p.profile == "default" else f"{p.provider} ({p.profile})"
        if r is None:
            rows.append([p.endpoint, p.model, provider, "prober_error", "-", "-", "-", "-", "-"])
            continue
        outcome = "ok" if r.ok else (r.error_class.value if r.error_class else "error")
        tokens = fmt_number(r.output_tokens) + (" (est.)" if r.tokens_estimated and r.output_tokens else "")
        rows.append([p.endpoint, p.model, provider, outcome, fmt_seconds(r.ttft_s), fmt_seconds(r.ttfc_s),
                     fmt_seconds(r.e2e_s), fmt_number(r.output_tokens_per_s), tokens])
    table = render_table(headers, rows) if rows else "no target probed"
    failed = [f"{row.probe.key}: prober error (nothing measured)" if row.result is None else
              f"{row.probe.key}: {row.result.error_class}: {row.result.error_message}"
              for row in report.rows if not row.ok]
    lines = [table]
    if failed:
        lines += ["", "failures:", *(f"  {line}" for line in failed)]
    if report.discovery_errors:
        lines += ["", "discovery failed:", *(f"  {e}" for e in report.discovery_errors)]
    return "\n".join(lines)
