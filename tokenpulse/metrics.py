"""Every Prometheus metric tokenpulse exports: names, units, buckets and label sets, in one place.

Conventions (DESIGN.md §5): prefix `tokenpulse_`, base units (`_seconds`), `_total` counters, ratios in
0..1. Reliability comes from counters and histograms, never from last-value gauges, because the prober
runs on its own schedule, not at scrape time. Label values come only from config (endpoint, model,
provider) and fixed enums (outcome, error class, state).

The prober and the Locust exporter share `RequestMetrics`, so one request is recorded the same way
whichever path measured it; Prometheus tells them apart by the scrape job (`job="tokenpulse-prober"` vs
`job="tokenpulse-locust"`), not by renamed metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, Summary

from tokenpulse import __version__
from tokenpulse.core.outcomes import ALL_ERROR_CLASSES, ALL_ERROR_ORIGINS, ErrorClass, ErrorOrigin, Outcome

PREFIX = "tokenpulse"
TARGET_LABELS = ("endpoint", "model", "provider")
#: error_class label value of a successful request (an empty value would drop the label).
NO_ERROR = "none"
TARGET_STATES = ("up", "degraded", "down", "unknown", "blind")
#: Why a target is `blind` (the prober cannot measure it): the key was refused (401, 403), the key has no
#: credit (402), the key is rate limited (429), or no probe succeeded for N intervals for another reason.
BLIND_REASONS = ("key_rejected", "no_credits", "rate_limited", "no_success")
#: OpenRouter's own uptime windows in its endpoints listing (`uptime_last_5m`, `_30m`, `_1d`).
OPENROUTER_UPTIME_WINDOWS = ("5m", "30m", "1d")
#: Percentiles of OpenRouter's listing figures (`latency_last_30m.p50` ...), as `quantile` label values.
OPENROUTER_QUANTILES = {"p50": "0.5", "p75": "0.75", "p90": "0.9", "p99": "0.99"}
#: Quantizations OpenRouter's listing names (an open enum there); anything else is labelled `other`.
QUANTIZATIONS = ("int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16", "fp32",
                 "unknown", "other")

# Buckets resolve a fast provider (50 ms TTFT) and still reach a slow reasoning model (minutes). SLO
# thresholds (TTFT 1, 2, 5 s; TPOT 25, 50, 100 ms) are bucket bounds so burn-rate rules are exact.
LATENCY_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0,
                   7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
E2E_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
               90.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0)
TPOT_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2,
                0.3, 0.5, 1.0, 2.0)
CHUNK_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
                     0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
TOKENS_PER_S_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 75.0, 100.0, 125.0, 150.0,
                        200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0)
#: Connection set-up on loopback (0.1 ms) up to a slow TLS handshake across the world (seconds).
#: `phase` label values of the connection histogram (blackbox_exporter's `phase`).
CONNECTION_PHASES = ("connect", "tls")
#: Native / normalized token counts: tokenizers differ by a few percent to a factor of two.
NATIVE_RATIO_BUCKETS = (0.5, 0.75, 0.9, 0.95, 0.98, 1.0, 1.02, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0)
#: Results of a /generation lookup (`status` label of tokenpulse_openrouter_generation_lookups_total).
GENERATION_LOOKUP_STATUSES = ("found", "not_found", "failed", "dropped")
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


class MeasuredRequest(Protocol):
    """What `RequestMetrics.observe` reads of a request: a `StreamResult`, or the load test's wire
    record of one (tokenpulse/load/observation.py), so the master need not rebuild a result."""

    @property
    def outcome(self) -> Outcome: ...
    @property
    def error_class(self) -> ErrorClass | None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def ttfb_s(self) -> float | None: ...
    @property
    def connect_s(self) -> float | None: ...
    @property
    def tls_s(self) -> float | None: ...
    @property
    def ttft_s(self) -> float | None: ...
    @property
    def ttfc_s(self) -> float | None: ...
    @property
    def e2e_s(self) -> float | None: ...
    @property
    def tpot_s(self) -> float | None: ...
    @property
    def output_tokens_per_s(self) -> float | None: ...
    @property
    def token_times_s(self) -> Sequence[float]: ...
    @property
    def prompt_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def reasoning_tokens(self) -> int | None: ...
    @property
    def tokens_estimated(self) -> bool: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def error_origin(self) -> ErrorOrigin | None: ...


class RequestMetrics:
    """Per-request figures, shared by the prober and the load-test exporter."""

    def __init__(self, registry: CollectorRegistry, *, observe_chunk_gaps: bool = True) -> None:
        self.observe_chunk_gaps = observe_chunk_gaps
        self._series: dict[tuple[tuple[str, str], ...], _TargetSeries] = {}
        labels = TARGET_LABELS
        self.requests = Counter(_name("requests"), "Streaming chat requests measured, by outcome and error class "
                                "(every probe is one request).", (*labels, "outcome", "error_class"),
                                registry=registry)
        self.ttfb = Histogram(_name("ttfb_seconds"), "Time from sending the request to the response head.",
                              labels, buckets=LATENCY_BUCKETS, registry=registry)
        self.ttft = Histogram(_name("ttft_seconds"), "Time to the first token of any kind (content, reasoning or "
                              "tool call); observed whenever a first token arrived.", labels,
                              buckets=LATENCY_BUCKETS, registry=registry)
        self.ttfc = Histogram(_name("ttfc_seconds"), "Time to the first answer (content) token; later than TTFT "
                              "for reasoning models.", labels, buckets=LATENCY_BUCKETS, registry=registry)
        self.e2e = Histogram(_name("e2e_seconds"), "End-to-end time of successful requests.", labels,
                             buckets=E2E_BUCKETS, registry=registry)
        self.tpot = Histogram(_name("tpot_seconds"), "Time per output token after the first, of successful "
                              "requests: (last token - first token) / (output tokens - 1).", labels,
                              buckets=TPOT_BUCKETS, registry=registry)
        self.output_speed = Histogram(_name("output_tokens_per_second"), "Decode speed of successful requests: "
                                      "output tokens / (last token - first token).", labels,
                                      buckets=TOKENS_PER_S_BUCKETS, registry=registry)
        self.chunk_gap = Histogram(_name("chunk_gap_seconds"), "Gaps between successive token-carrying events "
                                   "(inter-token latency per chunk).", labels, buckets=CHUNK_GAP_BUCKETS,
                                   registry=registry)
        # A summary without quantiles (a count and a sum per phase, 4 series per target), not a histogram
        # (30): what matters is how often requests pay the set-up and what it costs on average; each
        # request's own figures are in its result and record.
        self.connection_phase = Summary(_name("connection_phase_seconds"), "Connection set-up of requests that "
                                        "opened a new connection, by phase: connect (DNS and TCP), tls "
                                        "(handshake). Part of TTFB and TTFT; its count next to requests_total "
                                        "is the share of requests that did not reuse a connection.",
                                        (*labels, "phase"), registry=registry)
        self.prompt_tokens = Counter(_name("prompt_tokens"), "Prompt tokens (server usage, else estimated).",
                                     labels, registry=registry)
        self.output_tokens = Counter(_name("output_tokens"), "Output tokens including reasoning tokens.",
                                     labels, registry=registry)
        self.reasoning_tokens = Counter(_name("reasoning_tokens"), "Reasoning tokens.", labels, registry=registry)
        self.estimated_requests = Counter(_name("tokens_estimated_requests"), "Requests whose token counts were "
                                          "estimated because the server sent no usage.", labels, registry=registry)
        self.cost = Counter(_name("cost_usd"), "Spend in US dollars (usage.cost, else usage x configured price).",
                            labels, registry=registry)
        self.rate_limited = Counter(_name("rate_limited_requests"), "Requests rate limited (429 or a "
                                    "rate_limited error), by who said so: origin=openrouter (OpenRouter's own "
                                    "limits: X-RateLimit-* headers, no provider), provider (error.metadata."
                                    "provider_name), unknown (neither sign).", (*labels, "origin"),
                                    registry=registry)

    def touch(self, labels: Mapping[str, str]) -> None:
        """Create a target's series at zero, so rates exist before its first failure (no absent series)."""
        for outcome, error_class in [("ok", NO_ERROR), *(("error", c) for c in ALL_ERROR_CLASSES)]:
            self.requests.labels(**labels, outcome=outcome, error_class=error_class)
        for family in (self.ttfb, self.ttft, self.ttfc, self.e2e, self.tpot, self.output_speed, self.chunk_gap,
                       self.prompt_tokens, self.output_tokens, self.reasoning_tokens, self.estimated_requests,
                       self.cost):
            family.labels(**labels)
        for phase in CONNECTION_PHASES:
            self.connection_phase.labels(**labels, phase=phase)
        for origin in ALL_ERROR_ORIGINS:
            self.rate_limited.labels(**labels, origin=origin)

    def forget(self, labels: Mapping[str, str]) -> None:
        """Drop the cached children of a target whose series were removed (ProberMetrics.forget_target)."""
        self._series.pop(tuple(labels.items()), None)

    def _target(self, labels: Mapping[str, str]) -> _TargetSeries:
        """A target's labelled series, looked up once: prometheus-client's `labels()` validates the
        names and takes a lock on every call (~3 µs), and a request touches a dozen series. Both users
        `touch()` a target before observing it, so creating all of its series here creates nothing new."""
        key = tuple(labels.items())
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _TargetSeries(
                ttfb=self.ttfb.labels(**labels), ttft=self.ttft.labels(**labels), ttfc=self.ttfc.labels(**labels),
                e2e=self.e2e.labels(**labels), tpot=self.tpot.labels(**labels),
                output_speed=self.output_speed.labels(**labels), chunk_gap=self.chunk_gap.labels(**labels),
                prompt_tokens=self.prompt_tokens.labels(**labels), output_tokens=self.output_tokens.labels(**labels),
                reasoning_tokens=self.reasoning_tokens.labels(**labels),
                estimated_requests=self.estimated_requests.labels(**labels), cost=self.cost.labels(**labels),
                connect=self.connection_phase.labels(**labels, phase="connect"),
                tls=self.connection_phase.labels(**labels, phase="tls"), requests={})
        return series

    def observe(self, labels: Mapping[str, str], result: MeasuredRequest, *, cost_usd: float | None = None) -> None:
        """Record one finished request. `cost_usd` overrides the result's (price-based estimate)."""
        series = self._target(labels)
        error_class = result.error_class.value if result.error_class else NO_ERROR
        outcome = result.outcome.value
        requests = series.requests.get((outcome, error_class))
        if requests is None:
            requests = series.requests[(outcome, error_class)] = self.requests.labels(
                **labels, outcome=outcome, error_class=error_class)
        requests.inc()
        if result.error_class is ErrorClass.RATE_LIMITED:
            self.rate_limited.labels(**labels, origin=(result.error_origin or ErrorOrigin.UNKNOWN).value).inc()
        if result.error_class is ErrorClass.WRONG_PROVIDER:
            # Served by another provider: never a latency sample of this one; the tokens were spent.
            self._spend(series, result, cost_usd)
            return
        if result.ttfb_s is not None:
            series.ttfb.observe(result.ttfb_s)
        if result.connect_s is not None:
            series.connect.observe(result.connect_s)
            if result.tls_s is not None:
                series.tls.observe(result.tls_s)
        if result.ttft_s is not None:
            series.ttft.observe(result.ttft_s)
        if result.ttfc_s is not None:
            series.ttfc.observe(result.ttfc_s)
        if result.ok:
            if result.e2e_s is not None:
                series.e2e.observe(result.e2e_s)
            if result.tpot_s is not None:
                series.tpot.observe(result.tpot_s)
            if result.output_tokens_per_s is not None:
                series.output_speed.observe(result.output_tokens_per_s)
        if self.observe_chunk_gaps and len(result.token_times_s) > 1:
            gap = series.chunk_gap
            times = result.token_times_s
            for a, b in zip(times, times[1:], strict=False):
                gap.observe(b - a)
        self._spend(series, result, cost_usd)

    @staticmethod
    def _spend(series: _TargetSeries, result: MeasuredRequest, cost_usd: float | None) -> None:
        """Tokens and money of one request."""
        if result.prompt_tokens:
            series.prompt_tokens.inc(result.prompt_tokens)
        if result.output_tokens:
            series.output_tokens.inc(result.output_tokens)
        if result.reasoning_tokens:
            series.reasoning_tokens.inc(result.reasoning_tokens)
        if result.tokens_estimated:
            series.estimated_requests.inc()
        cost = cost_usd if cost_usd is not None else result.cost_usd
        if cost:
            series.cost.inc(cost)


