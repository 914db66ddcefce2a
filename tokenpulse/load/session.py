"""One Locust process's part of a run, and the wiring of Locust's events to it.

Roles (from Locust's runner): `local` (one process: shape, users, records, exporter), `master` (shape,
exporter, cost coordination, meta.json; no users) and `worker` (users, records, health; reports to the
master). Each process builds the same schedule, targets and config from the same `--tp-*` options; the
master adds the run start time, the worker count and the config text before its first spawn message.

Stopping early (`--max-cost`): the process whose budget share runs out stops sending (`draining`), lets
its requests in flight finish (up to `load.drain_s`), and the shape then returns None, which is
how Locust ends a shape test cleanly (CSV, HTML and final stats still written). In a distributed run the
worker tells the master (`tp_exhausted`), the master tells every worker to drain (`tp_drain`), each
worker answers `tp_drained`, and the master's shape ends the run.

Files written by this module: `meta.json` (master or local: schedule, targets, SLOs, stop reason,
Locust's own request totals) and, per process with users, `records-<tag>.jsonl` / `health-<tag>.jsonl`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import __version__ as locust_version
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from tokenpulse import __version__
from tokenpulse.config import Config, ConfigError, Target, config_from_text
from tokenpulse.core.keys import KeyRing
from tokenpulse.gctune import freeze_setup_heap
from tokenpulse.load import lifeline
from tokenpulse.load.arrivals import ArrivalQueue
from tokenpulse.load.cost import CostGuard
from tokenpulse.load.exporter import LoadExporter
from tokenpulse.load.health import HealthMonitor, HealthSample
from tokenpulse.load.observation import Observation
from tokenpulse.load.options import LoadOptions
from tokenpulse.load.targets import LoadSetupError, display_names, select_targets
from tokenpulse.load.webui import TokenLatencyTable, install_tab
from tokenpulse.load.workload import WorkloadGenerator
from tokenpulse.runfolder.records import META_FILE, JsonlAppender, process_tag
from tokenpulse.runfolder.schedule import Schedule

log = logging.getLogger("tokenpulse.load")

STOP_COMPLETED = "completed"
STOP_MAX_COST = "max_cost"
STOP_INTERRUPTED = "interrupted"
MSG_EXHAUSTED = "tp_exhausted"
MSG_DRAIN = "tp_drain"
MSG_DRAINED = "tp_drained"
#: Report key of our data inside Locust's worker report.
REPORT_KEY = "tokenpulse"


@dataclass(frozen=True, slots=True)
class LoadTarget:
    """A target of the load test: the config target, its index (metric labels, reports) and its name in
    Locust's statistics."""

    index: int
    target: Target
    name: str
    api_key: str | None

    @property
    def key(self) -> str:
        return f"{self.target.endpoint.name}/{self.target.model.id}/{self.target.provider}"


