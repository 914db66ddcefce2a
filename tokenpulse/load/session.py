"""One Locust process's part of a run: the lifetimes of its pieces, and the wiring of Locust's events.

Roles (from Locust's runner): `local` (one process: shape, users, records, exporter), `master` (shape,
exporter, cost coordination, meta.json; no users) and `worker` (users, records, health; reports to the
master). Each process builds the same `RunContext` (context.py) from the same `--tp-*` options; the
master adds the run start time, the worker count, the arrival seed and the config text before its
first spawn message.

The pieces, each with one lifetime and testable without Locust:
- `RunContext` (context.py): options, config, schedule, targets, folder; rebuilt at test start.
- `DrainState` (drain.py): who has drained once the run must stop sending.
- `WorkerOutbox` / `MasterInbox` (reporting.py): the worker -> master report payload.
- meta.json (meta.py): built from plain values, written atomically at start and end.
- the generator (records, health, arrivals, workload, cost guard): created at test start, in the
  processes that run users.
This module holds them for one process and connects them to Locust's events (`install`).

Stopping: when a step lowers its users or the run ends (the shape then asks for zero users first,
and ends the run once none is left), Locust's stop timeout (set to `load.drain_s`) lets users finish
their request in flight; a user killed after it records that request `cancelled` (user.py).
`--max-cost`: the process whose budget share runs out stops sending (`draining`), lets its
requests in flight finish (up to `load.drain_s`), and the shape then returns None, which is how Locust
ends a shape test cleanly (CSV, HTML and final stats still written). In a distributed run the worker
tells the master (`tp_exhausted`), the master tells every worker to drain (`tp_drain`), each worker
answers `tp_drained`, and the master's shape ends the run.

Files written by this process: `meta.json` and `listing-*.json` (master or local) and, per process
with users, `records-<tag>.jsonl` / `health-<tag>.jsonl` / `generations-<tag>.jsonl`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from tokenpulse.config import Config
from tokenpulse.gctune import freeze_setup_heap
from tokenpulse.load import lifeline
from tokenpulse.load.arrivals import ArrivalQueue
from tokenpulse.load.bounds import RequestBudget, request_share
from tokenpulse.load.context import LoadTarget, RunContext, build_context
from tokenpulse.load.cost import CostGuard, correct_spend
from tokenpulse.load.drain import FLUSH_WAIT_S, MASTER_MARGIN_S, DrainState, FlushState
from tokenpulse.load.exporter import LoadExporter
from tokenpulse.load.generations import GenerationLookupWorker
from tokenpulse.load.health import HealthMonitor, HealthSample
from tokenpulse.load.listing import save_listings
from tokenpulse.load.meta import build_meta, locust_totals, write_meta
from tokenpulse.load.observation import Observation
from tokenpulse.load.options import LoadOptions
from tokenpulse.load.reporting import REPORT_KEY, MasterInbox, WorkerOutbox
from tokenpulse.load.search import SearchDriver
from tokenpulse.load.targets import LoadSetupError
from tokenpulse.load.trace import TraceError, load_trace, replay_times
from tokenpulse.load.variants import effective_workload
from tokenpulse.load.webui import TokenLatencyTable, install_tab
from tokenpulse.load.workload import WorkloadGenerator
from tokenpulse.runfolder.generations import generations_file
from tokenpulse.runfolder.records import JsonlAppender, process_tag
from tokenpulse.runfolder.schedule import MEASURE, Schedule, Step

log = logging.getLogger("tokenpulse.load")

STOP_COMPLETED = "completed"
STOP_MAX_COST = "max_cost"
STOP_MAX_REQUESTS = "max_requests"
STOP_INTERRUPTED = "interrupted"
MSG_EXHAUSTED = "tp_exhausted"
MSG_DRAIN = "tp_drain"
MSG_DRAINED = "tp_drained"
#: End of a distributed run, once no user is left: the master asks every worker for its last Locust
#: stats (`tp_flush`); each sends them, then answers `tp_flushed` on the same socket, so the answer
#: arrives after the stats. Locust's own last report comes after "quit", which the master waits only
#: half a second for: under load it arrived too late and the totals missed a worker's last requests.
MSG_FLUSH = "tp_flush"
MSG_FLUSHED = "tp_flushed"
#: search shape: the master announces each next step to the workers (its Step fields).
MSG_STEP = "tp_step"
#: After the schedule's end, how much longer than the drain the shape waits for users to stop.
END_MARGIN_S = 10.0
#: At the end of a run, how long it waits at most for its /generation lookups still pending.
LOOKUP_WAIT_S = 30.0

__all__ = ["REPORT_KEY", "STOP_COMPLETED", "STOP_INTERRUPTED", "STOP_MAX_COST", "LoadSession", "LoadTarget",
           "install", "session_for"]


def _role(environment: Environment) -> str:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return "master"
    return "worker" if isinstance(runner, WorkerRunner) else "local"


class LoadSession:
    """One Locust process's run: created by the `init` event."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.role = _role(environment)
        self.ctx: RunContext | None = None
        self.run_start: float = 0.0
        self.run_start_mono_ns: int = 0
        self.drain = DrainState()
        self.stopped = Event()
        self.token_latency = TokenLatencyTable()
        self.outbox = WorkerOutbox()
        self.inbox = MasterInbox(self._observe, self._export_health, self._search_report)
        #: search shape, master/local: the live search (load/search.py); every process with users
        #: counts its measured sends per step for it.
        self.search: SearchDriver | None = None
        self.sent_by_step: Counter[int] = Counter()
        self.exporter: LoadExporter | None = None
        self.stop_reason: str | None = None
        # the generator (processes that run users), from test start to quit
        self.tag = ""
        self.workload: WorkloadGenerator | None = None
        self.records: JsonlAppender | None = None
        self.health_file: JsonlAppender | None = None
        self.health: HealthMonitor | None = None
        self.arrivals: ArrivalQueue | None = None
        self.guard = CostGuard(None)
        self.lookups: GenerationLookupWorker | None = None  # /generation lookups (load/generations.py)
        self.budget = RequestBudget()  # --max-requests: this process's share (bounds.py)
        self.in_flight = 0
        self.users_started = 0
        self._test_started = False
        self._ending_since: float | None = None
        #: master, end of run: when it asked its workers for their last stats, who it asked, who answered
        self.flush = FlushState()

    # ------------------------------------------------------------------------ context views
    @property
    def opts(self) -> LoadOptions | None:
        return self.ctx.opts if self.ctx else None

    @property
    def config(self) -> Config | None:
        return self.ctx.config if self.ctx else None

    @property
    def schedule(self) -> Schedule | None:
        return self.ctx.schedule if self.ctx else None

    @property
    def targets(self) -> tuple[LoadTarget, ...]:
        return self.ctx.targets if self.ctx else ()

    @property
    def out(self) -> Path | None:
        return self.ctx.out if self.ctx else None

    @property
    def drain_s(self) -> float:
        return self.ctx.drain_s if self.ctx else 0.0

    @property
    def draining(self) -> bool:
        return self.drain.draining

    @property
    def has_users(self) -> bool:
        return self.role in ("local", "worker")

    @property
    def controls_shape(self) -> bool:
        return self.role in ("local", "master")

    @property
    def worker_label(self) -> str:
        if self.role == "local":
            return "local"
        return str(getattr(self.env.runner, "worker_index", 0))

    def _configure(self) -> RunContext:
        self.ctx = build_context(LoadOptions.from_parsed(self.env.parsed_options), has_users=self.has_users)
        return self.ctx

    # ------------------------------------------------------------------------------ setup
    def _parsed_options(self) -> Any:
        """Locust's parsed options (with our --tp-* ones); absent only when Locust is driven without its
        command line, which a tokenpulse run never is."""
        parsed = self.env.parsed_options
        if parsed is None:
            raise LoadSetupError("Locust ran without parsed options (start it through `tokenpulse load`)")
        return parsed

    def prepare_controller(self) -> None:
        """Master/local, at init: validate options and config, pick the arrival seed, set Locust's
        drain, start the exporter. Raises LoadSetupError."""
        parsed = self._parsed_options()
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
        ctx = self._configure()
        if ctx.opts.arrival_seed is None:
            # Arrivals differ from run to run unless pinned (load.seed); the seed in meta.json replays them.
            seed = ctx.config.load.seed
            parsed.tp_arrival_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
            ctx = self._configure()
        if not self.env.stop_timeout:
            # Locust's own drain: a user asked to stop (step down, end of run) ends its request first,
            # for up to this long, then is killed and records it `cancelled` (user.py). Workers get it
            # from the master with each spawn message.
            self.env.stop_timeout = ctx.drain_s
        if ctx.opts.metrics_port:
            self.exporter = LoadExporter([t.target for t in ctx.targets])
            port = self.exporter.serve(ctx.opts.metrics_port, ctx.opts.metrics_host)
            log.info("tokenpulse: Prometheus metrics on port %d", port)

    # --------------------------------------------------------------------------- test start
    def on_test_start(self) -> None:
        parsed = self._parsed_options()
        if self.controls_shape:
            parsed.tp_run_start = time.time()
            parsed.tp_workers = self._worker_count()
            ctx = self._configure()
            self.run_start = parsed.tp_run_start
            write_meta(ctx.out, build_meta(ctx, role=self.role, run_start=self.run_start))
            # What OpenRouter published as the run began (matrix report), and the providers' display
            # names, which go to every worker with the parsed options (Locust sends them at spawn).
            names = save_listings(ctx.out, ctx.targets)
            if names:
                parsed.tp_provider_names = json.dumps(names)
                ctx = self._configure()
        else:
            ctx = self._configure()
            self.run_start = ctx.opts.run_start or time.time()
        # The same instant on the monotonic clock (arrivals are scheduled on it).
        self.run_start_mono_ns = time.monotonic_ns() - int((time.time() - self.run_start) * 1e9)
        self._test_started = True
        if self.controls_shape and ctx.schedule.kind == "search":
            warmup = ctx.opts.warmup_s if ctx.opts.warmup_s is not None else ctx.config.load.warmup_s
            self.search = SearchDriver.of(ctx.opts, ctx.slo, ctx.drain_s, warmup)
        if self.has_users:
            freeze_setup_heap()
            self._start_generator(ctx)

    def _worker_count(self) -> int:
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            return max(1, len(runner.clients.ready) + len(runner.clients.running) + len(runner.clients.spawning))
        return 1

    def _start_generator(self, ctx: RunContext) -> None:
        opts, config, schedule = ctx.opts, ctx.config, ctx.schedule
        index = getattr(self.env.runner, "worker_index", None) if self.role == "worker" else None
        self.tag = process_tag(index)
        ctx.out.mkdir(parents=True, exist_ok=True)
        self.records = JsonlAppender(ctx.out / f"records-{self.tag}.jsonl")
        self.health_file = JsonlAppender(ctx.out / f"health-{self.tag}.jsonl")
        base_dir = Path(getattr(self.env.parsed_options, "tp_config_dir", "") or ".")
        self.workload = WorkloadGenerator(effective_workload(config.load.workload, opts.input_lengths),
                                          run_id=opts.run_id, dataset_base_dir=base_dir, context=dict(opts.context))
        share = 1.0 / max(1, opts.workers)
        if opts.max_requests:
            self.budget = RequestBudget(request_share(opts.max_requests, opts.workers, index or 0))
        self.guard = CostGuard(opts.max_cost * share if opts.max_cost else None)
        lookups = config.load.generations
        if lookups.max_rate_per_s > 0 and any(t.target.endpoint.kind == "openrouter" for t in ctx.targets):
            self.lookups = GenerationLookupWorker(
                generations_file(ctx.out, self.tag), lookups, share=share,
                on_billed=lambda lookup, cost: correct_spend(self.guard, lookup.counted_usd or 0.0, cost))
            self.lookups.start()
        self.health = HealthMonitor(self.worker_label, run_start=self.run_start, on_sample=self._on_health,
                                    in_flight=lambda: self.in_flight,
                                    users=lambda: self.env.runner.user_count if self.env.runner else 0,
                                    arrivals_pending=lambda: self.arrivals.dropped if self.arrivals else None)
        self.health.start()
        if schedule.kind == "rate" or (schedule.kind == "search" and schedule.steps[0].rate is not None):
            # `self.schedule`, not `schedule`: a search adds steps as the run goes.
            def rate_at(t: float) -> float | None:
                step = self.schedule.step_at(t) if self.schedule else None
                return None if step is None or self.drain.draining else step.rate

            seed = (opts.arrival_seed or 0) * 1009 + (index or 0)
            self.arrivals = ArrivalQueue(rate_at, share=share, poisson=opts.arrival == "poisson", seed=seed,
                                         start_mono_ns=self.run_start_mono_ns, burstiness=opts.burstiness)
            self.arrivals.start()
        elif opts.trace:
            self._start_replay(ctx, index or 0)

    def _start_replay(self, ctx: RunContext, index: int) -> None:
        """`--trace`: this process's share of the trace's arrivals, each at its own time (trace.py)."""
        opts, schedule = ctx.opts, ctx.schedule
        try:
            items = load_trace(opts.trace, opts.trace_format or None)  # type: ignore[arg-type]
        except TraceError as exc:  # checked by `tokenpulse load`; a worker's own copy may differ
            raise LoadSetupError(str(exc)) from None

        def open_until_end(t: float) -> float | None:
            return None if schedule.step_at(t) is None or self.drain.draining else 1.0

        times = replay_times(items, speed=opts.speed, worker=index, workers=opts.workers)
        self.arrivals = ArrivalQueue(open_until_end, share=1.0, poisson=False, seed=0,
                                     start_mono_ns=self.run_start_mono_ns, times=times)
        self.arrivals.start()

    # ----------------------------------------------------------------------------- users
    def next_user(self) -> tuple[str, LoadTarget]:
        """A new user's id and target. Users go round-robin over the targets, worker w starting at
        target w: every worker then drives every target (no target tied to one generator's health) and
        the totals per target differ by at most one per worker."""
        n = self.users_started
        self.users_started += 1
        index = int(self.worker_label) if self.role == "worker" else 0
        prefix = "u" if self.role == "local" else f"w{index}u"
        targets = self.targets
        return f"{prefix}{n}", targets[(n + index) % len(targets)]

    def t_now(self) -> float:
        return time.time() - self.run_start

    def on_request_done(self, obs: Observation) -> None:
        """Local: straight to the exporter and the web UI's table. Worker: into the next report."""
        if self.role == "local":
            self._observe(obs)
        else:
            self.outbox.request(obs)

    def note_sent(self, start_time: float) -> None:
        """A request is being sent: a search counts the sends of each step's measured window."""
        schedule = self.schedule
        if schedule is not None and schedule.kind == "search":
            step, _, phase = schedule.locate(start_time - self.run_start)
            if phase == MEASURE:
                self.sent_by_step[step] += 1

    def _search_report(self, worker: str, t_s: float, sent: dict[Any, Any]) -> None:
        if self.search is not None:
            self.search.worker_report(worker, t_s, sent)

    def _set_schedule(self, schedule: Schedule) -> None:
        if self.ctx is not None and schedule is not self.ctx.schedule:
            self.ctx = replace(self.ctx, schedule=schedule)

    def on_msg_step(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Worker: the master's next search step."""
        schedule = self.schedule
        try:
            step = Step(**(msg.data or {}))
        except TypeError:
            log.error("tokenpulse: unreadable search step from the master: %r", msg.data)
            return
        if schedule is not None:
            self._set_schedule(schedule.add(step))

    def _observe(self, obs: Observation) -> None:
        if self.search is not None:
            self.search.observe(obs.step, obs.to_dict())
        targets = self.targets
        if 0 <= obs.target < len(targets):
            self.token_latency.observe(targets[obs.target].name, obs.ttft_s, obs.ttfc_s)
        if self.exporter is not None:
            self.exporter.observe(obs)

    def _on_health(self, sample: HealthSample) -> None:
        if self.health_file is not None:
            self.health_file.write(sample.to_record())
        if self.role == "local":
            self._export_health(sample.worker, sample.cpu, sample.lags)
        else:
            self.outbox.health(sample.worker, sample.cpu, sample.lags)

    def _export_health(self, worker: str, cpu: float | None, lags: list[float]) -> None:
        if self.exporter is not None:
            self.exporter.health(worker, cpu, lags)

    # ------------------------------------------------------------------------------ draining
    def begin_drain(self, reason: str, *, tell_master: bool = True) -> None:
        """Stop sending; once nothing is in flight (or the drain passes) mark this process drained."""
        if not self.drain.begin(reason, time.monotonic(), self.drain_s):
            return
        self.stop_reason = self.stop_reason or self.drain.reason
        if reason == STOP_MAX_REQUESTS and self.arrivals is not None:
            self.arrivals.discard_pending()  # the count is reached: what is still queued is not load
        log.warning("tokenpulse: stopping: %s (spent %.6f USD of this process's %s USD); draining %d in flight",
                    reason, self.guard.spent_usd, self.guard.cap_usd, self.in_flight)
        if self.role == "worker" and tell_master:
            self._send(MSG_EXHAUSTED, {"reason": reason, "worker": self.worker_label})
        gevent.spawn(self._wait_drained)

    def _send(self, msg_type: str, data: dict[str, Any]) -> None:
        runner = self.env.runner
        if runner is not None:
            runner.send_message(msg_type, data)

    def _wait_drained(self) -> None:
        while self.in_flight > 0 and not self.drain.expired(time.monotonic()):
            gevent.sleep(0.05)
        self.drain.drained = True
        if self.role == "worker":
            self._send_final_stats()  # before the answer, so the master has them when it ends the run
            self._send(MSG_DRAINED, {"worker": self.worker_label, "spent": self.guard.spent_usd})

    def _send_final_stats(self) -> None:
        """Worker: send Locust's stats (and our outbox, which rides on them) now, not at the next
        3-second report."""
        send_stats = getattr(self.env.runner, "_send_stats", None)
        if send_stats is not None:
            send_stats()

    def on_msg_flush(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Worker: the master ends the run: send the last stats, then say so."""
        self._send_final_stats()
        self._send(MSG_FLUSHED, {})

    def on_msg_flushed(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.flush.answer(str(msg.node_id))  # the worker's client id, as `runner.clients` lists it

    def on_msg_exhausted(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Master: one worker's budget ran out: drain every worker."""
        reason = (msg.data or {}).get("reason", STOP_MAX_COST)
        if reason == STOP_MAX_REQUESTS:
            return  # each worker sends its own share and drains alone; the shape ends when all have
        if not self.drain.begin(reason, time.monotonic(), self.drain_s + MASTER_MARGIN_S):
            return
        self.stop_reason = self.drain.reason
        log.warning("tokenpulse: worker %s reached its cost share; draining all workers",
                    (msg.data or {}).get("worker"))
        self._send(MSG_DRAIN, {"reason": self.stop_reason})

    def on_msg_drain(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.begin_drain((msg.data or {}).get("reason", STOP_MAX_COST), tell_master=False)

    def on_msg_drained(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.drain.worker_drained(str((msg.data or {}).get("worker")))

    # ------------------------------------------------------------------------------ shape
    def shape_tick(self) -> tuple[int, float] | None:
        """The shape's answer on the master/local: the schedule's, or None once drained or finished."""
        schedule = self.schedule
        if schedule is None or not self._test_started:
            return None if schedule is None else (schedule.users_at(0), schedule.spawn_rate)
        t = self.t_now()
        runner = self.env.runner
        opts = self.opts
        if (self.role == "master" and opts is not None and opts.max_requests
                and len(self.drain.drained_workers) >= max(1, opts.workers)):
            self.stop_reason = self.stop_reason or STOP_MAX_REQUESTS  # every worker sent its share
            return self._end_tick(schedule)  # zero users first, so their last stats reach the master
        if self.drain.draining:
            if self.search is not None:
                self.search.stop(self.drain.reason or STOP_MAX_COST)
            workers = self.opts.workers if self.opts else 1
            if self.drain.done(local=self.role == "local", workers=workers, now=time.monotonic()):
                return None
            return (runner.target_user_count if runner else 0) or schedule.users_at(t), schedule.spawn_rate
        if self.search is not None:
            return self._search_tick(schedule, t)
        tick = schedule.tick(t)
        if tick is None:
            return self._end_tick(schedule)
        if self.exporter is not None:
            step = schedule.step_at(t)
            self.exporter.shape(step=step.index if step else 0, users=runner.user_count if runner else 0,
                                target_users=tick[0], rate=step.rate if step else None)
        return tick

    def _search_tick(self, schedule: Schedule, t: float) -> tuple[int, float] | None:
        """The search's answer: hold the current level, or add (and announce) the next step once the
        current one is judged, or end the run once the search is over."""
        assert self.search is not None
        if self.role == "local":
            self.search.worker_report(self.worker_label, t, dict(self.sent_by_step))
        workers = 1 if self.role == "local" else max(1, self.opts.workers if self.opts else 1)
        updated = self.search.tick(schedule, t, workers)
        if updated is not schedule:
            self._set_schedule(updated)
            step = updated.steps[-1]
            log.info("tokenpulse: search step %d at level %g", step.index + 1, step.level)
            if self.role == "master":
                self._send(MSG_STEP, asdict(step))
            schedule = updated
        if self.search.done:
            return self._end_tick(schedule)
        runner = self.env.runner
        step_now = schedule.step_at(t)
        users = schedule.users_at(t)
        if self.exporter is not None and step_now is not None:
            self.exporter.shape(step=step_now.index, users=runner.user_count if runner else 0,
                                target_users=users, rate=step_now.rate)
        return users, schedule.spawn_rate

    def _end_tick(self, schedule: Schedule) -> tuple[int, float] | None:
        """The schedule is over: first ask for zero users, so that every process lets its users finish
        their requests (Locust's stop timeout, `load.drain_s`) while the master still listens; end the
        run once no user is left or the drain (plus a margin) has passed. Ending at once would make a
        headless master quit within half a second, before its workers' drained requests reach it."""
        self.stop_reason = self.stop_reason or STOP_COMPLETED
        now = time.monotonic()
        if self._ending_since is None:
            self._ending_since = now
        runner = self.env.runner
        users = runner.user_count if runner is not None else 0
        if (users == 0 and now > self._ending_since) or now - self._ending_since > self.drain_s + END_MARGIN_S:
            return None if self._workers_flushed(now) else (0, schedule.spawn_rate)
        return 0, schedule.spawn_rate

    def _workers_flushed(self, now: float) -> bool:
        """Master: whether every worker has sent its last stats (asking them the first time), or the
        wait is over. Local runs have nothing to wait for."""
        runner = self.env.runner
        if self.role != "master" or runner is None:
            return True
        clients = getattr(runner, "clients", None)  # a MasterRunner's workers
        if self.flush.ask(now, {str(c.id) for c in clients.all} if clients is not None else set()):
            self._send(MSG_FLUSH, {})
        if not self.flush.done(now):
            return False
        if self.flush.missing:
            log.warning("tokenpulse: %d worker(s) did not send their last stats within %.0f s; Locust's "
                        "totals may miss their last requests (the records do not)", len(self.flush.missing),
                        FLUSH_WAIT_S)
        return True

    # ------------------------------------------------------------------------------ reports
    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        if self.has_users:
            schedule = self.schedule
            search = ({"t_s": round(self.t_now(), 3), "sent": {str(k): v for k, v in self.sent_by_step.items()}}
                      if schedule is not None and schedule.kind == "search" else None)
            self.outbox.flush_into(data, spent_usd=self.guard.spent_usd,
                                   unsent=self.arrivals.dropped if self.arrivals else 0, search=search)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self.inbox.receive(client_id, data)

    # ------------------------------------------------------------------------------ stop
    def on_test_stop(self) -> None:
        self.stopped.set()
        if self.health is not None:
            self.health.stop()
            if self.health_file is not None:
                self._on_health(self.health.sample())
        if self.arrivals is not None:
            self.arrivals.stop()
        if self.lookups is not None:  # the last generations are written a while after their streams end
            self.lookups.stop(wait_s=min(LOOKUP_WAIT_S, self.lookups.settings.deadline_s))
            self.lookups = None
        if self.role == "worker":
            # Report the drain's requests now: after "stop" a Locust worker sleeps for the stop timeout
            # before it handles the master's "quit" (and its final report), and by then the master has
            # printed and written its totals without them.
            self._send_final_stats()
        self._write_final_meta()

    def on_quit(self) -> None:
        """Final meta (Locust's totals are complete only now, after the workers' last reports)."""
        self._write_final_meta()
        for f in (self.records, self.health_file):
            if f is not None:
                f.close()
        if self.exporter is not None:
            self.exporter.close()

    def _write_final_meta(self) -> None:
        ctx = self.ctx
        if not (self.controls_shape and self._test_started and ctx is not None):
            return
        meta = build_meta(ctx, role=self.role, run_start=self.run_start)
        meta["run_end"] = time.time()
        meta["stop_reason"] = self.stop_reason or STOP_INTERRUPTED
        runner = self.env.runner
        meta["locust"] = locust_totals(runner.stats.entries if runner is not None else None)
        if self.search is not None:
            meta["search"] = self.search.to_dict()
        write_meta(ctx.out, meta)


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
        _SESSIONS.append(session)
        runner = environment.runner
        lifeline.watch(lambda: float(environment.stop_timeout or 0.0))
        if session.controls_shape:
            try:
                session.prepare_controller()
            except LoadSetupError as exc:
                log.error("tokenpulse: %s", exc)
                raise SystemExit(2) from None
            install_tab(environment, session.token_latency)
        if runner is None:
            return
        if session.role == "master":
            runner.register_message(MSG_EXHAUSTED, session.on_msg_exhausted)
            runner.register_message(MSG_DRAINED, session.on_msg_drained)
            runner.register_message(MSG_FLUSHED, session.on_msg_flushed)
            environment.events.worker_report.add_listener(session.on_worker_report)
        if session.role == "worker":
            runner.register_message(MSG_DRAIN, session.on_msg_drain)
            runner.register_message(MSG_FLUSH, session.on_msg_flush)
            runner.register_message(MSG_STEP, session.on_msg_step)
            environment.events.report_to_master.add_listener(session.on_report_to_master)

    @events.test_start.add_listener
    def _on_test_start(environment: Environment, **_: Any) -> None:
        session = session_for(environment)
        try:
            session.on_test_start()
        except LoadSetupError as exc:
            log.error("tokenpulse: %s", exc)
            if environment.runner is not None:
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


#: The `quit` event carries no environment; the sessions of this process (one in practice).
_SESSIONS: list[LoadSession] = []