@dataclass(slots=True)
class _TargetSeries:
    """The children of `RequestMetrics` for one target (valid until `forget` drops them with the series)."""

    ttfb: Histogram
    ttft: Histogram
    ttfc: Histogram
    e2e: Histogram
    tpot: Histogram
    output_speed: Histogram
    chunk_gap: Histogram
    prompt_tokens: Counter
    output_tokens: Counter
    reasoning_tokens: Counter
    estimated_requests: Counter
    cost: Counter
    connect: Summary
    tls: Summary
    #: (outcome, error_class) -> the requests counter
    requests: dict[tuple[str, str], Counter]


class ProberMetrics:
    """The prober's registry: request figures plus target state and the prober's own health."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = TARGET_LABELS
        self.requests = RequestMetrics(r)
        self.last_probe = Gauge(_name("last_probe_timestamp_seconds"), "Unix time the last probe of a target "
                                "finished.", labels, registry=r)
        self.last_success = Gauge(_name("last_success_timestamp_seconds"), "Unix time of the last successful "
                                  "probe of a target.", labels, registry=r)
        self.consecutive_failures = Gauge(_name("consecutive_failures"), "Provider-side failures in a row "
                                          "(caller-side errors such as 429 neither add nor reset).", labels,
                                          registry=r)
        self.state = Gauge(_name("target_state"), "Confirmed state of a target: 1 for the current state "
                           "(up, degraded, down, unknown, blind), 0 for the others. blind: the prober cannot "
                           "measure it (caller-side errors only, or no success for N intervals).",
                           (*labels, "state"), registry=r)
        self.up = Gauge(_name("target_up"), "1 unless the target is confirmed down (after the configured number "
                        "of consecutive failures); a blind target is not down.", labels, registry=r)
        self.blind = Gauge(_name("target_blind"), "1 for the reason a target is blind (key_rejected: 401/403, "
                           "no_credits: 402, rate_limited: 429, no_success: no successful probe for N intervals "
                           "otherwise), 0 for the other reasons and for every reason while it is not blind.",
                           (*labels, "reason"), registry=r)
        self.prober_errors = Counter(_name("prober_errors"), "Probes the prober itself failed to run or record "
                                     "(an unexpected exception in its own code); never counted against the "
                                     "provider.", labels, registry=r)
        self.structured = Counter(_name("structured_answers"), "Probes of a profile with `tools` or "
                                  "`response_schema` whose answer was judged, by kind (tools, json_schema) and "
                                  "verdict (valid, invalid_json, schema_mismatch, unknown_tool, truncated, "
                                  "missing): the validity rate is valid / all.",
                                  (*labels, "kind", "verdict"), registry=r)
        self.interval = Gauge(_name("probe_interval_seconds"), "Configured probe interval of a target.", labels,
                              registry=r)
        self.credits_remaining = Gauge(_name("openrouter_credits_remaining_usd"), "OpenRouter key credit left "
                                       "(limit - usage) from /api/v1/key; absent for keys without a limit and "
                                       "while the last read failed (never a stale value).",
                                       ("endpoint",), registry=r)
        self.credits_limit = Gauge(_name("openrouter_credits_limit_usd"), "OpenRouter key credit limit from "
                                   "/api/v1/key; absent for keys without a limit and while the last read failed.",
                                   ("endpoint",), registry=r)
        self.credits_usage = Gauge(_name("openrouter_credits_usage_usd"), "OpenRouter key usage so far (also "
                                   "for keys without a limit); absent while the last read failed.",
                                   ("endpoint",), registry=r)
        self.credits_read_success = Gauge(_name("openrouter_credits_read_success"), "1 if the last /api/v1/key "
                                          "read succeeded, else 0.", ("endpoint",), registry=r)
        discovery = ("endpoint", "model")
        self.discovery_success = Gauge(_name("discovery_success"), "1 if the last provider discovery of a "
                                       "`discover: true` model succeeded, else 0.", discovery, registry=r)
        self.discovered_targets = Gauge(_name("discovered_targets"), "Providers of a `discover: true` model "
                                        "being probed (after the cap and the retirement grace).", discovery,
                                        registry=r)
        self.or_uptime = Gauge(_name("openrouter_uptime_ratio"), "OpenRouter's own uptime of a provider from "
                               "the endpoints listing (uptime_last_5m/_30m/_1d, 0..1; excludes 429s).",
                               (*labels, "window"), registry=r)
        self.or_latency = Gauge(_name("openrouter_latency_seconds"), "OpenRouter's own time to first token of a "
                                "provider over the last 30 min (listing latency_last_30m, ms -> s), by "
                                "percentile.", (*labels, "quantile"), registry=r)
        self.or_throughput = Gauge(_name("openrouter_throughput_tokens_per_second"), "OpenRouter's own output "
                                   "speed of a provider over the last 30 min (listing throughput_last_30m), by "
                                   "percentile.", (*labels, "quantile"), registry=r)
        self.or_price = Gauge(_name("openrouter_price_usd_per_token"), "A provider's price from the endpoints "
                              "listing (pricing.prompt, pricing.completion), USD per token.",
                              (*labels, "kind"), registry=r)
        self.or_quantization = Gauge(_name("openrouter_quantization_info"), "1 for the quantization the "
                                     "endpoints listing gives a provider (an unlisted value is `other`).",
                                     (*labels, "quantization"), registry=r)
        # What OpenRouter measured for each probe (GET /generation, prober/generations.py)
        self.or_generation_latency = Histogram(_name("openrouter_generation_latency_seconds"), "OpenRouter's "
                                               "own time to first token of each probe (/generation `latency`); "
                                               "our TTFT minus it is the network and router overhead.", labels,
                                               buckets=LATENCY_BUCKETS, registry=r)
        self.or_generation_time = Histogram(_name("openrouter_generation_time_seconds"), "OpenRouter's own "
                                            "generation time of each probe (/generation `generation_time`).",
                                            labels, buckets=E2E_BUCKETS, registry=r)
        self.or_native_token_ratio = Histogram(_name("openrouter_native_token_factor"), "Native completion tokens "
                                               "(the provider's tokenizer) per normalized one, per probe "
                                               "(/generation); 1 when they agree.", labels,
                                               buckets=NATIVE_RATIO_BUCKETS, registry=r)
        self.or_generation_lookups = Counter(_name("openrouter_generation_lookups"), "/generation lookups after "
                                             "probes, by result (found, not_found: still 404 at the deadline, "
                                             "failed, dropped: too many pending).", (*labels, "status"),
                                             registry=r)
        self.scheduler_lag = Histogram(_name("scheduler_lag_seconds"), "How late a probe started against its "
                                       "scheduled time.", buckets=LAG_BUCKETS, registry=r)
        self.in_flight = Gauge(_name("probes_in_flight"), "Probes running now.", registry=r)
        self.misfires = Counter(_name("probe_misfires"), "Scheduled probes skipped because the previous run of "
                                "the same target was still going or the scheduler was late (coalesced).",
                                labels, registry=r)
        self.targets = Gauge(_name("targets"), "Targets scheduled.", registry=r)
        self.build = Info(_name("build"), "tokenpulse version.", registry=r)
        self.build.info({"version": __version__})

    def set_state(self, labels: Mapping[str, str], state: str, blind_reason: str | None = None) -> None:
        for candidate in TARGET_STATES:
            self.state.labels(**labels, state=candidate).set(1.0 if candidate == state else 0.0)
        self.up.labels(**labels).set(0.0 if state == "down" else 1.0)
        for reason in BLIND_REASONS:
            self.blind.labels(**labels, reason=reason).set(1.0 if reason == blind_reason else 0.0)

    def forget_target(self, labels: Mapping[str, str]) -> int:
        """Remove every series carrying this target's labels (a retired provider), from every family of
        the registry: a retired target must vanish from /metrics, not linger at its last value. Returns
        the number of label sets removed."""
        removed = 0
        wanted = tuple(labels.get(name) for name in TARGET_LABELS)
        for family in _families(self.registry):
            names = tuple(family._labelnames)
            if not set(TARGET_LABELS) <= set(names):
                continue
            index = [names.index(n) for n in TARGET_LABELS]
            with family._lock:
                keys = [key for key in family._metrics if tuple(key[i] for i in index) == wanted]
            for key in keys:
                family.remove(*key)
                removed += 1
        self.requests.forget(labels)
        return removed


def _families(registry: CollectorRegistry) -> list[Gauge | Counter | Histogram | Summary]:
    """The labelled metric families registered in `registry` (prometheus-client keeps them as collectors)."""
    seen: dict[int, Gauge | Counter | Histogram | Summary] = {}
    for collector in list(registry._collector_to_names):
        if isinstance(collector, (Gauge, Counter, Histogram, Summary)) and collector._labelnames:
            seen[id(collector)] = collector
    return list(seen.values())


class LoadMetrics:
    """The Locust master's exporter: request figures (same names as the prober) plus generator health."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Chunk gaps at load-test rates would cost one observation per token: the JSONL keeps them.
        self.requests = RequestMetrics(r, observe_chunk_gaps=False)
        self.users = Gauge(_name("load_users"), "Locust users running.", registry=r)
        self.step = Gauge(_name("load_step"), "Index of the current load-shape step (sweeps).", registry=r)
        self.target_concurrency = Gauge(_name("load_target_concurrency"), "Concurrency (users) the shape asks "
                                        "for now.", registry=r)
        self.target_rate = Gauge(_name("load_target_rate_per_second"), "Arrival rate the shape asks for now "
                                 "(fixed-rate shapes).", registry=r)
        self.queue_wait = Histogram(_name("load_queue_wait_seconds"), "Open-loop arrival rate: time a scheduled "
                                    "request waited for a free user (coordinated omission made visible).",
                                    buckets=LAG_BUCKETS, registry=r)
        self.generator_cpu = Gauge(_name("load_generator_cpu_ratio"), "CPU share (0..1 of one core) of a load "
                                   "generator process.", ("worker",), registry=r)
        self.client_lag = Histogram(_name("load_client_lag_seconds"), "Event-loop (gevent hub) lag of a load "
                                    "generator: how late a timer fired. High lag means inflated latencies.",
                                    ("worker",), buckets=LAG_BUCKETS, registry=r)
