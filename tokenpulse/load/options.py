"""The settings every Locust process of a run shares, carried as Locust custom arguments (`--tp-*`).

Why Locust arguments rather than environment variables: Locust's master sends its parsed custom
arguments to every worker with each spawn message, so workers on other machines get the same settings
without any shared file. The master adds three values before the first spawn: the config text (workers
need no config file, only the API key in their own environment), the run start time (every process
derives step and phase from it) and the number of workers (each takes its share of the arrival rate and
of the cost cap).

Worker-local overrides: `TOKENPULSE_OUT` (where this machine writes its records) wins over the master's
`--tp-out`, because a path on the master may not exist on a worker's machine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from tokenpulse.runfolder.schedule import SHAPES, Schedule, build_schedule, parse_levels

ENV_OUT = "TOKENPULSE_OUT"
DEFAULT_METRICS_PORT = 9465
#: The load test's transport: the raw-socket reader cost about half of geventhttpclient's line reader
#: per SSE event (benchmarks/locust_capacity.py), which is what decides how many streams a process carries.
LOAD_TRANSPORT = "raw"


def add_locust_arguments(parser: Any) -> None:
    """Register `--tp-*` on Locust's parser (`include_in_web_ui=False` keeps them out of the web form:
    they are set by `tokenpulse load`, see docs/load-testing.md)."""

    def add(*names: str, **kwargs: Any) -> None:
        parser.add_argument(*names, include_in_web_ui=False, **kwargs)

    add("--tp-config", default="", help="tokenpulse config file (YAML)")
    add("--tp-out", default="", help="run folder for records, health samples and meta.json")
    add("--tp-shape", default="fixed", choices=SHAPES, help="load shape")
    add("--tp-users", type=int, default=10, help="users (concurrency); for --tp-shape rate, the pool size")
    add("--tp-spawn-rate", type=float, default=0.0, help="users started per second (0: all at once)")
    add("--tp-run-time", type=float, default=30.0, help="seconds")
    add("--tp-levels", default="", help="sweep: user counts; rate: arrival rates (comma-separated)")
    add("--tp-step-time", type=float, default=0.0, help="seconds per step (0: run time / number of levels)")
    add("--tp-warmup", type=float, default=-1.0, help="seconds excluded at the start of each step "
                                                      "(-1: the config's load.warmup_s)")
    add("--tp-rate", type=float, default=0.0, help="rate shape: arrivals per second")
    add("--tp-arrival", default="poisson", choices=("poisson", "constant"), help="rate shape: arrival process")
    add("--tp-max-cost", type=float, default=0.0, help="stop before the estimated spend passes this (USD)")
    add("--tp-providers", default="", help="only these providers (comma-separated)")
    add("--tp-models", default="", help="only these models (comma-separated)")
    add("--tp-metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="Prometheus port on the master (0: off)")
    add("--tp-metrics-host", default="0.0.0.0", help="Prometheus bind address")
    add("--tp-transport", default=LOAD_TRANSPORT, help="sync transport under the driver")
    add("--tp-ground-truth", action="store_true", default=False,
        help="ask the tokenpulse mock for its send times (records get truth_ttft_s / truth_lags_s)")
    add("--tp-run-id", default="", help="run id (part of each unique prompt prefix)")
    add("--tp-slo", default="", help="SLO overrides, e.g. ttft_p95=1s,tpot=50ms,error_rate=1%% (slo_flags.py)")
    add("--tp-search", default="concurrency", choices=("concurrency", "rate"), help="search shape: what it varies")
    add("--tp-start", type=float, default=0.0, help="search shape: first level (0: 1 user or 1 request/s)")
    add("--tp-resolution", default="", help="search shape: bracket width to stop at (N levels or N%%)")
    add("--tp-goodput", type=float, default=0.0, help="search shape: goodput share a level must reach (0: 0.95)")
    add("--tp-max-steps", type=int, default=0, help="search shape: most steps (0: the default)")
    add("--tp-arrival-seed", type=int, default=-1, help="seed of the Poisson arrivals (-1: the master picks "
        "load.seed, else a fresh one)")
    add("--tp-burstiness", type=float, default=0.0, help="rate shape: gamma-distributed gaps of this shape (0: off)")
    add("--tp-input-lengths", default="", help="prefill workload: prompt lengths in tokens (comma-separated)")
    add("--tp-max-requests", type=int, default=0, help="stop after this many requests over all processes (0: off)")
    add("--tp-trace", default="", help="replay this trace file (local path on every machine)")
    add("--tp-trace-format", default="", help="trace format: jsonl, mooncake or burstgpt (empty: detect)")
    add("--tp-speed", type=float, default=1.0, help="trace replay: time scale (2: twice as fast)")
    add("--tp-context", default="", help="JSON {model: context tokens} found by `tokenpulse load`")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Typed view of the `--tp-*` values (plus the master-provided ones)."""

    config_path: str
    config_text: str
    out: str
    shape: str
    users: int
    spawn_rate: float
    run_time_s: float
    levels: tuple[float, ...]
    step_time_s: float
    warmup_s: float | None
    rate: float
    arrival: str
    max_cost: float | None
    providers: tuple[str, ...]
    models: tuple[str, ...]
    metrics_port: int
    metrics_host: str
    transport: str
    ground_truth: bool
    run_id: str
    arrival_seed: int | None
    run_start: float | None
    workers: int
    slo: str = ""
    search: str = "concurrency"
    search_start: float | None = None
    resolution: str = ""
    goodput: float | None = None
    max_steps: int | None = None
    burstiness: float | None = None
    input_lengths: tuple[int, ...] = ()
    max_requests: int | None = None
    trace: str = ""
    trace_format: str = ""
    speed: float = 1.0
    context: tuple[tuple[str, int], ...] = ()
    #: (endpoint, model, provider tag, display name) from the endpoints listings the master read at the
    #: start (load/listing.py), so every worker judges who served a request by the listing's names.
    provider_names: tuple[tuple[str, str, str, str], ...] = ()

    @classmethod
    def from_parsed(cls, parsed: Any) -> LoadOptions:
        def get(name: str, default: Any = None) -> Any:
            return getattr(parsed, name, default)

        levels = tuple(parse_levels(get("tp_levels"))) if get("tp_levels") else ()
        warmup = get("tp_warmup", -1.0)
        providers = tuple(p.strip() for p in (get("tp_providers") or "").split(",") if p.strip())
        return cls(
            config_path=get("tp_config") or "",
            config_text=get("tp_config_text") or "",
            out=os.environ.get(ENV_OUT) or get("tp_out") or "",
            shape=get("tp_shape") or "fixed",
            users=int(get("tp_users") or 10),
            spawn_rate=float(get("tp_spawn_rate") or 0.0),
            run_time_s=float(get("tp_run_time") or 30.0),
            levels=levels,
            step_time_s=float(get("tp_step_time") or 0.0),
            warmup_s=None if warmup is None or warmup < 0 else float(warmup),
            rate=float(get("tp_rate") or 0.0),
            arrival=get("tp_arrival") or "poisson",
            max_cost=float(get("tp_max_cost")) if get("tp_max_cost") else None,
            providers=providers,
            models=tuple(m.strip() for m in (get("tp_models") or "").split(",") if m.strip()),
            metrics_port=int(get("tp_metrics_port", DEFAULT_METRICS_PORT) or 0),
            metrics_host=get("tp_metrics_host") or "0.0.0.0",
            transport=get("tp_transport") or LOAD_TRANSPORT,
            ground_truth=bool(get("tp_ground_truth")),
            run_id=get("tp_run_id") or "",
            arrival_seed=None if (get("tp_arrival_seed", -1) is None or get("tp_arrival_seed", -1) < 0)
            else int(get("tp_arrival_seed")),
            run_start=get("tp_run_start"),
            workers=int(get("tp_workers") or 1),
            slo=get("tp_slo") or "",
            search=get("tp_search") or "concurrency",
            search_start=float(get("tp_start")) if get("tp_start") else None,
            resolution=get("tp_resolution") or "",
            goodput=float(get("tp_goodput")) if get("tp_goodput") else None,
            max_steps=int(get("tp_max_steps")) if get("tp_max_steps") else None,
            burstiness=float(get("tp_burstiness")) if get("tp_burstiness") else None,
            input_lengths=tuple(int(v) for v in (get("tp_input_lengths") or "").split(",") if v.strip()),
            max_requests=int(get("tp_max_requests")) if get("tp_max_requests") else None,
            trace=get("tp_trace") or "",
            trace_format=get("tp_trace_format") or "",
            speed=float(get("tp_speed") or 1.0),
            context=tuple(sorted(json.loads(get("tp_context") or "{}").items())),
            provider_names=_provider_names(get("tp_provider_names")),
        )

    def schedule(self, config_warmup_s: float) -> Schedule:
        """The run's schedule; `config_warmup_s` applies when no --warmup was given."""
        warmup = self.warmup_s if self.warmup_s is not None else config_warmup_s
        if self.shape == "search":  # a rate search starts at its start rate; concurrency at its start users
            rate_search = self.search == "rate"
            return build_schedule("search", users=self.users, spawn_rate=self.spawn_rate or None,
                                  run_time_s=self.run_time_s, warmup_s=warmup, step_s=self.step_time_s or None,
                                  rate=(self.search_start or 1.0) if rate_search else None,
                                  search_start=None if rate_search else (self.search_start or 1.0))
        return build_schedule(self.shape, users=self.users, spawn_rate=self.spawn_rate or None,
                              run_time_s=self.run_time_s, warmup_s=warmup, levels=list(self.levels) or None,
                              step_s=self.step_time_s or None, rate=self.rate or None)


def _provider_names(text: object) -> tuple[tuple[str, str, str, str], ...]:
    """The master's `tp_provider_names` (JSON rows of four strings); anything else is no names."""
    try:
        rows = json.loads(text) if isinstance(text, str) and text else []
    except ValueError:
        return ()
    if not isinstance(rows, list):
        return ()
    return tuple((r[0], r[1], r[2], r[3]) for r in rows
                 if isinstance(r, list) and len(r) == 4 and all(isinstance(v, str) and v for v in r))