class LoadSession:
    """Everything one Locust process needs for the run; created by the `init` event."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        runner = environment.runner
        self.role = "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"
        self.opts: LoadOptions | None = None
        self.config: Config | None = None
        self.schedule: Schedule | None = None
        self.targets: list[LoadTarget] = []
        self.run_start: float = 0.0
        self.run_start_mono_ns: int = 0
        self.out: Path | None = None
        self.tag = ""
        self.workload: WorkloadGenerator | None = None
        self.records: JsonlAppender | None = None
        self.health_file: JsonlAppender | None = None
        self.health: HealthMonitor | None = None
        self.arrivals: ArrivalQueue | None = None
        self.guard = CostGuard(None)
        self.exporter: LoadExporter | None = None
        self.in_flight = 0
        self.users_started = 0
        self.draining = False
        self.drained = Event()
        self.stopped = Event()
        self.stop_reason: str | None = None
        self.drain_deadline: float | None = None
        self.drained_workers: set[str] = set()
        self.worker_arrivals: dict[str, dict[str, Any]] = {}
        self.token_latency = TokenLatencyTable()
        self._pending_obs: list[dict[str, Any]] = []
        self._pending_health: list[dict[str, Any]] = []
        self._test_started = False

    # ------------------------------------------------------------------------------ setup
    @property
    def has_users(self) -> bool:
        return self.role in ("local", "worker")

    @property
    def controls_shape(self) -> bool:
        return self.role in ("local", "master")

    def prepare_controller(self) -> None:
        """Master/local, at init: validate options and config, start the exporter. Raises LoadSetupError."""
        parsed = self.env.parsed_options
        if not getattr(parsed, "tp_config", ""):
            raise LoadSetupError("--tp-config is required (run through `tokenpulse load --config FILE`)")
        path = Path(parsed.tp_config)
        try:
            parsed.tp_config_text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LoadSetupError(f"{path}: cannot read: {exc.strerror or exc}") from None
        parsed.tp_config_dir = str(path.resolve().parent)
        if not getattr(parsed, "tp_run_id", ""):
            parsed.tp_run_id = time.strftime("%Y%m%d-%H%M%S")
        if not getattr(parsed, "tp_out", ""):
            parsed.tp_out = str(Path("runs") / parsed.tp_run_id)
        self._configure(LoadOptions.from_parsed(parsed))
        assert self.opts is not None and self.config is not None
        if self.opts.arrival_seed is None:
            # Arrivals differ from run to run unless pinned (load.seed); the seed in meta.json replays them.
            seed = self.config.load.seed
            parsed.tp_arrival_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
            self._configure(LoadOptions.from_parsed(parsed))
        if not self.env.stop_timeout:
            # Locust's own drain: a user asked to stop (step down, end of run) ends its request first,
            # for up to this long, then is killed and records it `cancelled` (user.py). Workers get it
            # from the master with each spawn message.
            self.env.stop_timeout = self.drain_s
        if self.opts.metrics_port:
            self.exporter = LoadExporter([t.target for t in self.targets])
            port = self.exporter.serve(self.opts.metrics_port, self.opts.metrics_host)
            log.info("tokenpulse: Prometheus metrics on port %d", port)

    def _configure(self, opts: LoadOptions) -> None:
        """Config, targets and schedule from the options (every role)."""
        self.opts = opts
        try:  # the same bounded reading as every config (tokenpulse.yamlfile)
            self.config = config_from_text(opts.config_text, source=opts.config_path or "<config>")
        except ConfigError as exc:  # it carries the file: field: problem text
            raise LoadSetupError(str(exc)) from None
        try:
            self.schedule = opts.schedule(self.config.load.warmup_s)
        except ValueError as exc:
            raise LoadSetupError(str(exc)) from None
        targets = select_targets(self.config, opts.providers, opts.models)
        names = display_names(targets)
        keys = KeyRing(t.endpoint.api_key_env for t in targets)
        if self.has_users:
            for env_name in keys.missing:
                log.error("tokenpulse: environment variable %s is not set on this load generator; requests to "
                          "%s go without a key", env_name,
                          ", ".join(sorted({t.endpoint.name for t in targets if t.endpoint.api_key_env == env_name})))
        self.targets = [LoadTarget(i, t, names[i], keys.for_endpoint(t.endpoint)) for i, t in enumerate(targets)]
        self.out = Path(opts.out)

    @property
    def drain_s(self) -> float:
        """How long requests in flight may take to finish once the run stops sending (`load.drain_s`)."""
        return self.config.load.drain_window_s if self.config is not None else 0.0

    # --------------------------------------------------------------------------- test start
    def on_test_start(self) -> None:
        parsed = self.env.parsed_options
        if self.controls_shape:
            parsed.tp_run_start = time.time()
            parsed.tp_workers = self._worker_count()
            self._configure(LoadOptions.from_parsed(parsed))
            self.run_start = parsed.tp_run_start
            self._write_meta()
        else:
            self._configure(LoadOptions.from_parsed(parsed))
            self.run_start = (self.opts.run_start if self.opts and self.opts.run_start else time.time())
        # The same instant on the monotonic clock (arrivals are scheduled on it).
        self.run_start_mono_ns = time.monotonic_ns() - int((time.time() - self.run_start) * 1e9)
        self._test_started = True
        if self.has_users:
            freeze_setup_heap()
            self._start_generator()

    def _worker_count(self) -> int:
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            return max(1, len(runner.clients.ready) + len(runner.clients.running) + len(runner.clients.spawning))
        return 1

    def _start_generator(self) -> None:
        opts, config = self.opts, self.config
        assert opts is not None and config is not None and self.out is not None
        runner = self.env.runner
        index = getattr(runner, "worker_index", None) if self.role == "worker" else None
        self.tag = process_tag(index)
        self.out.mkdir(parents=True, exist_ok=True)
        self.records = JsonlAppender(self.out / f"records-{self.tag}.jsonl")
        self.health_file = JsonlAppender(self.out / f"health-{self.tag}.jsonl")
        base_dir = Path(getattr(self.env.parsed_options, "tp_config_dir", "") or ".")
        self.workload = WorkloadGenerator(config.load.workload, run_id=opts.run_id, dataset_base_dir=base_dir)
        share = 1.0 / max(1, opts.workers)
        self.guard = CostGuard(opts.max_cost * share if opts.max_cost else None)
        self.health = HealthMonitor(self.worker_label, run_start=self.run_start, on_sample=self._on_health,
                                    in_flight=lambda: self.in_flight,
                                    users=lambda: self.env.runner.user_count if self.env.runner else 0,
                                    arrivals_pending=lambda: self.arrivals.dropped if self.arrivals else None)
        self.health.start()
        schedule = self.schedule
        assert schedule is not None
        if schedule.kind == "rate":
            def rate_at(t: float) -> float | None:
                step = schedule.step_at(t)
                return None if step is None or self.draining else step.rate

            seed = (opts.arrival_seed or 0) * 1009 + (index or 0)
            self.arrivals = ArrivalQueue(rate_at, share=share, poisson=opts.arrival == "poisson", seed=seed,
                                         start_mono_ns=self.run_start_mono_ns,
                                         step_of=lambda t: schedule.locate(t)[0])
            self.arrivals.start()

    @property
    def worker_label(self) -> str:
        if self.role == "local":
            return "local"
        return str(getattr(self.env.runner, "worker_index", 0))

    # ----------------------------------------------------------------------------- users
    def next_user(self) -> tuple[str, LoadTarget]:
        """A new user's id and target. Users go round-robin over the targets, worker w starting at
        target w: every worker then drives every target (no target tied to one generator's health) and
        the totals per target differ by at most one per worker."""
        n = self.users_started
        self.users_started += 1
        index = int(self.worker_label) if self.role == "worker" else 0
        prefix = "u" if self.role == "local" else f"w{index}u"
        return f"{prefix}{n}", self.targets[(n + index) % len(self.targets)]

    def t_now(self) -> float:
        return time.time() - self.run_start

    def on_request_done(self, obs: Observation) -> None:
        """Local: straight to the exporter and the web UI's table. Worker: queued for the next report."""
        if self.role == "local":
            self._observe(obs)
        else:
            self._pending_obs.append(obs.to_dict())

    def _observe(self, obs: Observation) -> None:
        if 0 <= obs.target < len(self.targets):
            self.token_latency.observe(self.targets[obs.target].name, obs.ttft_s, obs.ttfc_s)
        if self.exporter is not None:
            self.exporter.observe(obs)

    def _on_health(self, sample: HealthSample) -> None:
        if self.health_file is not None:
            self.health_file.write(sample.to_record())
        if self.role == "local":
            if self.exporter is not None:
                self.exporter.health(sample.worker, sample.cpu, sample.lags)
        else:
            self._pending_health.append({"worker": sample.worker, "cpu": sample.cpu, "lags": sample.lags})

    # ------------------------------------------------------------------------------ draining
    def begin_drain(self, reason: str, *, tell_master: bool = True) -> None:
        """Stop sending; once nothing is in flight (or the drain timeout passes) mark this process drained."""
        if self.draining:
            return
        self.draining = True
        self.stop_reason = self.stop_reason or reason
        assert self.opts is not None
        self.drain_deadline = time.monotonic() + self.drain_s
        log.warning("tokenpulse: stopping: %s (spent %.6f USD of this process's %s USD); draining %d in flight",
                    reason, self.guard.spent_usd, self.guard.cap_usd, self.in_flight)
        if self.role == "worker" and tell_master:
            self.env.runner.send_message(MSG_EXHAUSTED, {"reason": reason, "worker": self.worker_label})
        gevent.spawn(self._wait_drained)

    def _wait_drained(self) -> None:
        while self.in_flight > 0 and self.drain_deadline is not None and time.monotonic() < self.drain_deadline:
            gevent.sleep(0.05)
        self.drained.set()
        if self.role == "worker":
            self.env.runner.send_message(MSG_DRAINED, {"worker": self.worker_label, "spent": self.guard.spent_usd})

    def on_msg_exhausted(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Master: one worker's budget ran out: drain every worker."""
        if self.draining:
            return
        self.draining = True
        self.stop_reason = (msg.data or {}).get("reason", STOP_MAX_COST)
        assert self.opts is not None
        self.drain_deadline = time.monotonic() + self.drain_s + 5.0
        log.warning("tokenpulse: worker %s reached its cost share; draining all workers", (msg.data or {}).get("worker"))
        self.env.runner.send_message(MSG_DRAIN, {"reason": self.stop_reason})

    def on_msg_drain(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.begin_drain((msg.data or {}).get("reason", STOP_MAX_COST), tell_master=False)

    def on_msg_drained(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.drained_workers.add(str((msg.data or {}).get("worker")))

    # ------------------------------------------------------------------------------ shape
    def shape_tick(self) -> tuple[int, float] | None:
        """The shape's answer on the master/local: the schedule's, or None once drained or finished."""
        schedule = self.schedule
        if schedule is None or not self._test_started:
            return None if schedule is None else (schedule.users_at(0), schedule.spawn_rate)
        t = self.t_now()
        if self.draining:
            done = (self.drained.is_set() if self.role == "local" else
                    len(self.drained_workers) >= max(1, self.opts.workers if self.opts else 1))
            if done or (self.drain_deadline is not None and time.monotonic() > self.drain_deadline):
                return None
            return self.env.runner.target_user_count or schedule.users_at(t), schedule.spawn_rate
        tick = schedule.tick(t)
        if tick is None:
            self.stop_reason = self.stop_reason or STOP_COMPLETED
            return None
        if self.exporter is not None:
            step = schedule.step_at(t)
            self.exporter.shape(step=step.index if step else 0, users=self.env.runner.user_count,
                                target_users=tick[0], rate=step.rate if step else None)
        return tick

    # ------------------------------------------------------------------------------ reports
    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        if not self.has_users:
            return
        data[REPORT_KEY] = {"obs": self._pending_obs, "health": self._pending_health,
                            "spent": self.guard.spent_usd, "dropped": self.arrivals.dropped if self.arrivals else 0,
                            "arrivals": self._arrival_counts()}
        self._pending_obs = []
        self._pending_health = []

    def _arrival_counts(self) -> dict[str, Any] | None:
        """This process's open-loop counts so far (cumulative: the master keeps each worker's latest)."""
        a = self.arrivals
        if a is None:
            return None
        return {"scheduled": {str(k): v for k, v in a.scheduled_by_step.items()},
                "sent": {str(k): v for k, v in a.taken_by_step.items()}, "unsent": a.dropped}

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        ours = data.get(REPORT_KEY)
        if ours and ours.get("arrivals") is not None:
            self.worker_arrivals[client_id] = ours["arrivals"]
        if not ours:
            return
        for data in ours.get("obs", ()):
            obs = Observation.from_dict(data)
            if obs is not None:  # a worker of another version: skipped rather than mislabelled
                self._observe(obs)
        if self.exporter is None:
            return
        for sample in ours.get("health", ()):
            cpu = sample.get("cpu")
            self.exporter.health(str(sample["worker"]), None if cpu is None else float(cpu), sample.get("lags") or ())

    # ------------------------------------------------------------------------------ stop
    def on_test_stop(self) -> None:
        self.stopped.set()
        if self.health is not None:
            self.health.stop()
            if self.health_file is not None:
                self._on_health(self.health.sample())
        if self.arrivals is not None:
            self.arrivals.stop()
        if self.controls_shape and self._test_started:
            self._write_meta(final=True)

    def on_quit(self) -> None:
        """Final meta (Locust's totals are complete only now, after the workers' last reports)."""
        if self.controls_shape and self._test_started:
            self._write_meta(final=True)
        for f in (self.records, self.health_file):
            if f is not None:
                f.close()
        if self.exporter is not None:
            self.exporter.close()

    def _locust_totals(self) -> dict[str, Any]:
        stats = self.env.runner.stats if self.env.runner else None
        per_name: dict[str, dict[str, int]] = {}
        if stats is not None:
            for (name, method), entry in stats.entries.items():
                per_name.setdefault(method, {})[name] = entry.num_requests
        e2e = per_name.get("E2E", {})
        failures = 0
        if stats is not None:
            failures = sum(e.num_failures for (n, m), e in stats.entries.items() if m == "E2E")
        return {"e2e_requests": sum(e2e.values()), "e2e_failures": failures, "requests_by_type": per_name}

    def _realized_rates(self, schedule: Schedule) -> dict[str, Any]:
        """Per step, the arrivals scheduled (offered) and sent (achieved), as counts and per second of
        the step; with the arrivals never sent. Summed over the processes that ran users."""
        parts = list(self.worker_arrivals.values()) if self.role == "master" else [self._arrival_counts() or {}]
        steps: dict[str, Any] = {}
        for step in schedule.steps:
            key = str(step.index)
            scheduled = sum(int((p.get("scheduled") or {}).get(key, 0)) for p in parts)
            sent = sum(int((p.get("sent") or {}).get(key, 0)) for p in parts)
            steps[key] = {"scheduled": scheduled, "sent": sent, "duration_s": step.duration_s,
                          "offered_per_s": scheduled / step.duration_s if step.duration_s else None,
                          "achieved_per_s": sent / step.duration_s if step.duration_s else None}
        return {"steps": steps, "unsent": sum(int(p.get("unsent") or 0) for p in parts)}

    def _write_meta(self, *, final: bool = False) -> None:
        opts, config, schedule = self.opts, self.config, self.schedule
        if opts is None or config is None or schedule is None or self.out is None:
            return
        meta: dict[str, Any] = {
            "run_id": opts.run_id,
            "tokenpulse_version": __version__,
            "locust_version": locust_version,
            "role": self.role,
            "config_path": opts.config_path,
            "run_start": self.run_start,
            "schedule": schedule.to_dict(),
            "workers": opts.workers,
            "drain_s": self.drain_s,
            "arrival_seed": opts.arrival_seed,
            "options": {"shape": opts.shape, "users": opts.users, "spawn_rate": opts.spawn_rate,
                        "run_time_s": opts.run_time_s, "levels": list(opts.levels), "rate": opts.rate,
                        "arrival": opts.arrival, "max_cost_usd": opts.max_cost, "providers": list(opts.providers),
                        "models": list(opts.models),
                        "transport": opts.transport, "ground_truth": opts.ground_truth},
            "targets": [{"index": t.index, "name": t.name, "endpoint": t.target.endpoint.name,
                         "model": t.target.model.id, "provider": t.target.provider,
                         "price": t.target.model.price.model_dump() if t.target.model.price else None}
                        for t in self.targets],
            "slo": config.slo.model_dump(),
            "workload": config.load.workload.model_dump(mode="json"),
            "timeouts": config.load.timeouts.model_dump(),
        }
        if final:
            meta["run_end"] = time.time()
            meta["stop_reason"] = self.stop_reason or STOP_INTERRUPTED
            meta["locust"] = self._locust_totals()
            if schedule.kind == "rate":
                meta["rates"] = self._realized_rates(schedule)
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / f".{META_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.out / META_FILE)


# ------------------------------------------------------------------------------------ wiring
def session_for(environment: Environment) -> LoadSession:
    session = getattr(environment, "tokenpulse", None)
    if session is None:
        raise RuntimeError("tokenpulse session missing: the locustfile must import tokenpulse.load.locustfile")
    return session


def install(events: Any) -> None:
    """Register our listeners on Locust's events (once per process, however often the locustfile is
    imported: Locust imports it by path, a test may import it by module name)."""
    from tokenpulse.load.options import add_locust_arguments

    if getattr(events, "_tokenpulse_installed", False):
        return
    events._tokenpulse_installed = True

    events.init_command_line_parser.add_listener(add_locust_arguments)

    @events.init.add_listener
    def _on_init(environment: Environment, **_: Any) -> None:
        session = LoadSession(environment)
        environment.tokenpulse = session  # type: ignore[attr-defined]
        runner = environment.runner
        lifeline.watch(lambda: float(environment.stop_timeout or 0.0))
        if session.controls_shape:
            install_tab(environment, session.token_latency)
        if session.controls_shape:
            try:
                session.prepare_controller()
            except LoadSetupError as exc:
                log.error("tokenpulse: %s", exc)
                raise SystemExit(2) from None
        if session.role == "master":
            runner.register_message(MSG_EXHAUSTED, session.on_msg_exhausted)
            runner.register_message(MSG_DRAINED, session.on_msg_drained)
            environment.events.worker_report.add_listener(session.on_worker_report)
        if session.role == "worker":
            runner.register_message(MSG_DRAIN, session.on_msg_drain)
            environment.events.report_to_master.add_listener(session.on_report_to_master)

    @events.test_start.add_listener
    def _on_test_start(environment: Environment, **_: Any) -> None:
        session = session_for(environment)
        try:
            session.on_test_start()
        except LoadSetupError as exc:
            log.error("tokenpulse: %s", exc)
            gevent.spawn(environment.runner.quit)

    @events.test_stop.add_listener
    def _on_test_stop(environment: Environment, **_: Any) -> None:
        session_for(environment).on_test_stop()

    @events.quitting.add_listener
    def _on_quitting(environment: Environment, **_: Any) -> None:
        session = getattr(environment, "tokenpulse", None)
        if session is not None and session.stop_reason is None and session.controls_shape:
            session.stop_reason = STOP_INTERRUPTED

    @events.quit.add_listener
    def _on_quit(exit_code: int, **_: Any) -> None:
        for session in _SESSIONS:
            session.on_quit()

    @events.init.add_listener
    def _track(environment: Environment, **_: Any) -> None:
        _SESSIONS.append(environment.tokenpulse)  # type: ignore[attr-defined]


#: The `quit` event carries no environment; the sessions of this process (one in practice).
_SESSIONS: list[LoadSession] = []
