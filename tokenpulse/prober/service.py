"""The long-running prober: targets, scheduler, credits, discovery, HTTP server and periodic summary.

Why a service object: `tokenpulse probe`, the tests and the benchmark all run the same thing, and its
start/stop order matters: the HTTP port is bound first (a bad `--listen` fails before any probe is
sent), then the configured targets are scheduled, and on stop scheduling and housekeeping end before
in-flight probes are awaited and the HTTP client is closed.

Discovery never holds anything up: it runs as a scheduler job whose first run is at start, each listing
request bounded by its own total timeout (discovery.py), so explicit targets are probed on schedule
while a listing hangs, `start()` returns at once and SIGTERM is honoured. Providers join the schedule
as they are found (staggered over their interval like the first round); /readyz waits for every
discovery to have been tried once, so readiness does not flip back when the first ones join.

Discovery follows the listing both ways: a provider absent from every successful listing for
`probe.retire_after_s` is retired (unscheduled, untracked, every series of its labels removed), the
providers of one model are capped at `probe.discovery_max_targets` across refreshes, and each model's
last discovery shows as `tokenpulse_discovery_success`. OpenRouter's own figures from the listing
(uptime, latency, throughput, price, quantization) are exported beside ours for the probed providers.

Housekeeping every `store.FLUSH_INTERVAL_S`: `blind` is re-judged by the clock (probes that stopped
finishing), and the histories that changed are saved to the SQLite store (`probe.state_dir`) in one
transaction in a worker thread, never per probe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, exposition

from tokenpulse.config import Config, Endpoint
from tokenpulse.core.stats import percentile
from tokenpulse.gctune import freeze_setup_heap
from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.admission import CLIENT_MAX_CONNECTIONS
from tokenpulse.prober.credits import CreditsPoller, wants_credits
from tokenpulse.prober.discovery import DiscoveryError, ListedProvider, discover_listing, listing_names
from tokenpulse.prober.exposition import FastExposition
from tokenpulse.prober.generations import GenerationWatcher
from tokenpulse.prober.http import HttpServer, Response, text
from tokenpulse.prober.runner import ProbeRunner
from tokenpulse.prober.scheduler import ProbeScheduler
from tokenpulse.prober.state import BLIND
from tokenpulse.prober.status import ProberHealth, status_document
from tokenpulse.prober.status_page import render_status_page
from tokenpulse.prober.store import FLUSH_CHUNK, FLUSH_INTERVAL_S, HistoryStore, encode
from tokenpulse.prober.targets import (
    ProbeTarget,
    discovered_targets,
    discovery_models,
    key_ring,
    plan,
)
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver, new_async_client

log = logging.getLogger("tokenpulse.prober")

#: How often pending discoveries are retried and discovered models checked for a refresh.
DISCOVERY_TICK_S = 60.0
SUMMARY_INTERVAL_S = 60.0
#: The exposition is text format 0.0.4: every tokenpulse name is a legacy-valid name, so the bytes are
#: the same as 1.0.0's. prometheus-client >= 0.22 makes CONTENT_TYPE_LATEST announce 1.0.0; announce
#: 0.0.4, the version every scraper understands, where the library has that constant.
METRICS_CONTENT_TYPE = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", CONTENT_TYPE_LATEST)


@dataclass(slots=True)
class DiscoveredModel:
    """A `discover: true` model: when to look again, and why the last look failed (if it did)."""

    endpoint: Endpoint
    model_index: int
    due_at: float = 0.0
    error: str | None = None
    found: bool = False
    #: provider tag -> wall time it was last in a successful listing (probed providers only)
    listed_at: dict[str, float] = field(default_factory=dict)
    #: provider tag -> its latest listing entry
    listing: dict[str, ListedProvider] = field(default_factory=dict)

    @property
    def tried(self) -> bool:
        """Tried at least once, successfully or not."""
        return self.found or self.error is not None

    @property
    def model_id(self) -> str:
        return self.endpoint.models[self.model_index].id


class Prober:
    """Runs scheduled probes of every target in `config` until `stop()`."""

    def __init__(self, config: Config, *, interval_override: float | None = None,
                 listen: tuple[str, int] | None = ("127.0.0.1", 9464), shutdown_grace_s: float = 10.0,
                 summary_interval_s: float = SUMMARY_INTERVAL_S, metrics: ProberMetrics | None = None) -> None:
        self.config = config
        self.interval_override = interval_override
        self.metrics = metrics or ProberMetrics()
        self.keys = key_ring(config.endpoints)
        self._listen = listen
        self._shutdown_grace_s = shutdown_grace_s
        self._summary_interval_s = summary_interval_s
        self._client = new_async_client(max_connections=CLIENT_MAX_CONNECTIONS)
        self.generations = GenerationWatcher(self._client, self.metrics, config.probe.generations,
                                             {e.name: self.keys.for_endpoint(e) for e in config.endpoints})
        self.runner = ProbeRunner(AsyncStreamDriver(self._client), self.metrics, slo=config.slo,
                                  confirm=config.probe.confirm, secrets=self.keys.secrets,
                                  blind_after_intervals=config.probe.blind_after_intervals,
                                  on_recorded=self.generations.after_probe)
        self.store: HistoryStore | None = None
        self._retired: set[str] = set()
        self.scheduler = ProbeScheduler(self.runner, self.metrics, max_in_flight=config.probe.max_in_flight,
                                        overdue_s=config.slo.ttft_s)
        self.http: HttpServer | None = None
        self._discovered = [DiscoveredModel(e, i) for e, i in discovery_models(config)]
        self._label_profiles: dict[tuple[str, str, str], str] = {}
        #: Set once every `discover: true` model has been tried (at once when there are none).
        self.discovery_tried = asyncio.Event()
        if not self._discovered:
            self.discovery_tried.set()
        self._metrics_lock = asyncio.Lock()
        self._exposition = FastExposition(self.metrics.registry)
        self._started_at = time.time()
        self._last_summary = time.monotonic()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.keys.secrets

    # ------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._listen is not None:
            host, port = self._listen
            self.http = HttpServer(self._routes(), host, port)
            await self.http.start()
        if self.config.probe.state_dir is not None:
            try:
                self.store = HistoryStore(self.config.probe.state_dir)
                self.runner.preload = self.store.load()
            except (OSError, sqlite3.Error) as exc:  # monitoring goes on; the history just is not kept
                self.store = None
                log.error("history store in %s is unusable (%s: %s); history is kept in memory only",
                          self.config.probe.state_dir, type(exc).__name__, exc)
            else:
                log.info("history store %s: %d saved target histories", self.store.path,
                         len(self.runner.preload))
        probes = plan(self.config.targets(), self.keys, interval_override=self.interval_override)
        self._add_probes(probes)
        if not probes:
            log.warning("no target to probe yet (every model waits for provider discovery)")
        for endpoint in self.config.endpoints:
            key = self.keys.for_endpoint(endpoint)
            if wants_credits(endpoint, key):
                poller = CreditsPoller(self._client, self.metrics, endpoint, key)
                self.scheduler.add_periodic(poller.poll, self.config.probe.credits_interval_s,
                                            name=f"credits {endpoint.name}")
        if self._discovered:
            self.scheduler.add_periodic(self._refresh_discovery, DISCOVERY_TICK_S, name="discovery")
        self.scheduler.add_periodic(self._summary, self._summary_interval_s, name="summary",
                                    first_delay_s=self._summary_interval_s)
        self.scheduler.add_periodic(self._housekeeping, FLUSH_INTERVAL_S, name="housekeeping",
                                    first_delay_s=FLUSH_INTERVAL_S)
        freeze_setup_heap()  # the configured targets' series and state exist now (discovered ones join later)
        self.scheduler.start()
        where = ""
        if self._listen is not None and self.http is not None:
            host = self._listen[0]
            where = f" on http://{f'[{host}]' if ':' in host else host}:{self.http.port}"
        log.info("probing %d target(s)%s", len(self.scheduler.probes), where)

    async def stop(self) -> None:
        cancelled = await self.scheduler.stop(self._shutdown_grace_s)
        if cancelled:
            log.warning("%d probe(s) still running after %.0f s were cancelled", cancelled, self._shutdown_grace_s)
        if self.http is not None:
            await self.http.close()
        await self.generations.close()  # lookups still waiting for their generation: not worth the wait
        await self._client.aclose()
        if self.store is not None:
            try:
                await self._flush()
            finally:
                self.store.close()
        log.info("prober stopped")

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # ------------------------------------------------------------------------- discovery
    async def _discover_due(self) -> list[ProbeTarget]:
        """Discover every model that is due; return the probes of newly found providers."""
        now = time.monotonic()
        due = [d for d in self._discovered if d.due_at <= now]
        found = await asyncio.gather(*(self._discover(d) for d in due))
        return [probe for probes in found for probe in probes]

    async def _discover(self, item: DiscoveredModel) -> list[ProbeTarget]:
        endpoint = item.endpoint
        labels = {"endpoint": endpoint.name, "model": item.model_id}
        try:
            listing = await discover_listing(self._client, endpoint, item.model_id,
                                             api_key=self.keys.for_endpoint(endpoint))
        except DiscoveryError as exc:
            item.error = str(exc)
            item.due_at = time.monotonic() + DISCOVERY_TICK_S
            self.metrics.discovery_success.labels(**labels).set(0)
            log.warning("%s (retrying in %.0f s)", exc, DISCOVERY_TICK_S)
            return []
        item.error = None
        item.found = True
        item.due_at = time.monotonic() + self.config.probe.discovery_interval_s
        self.metrics.discovery_success.labels(**labels).set(1)
        now = time.time()
        listed = {p.tag: p for p in listing}
        self._retire_unlisted(item, listed, now)
        cap = self.config.probe.discovery_max_targets
        joining = [tag for tag in listed if tag not in item.listed_at][:max(0, cap - len(item.listed_at))]
        if len(listed) - len(set(listed) & set(item.listed_at)) > len(joining):
            log.warning("discovery of %s on %s: %d provider(s) listed, probing at most %d "
                        "(probe.discovery_max_targets)", item.model_id, endpoint.name, len(listed), cap)
        for tag in [*joining, *(t for t in listed if t in item.listed_at)]:
            item.listed_at[tag] = now
            item.listing[tag] = listed[tag]
            self._export_listing(endpoint.name, item.model_id, listed[tag])
        self.metrics.discovered_targets.labels(**labels).set(len(item.listed_at))
        targets = discovered_targets(self.config, endpoint, item.model_index, joining)
        new = [t for t in targets if t.key not in self.scheduler.probes]
        if new:
            log.info("discovered %d provider(s) of %s on %s: %s", len({t.provider for t in new}), item.model_id,
                     endpoint.name, ", ".join(sorted({t.provider for t in new})))
        names = listing_names(endpoint.name, item.model_id, listing)
        return plan(new, self.keys, interval_override=self.interval_override, provider_names=names)

    def _retire_unlisted(self, item: DiscoveredModel, listed: dict[str, ListedProvider], now: float) -> None:
        """Retire the probed providers that no successful listing has named for `retire_after_s`."""
        grace = self.config.probe.retire_after_s
        for tag in [t for t, seen in item.listed_at.items() if t not in listed and now - seen >= grace]:
            del item.listed_at[tag]
            item.listing.pop(tag, None)
            model = item.endpoint.models[item.model_index]
            keys = [self.config.target(item.endpoint, model, tag, profile).key for profile in model.profiles]
            for key in keys:
                self.scheduler.remove_probe(key)
                self.runner.forget(key)
                self._retired.add(key)
            removed = self.metrics.forget_target({"endpoint": item.endpoint.name, "model": item.model_id,
                                                  "provider": tag})
            self._label_profiles.pop((item.endpoint.name, item.model_id, tag), None)
            log.warning("retired provider %s of %s on %s: missing from the listing for %.0f s (%d series "
                        "removed)", tag, item.model_id, item.endpoint.name, grace, removed)

    def _export_listing(self, endpoint: str, model: str, entry: ListedProvider) -> None:
        """OpenRouter's own figures of one probed provider, beside ours (absent figures are removed)."""
        m = self.metrics
        labels = {"endpoint": endpoint, "model": model, "provider": entry.tag}
        for gauge, label, values in ((m.or_uptime, "window", entry.uptime),
                                     (m.or_latency, "quantile", entry.latency_s),
                                     (m.or_throughput, "quantile", entry.throughput),
                                     (m.or_price, "kind", {k: v for k, v in (("prompt", entry.price_prompt),
                                                                           ("completion", entry.price_completion))
                                                           if v is not None}),
                                     (m.or_quantization, "quantization",
                                      {entry.quantization: 1.0} if entry.quantization else {})):
            with gauge._lock:
                held = [key for key in gauge._metrics if key[:3] == (endpoint, model, entry.tag)]
            for key in held:
                if key[3] not in values:
                    gauge.remove(*key)
            for value_label, value in values.items():
                gauge.labels(**labels, **{label: value_label}).set(value)

    async def _refresh_discovery(self) -> None:
        try:
            self._add_probes(await self._discover_due())
        finally:
            self.discovery_tried.set()

    def _add_probes(self, probes: list[ProbeTarget]) -> None:
        if probes:
            _warn_shared_labels(probes, self._label_profiles)
            self.scheduler.add_probes(probes)

    @property
    def pending_discovery(self) -> list[dict[str, str]]:
        return [{"endpoint": d.endpoint.name, "model": d.model_id, "error": d.error}
                for d in self._discovered if d.error is not None and not d.found]

    # ---------------------------------------------------------------------------- status
    @property
    def ready(self) -> bool:
        return self.scheduler.running and self.discovery_tried.is_set() and self.scheduler.first_round_done

    def status(self) -> dict[str, Any]:
        health = ProberHealth(started_at=self._started_at, ready=self.ready, in_flight=self.scheduler.in_flight,
                              misfires=self.scheduler.misfires, lags=list(self.scheduler.lags),
                              prober_errors=self.runner.prober_errors)
        return status_document(self.runner.tracked, health, now=time.time(),
                               pending_discovery=self.pending_discovery, listings=self._listings(),
                               failed_discovery=self.failed_discovery)

    def _listings(self) -> dict[tuple[str, str, str], ListedProvider]:
        return {(d.endpoint.name, d.model_id, tag): entry for d in self._discovered
                for tag, entry in d.listing.items()}

    @property
    def failed_discovery(self) -> list[dict[str, str]]:
        """Models whose latest discovery failed although an earlier one succeeded (still probed)."""
        return [{"endpoint": d.endpoint.name, "model": d.model_id, "error": d.error}
                for d in self._discovered if d.error is not None and d.found]

    def blind_endpoints(self) -> dict[str, list[str]]:
        """Endpoints every target of which is blind -> the blind reasons seen there."""
        by_endpoint: dict[str, list[str | None]] = {}
        for tracked in self.runner.tracked.values():
            state = tracked.state
            by_endpoint.setdefault(tracked.probe.endpoint, []).append(
                state.blind_reason if state.state == BLIND else None)
        return {e: sorted({r for r in reasons if r}) for e, reasons in by_endpoint.items()
                if reasons and all(reasons)}

    async def _housekeeping(self) -> None:
        self.runner.check_blind(time.time())
        await self._flush()

    async def _flush(self) -> None:
        """Save the histories that changed since the last save, and delete retired ones (batched)."""
        if self.store is None:
            return
        rows = {}
        dirty = [(key, t.history) for key, t in self.runner.tracked.items() if t.history.dirty]
        for i, (key, history) in enumerate(dirty):
            if i and i % FLUSH_CHUNK == 0:
                await asyncio.sleep(0)  # let due probes start between chunks
            rows[key] = encode(history.to_dict())
            history.dirty = False
        retired, self._retired = self._retired, set()
        if rows or retired:
            await asyncio.to_thread(self.store.save, rows, retired)

    async def _summary(self) -> None:
        now = time.monotonic()
        window, self._last_summary = now - self._last_summary, now
        tally = self.runner.tally.take()
        failed = sum(tally.failed.values())
        classes = ", ".join(f"{c}={n}" for c, n in sorted(tally.failed.items()))
        states = Counter(t.state.state for t in self.runner.tracked.values())
        lags = list(self.scheduler.lags)
        ordered = sorted(lags)
        p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
        log.info("summary: %d probes in the last %.0f s (%d ok, %d failed%s); targets: %d up, %d degraded, "
                 "%d down, %d blind, %d unknown; in flight %d; misfires %d; prober errors %d; "
                 "scheduler lag p50 %s p99 %s",
                 tally.ok + failed, window, tally.ok, failed, f": {classes}" if classes else "", states["up"],
                 states["degraded"], states["down"], states["blind"], states["unknown"], self.scheduler.in_flight,
                 self.scheduler.misfires, self.runner.prober_errors, _ms(p50), _ms(p99))

    # ------------------------------------------------------------------------------ HTTP
    def _routes(self) -> dict[str, Any]:
        return {"/metrics": self._metrics_page, "/healthz": self._healthz, "/readyz": self._readyz,
                "/": self._status_page, "/api/status": self._api_status}

    async def _metrics_page(self) -> Response:
        # A thousand targets' histograms take a while even for the fast renderer: render off the event
        # loop, one scrape at a time, so scheduled probes keep starting on time during a scrape.
        async with self._metrics_lock:
            body = await asyncio.to_thread(self._exposition.render)
        return Response(200, body, METRICS_CONTENT_TYPE)

    async def _healthz(self) -> Response:
        return text(200, "ok")

    async def _readyz(self) -> Response:
        if self.ready:
            # Ready (the prober serves and measures what it can), but say when an endpoint is blind:
            # every target of it fails caller-side (key, credits, rate limit) or has no success.
            blind = self.blind_endpoints()
            lines = [f"blind: endpoint {e}: every target is blind ({', '.join(r) or 'no_success'})"
                     for e, r in sorted(blind.items())]
            return text(200, "\n".join(["ready", *lines]))
        done, total = len(self.scheduler.first_done), len(self.scheduler.probes)
        waiting = "" if self.discovery_tried.is_set() else "; provider discovery not tried yet"
        return text(503, f"not ready: first round {done}/{total} targets probed{waiting}")

    # The document is built on the loop (it reads live state: ~0.2 s at 1,000 targets with a full day of
    # history); rendering it, which touches nothing live, runs in a worker thread.
    async def _status_page(self) -> Response:
        doc = self.status()
        body = await asyncio.to_thread(lambda: render_status_page(doc).encode())
        return Response(200, body, "text/html; charset=utf-8")

    async def _api_status(self) -> Response:
        doc = self.status()
        body = await asyncio.to_thread(lambda: json.dumps(doc, separators=(",", ":")).encode())
        return Response(200, body, "application/json")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _warn_shared_labels(probes: list[ProbeTarget], seen: dict[tuple[str, str, str], str]) -> None:
    """Metric labels are endpoint, model and provider (tokenpulse.metrics): two profiles of one provider
    share every series, so their gauges overwrite each other. Say so once, when such a target is
    scheduled; `seen` holds the labels scheduled so far (discovery adds targets later)."""
    for probe in probes:
        labels = (probe.endpoint, probe.model, probe.provider)
        if labels in seen and seen[labels] != probe.profile:
            log.warning("profiles %s and %s of %s/%s/%s share metric series (profile is not a metric label)",
                        seen[labels], probe.profile, *labels)
        seen.setdefault(labels, probe.profile)
