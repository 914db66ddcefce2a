"""The master's side of `--shape search`: collect each step's requests, judge the step, lay out the next.

How the master learns a step's result, and why this way: the shape runs on the master, the records are
written by the workers, possibly on other machines, so reading the run folder would only work when all
files are local. But every finished request already travels to the master in Locust's worker report
(reporting.py: the wire record, observation.py), tagged with the step it was sent in. So the master
tallies the requests of each step's measured window as they arrive (`observe`), and each worker adds
to its report how many measured requests it *sent* per step, with the time of the report. A step is
complete once every worker has reported since the step's end and the master has as many finished
requests as were sent; then it is judged (core/search.py) and the next level is announced. In a
single process the same counts come from the process itself. This works distributed, with no shared
disk, and the step's verdict is the same rule the report applies later to the JSONL records.

While the master waits (at most `settle_timeout_s`, then the requests still unreported are counted as
not meeting the SLO, and said so), the level is held: the gap is the step's `settle` phase, measured
by nothing. Sans-IO like core/search.py: time comes in as an argument, so it is tested without Locust.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenpulse.core.search import (
    DEFAULT_GOODPUT,
    DEFAULT_MAX_STEPS,
    DEFAULT_RATE_RESOLUTION,
    Criteria,
    Search,
    StepTally,
    judge,
    parse_resolution,
)
from tokenpulse.load.options import LoadOptions
from tokenpulse.runfolder.schedule import Schedule

#: Beyond the drain, how long the master waits for the workers' reports of a step (Locust's worker
#: report comes every 3 s).
REPORT_MARGIN_S = 5.0
LOCAL = "local"


def build_search(opts: LoadOptions) -> Search:
    """The search of these options (raises ValueError with a CLI-ready text)."""
    integer = opts.search != "rate"
    if opts.resolution:
        resolution, relative = parse_resolution(opts.resolution)
    else:
        resolution, relative = (1.0, False) if integer else (DEFAULT_RATE_RESOLUTION, True)
    start = opts.search_start or 1.0
    return Search(start=start, integer=integer, resolution=resolution, relative=relative,
                  max_level=float(opts.users) if integer else float("inf"),
                  max_steps=opts.max_steps or DEFAULT_MAX_STEPS)


@dataclass(slots=True)
class SearchDriver:
    search: Search
    criteria: Criteria
    step_s: float
    warmup_s: float
    settle_timeout_s: float
    tallies: dict[int, StepTally] = field(default_factory=dict)
    finished: Counter[int] = field(default_factory=Counter)
    #: per worker: (time of its latest report in run seconds, cumulative measured sends per step)
    reports: dict[str, tuple[float, dict[int, int]]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    settling_since: float | None = None
    done: bool = False

    @staticmethod
    def of(opts: LoadOptions, slo: Mapping[str, Any], drain_s: float, warmup_s: float) -> SearchDriver:
        return SearchDriver(build_search(opts), Criteria.from_slo(slo, opts.goodput or DEFAULT_GOODPUT),
                            step_s=opts.step_time_s or 30.0, warmup_s=warmup_s,
                            settle_timeout_s=drain_s + REPORT_MARGIN_S)

    def observe(self, step: int | None, record: Mapping[str, Any]) -> None:
        """One finished request of a step's measured window (step None: sent outside one)."""
        if step is None or step < 0 or any(s["index"] == step for s in self.steps):
            return  # judged already: a late report changes nothing the search decided (the report sees it)
        self.tallies.setdefault(step, StepTally()).add(record, self.criteria)
        self.finished[step] += 1

    def worker_report(self, worker: str, t_s: float, sent: Mapping[Any, Any]) -> None:
        """A worker's cumulative measured sends per step, as of `t_s` seconds into the run."""
        self.reports[worker] = (float(t_s), {int(k): int(v) for k, v in sent.items()})

    def _sent(self, step: int) -> int:
        return sum(counts.get(step, 0) for _, counts in self.reports.values())

    def complete(self, step_index: int, step_end_s: float, workers: int) -> bool:
        """Every worker has reported since the step's end, and every request it sent there is in."""
        fresh = [w for w, (t, _) in self.reports.items() if t >= step_end_s]
        return len(fresh) >= workers and self.finished[step_index] >= self._sent(step_index)

    def tick(self, schedule: Schedule, t: float, workers: int) -> Schedule:
        """Called by the shape about once a second: the schedule, with the next step added once the
        current one is judged (unchanged otherwise); `done` once the search is over."""
        if self.done:
            return schedule
        step = schedule.steps[-1]
        if t < step.end_s:
            return schedule
        if self.settling_since is None:
            self.settling_since = t
        if not self.complete(step.index, step.end_s, workers) and t - self.settling_since < self.settle_timeout_s:
            return schedule
        tally = self.tallies.setdefault(step.index, StepTally())
        tally.add_unresolved(max(0, self._sent(step.index) - self.finished[step.index]))
        # a level re-run because it was undecided: its consecutive steps are judged together
        pooled = [step.index]
        for previous in reversed(self.steps):
            if previous["level"] != step.level:
                break
            pooled.insert(0, previous["index"])
        total = StepTally()
        for index in pooled:
            total = total.merged(self.tallies.get(index, StepTally()))
        result = judge(total, self.criteria)
        self.steps.append({"index": step.index, "level": step.level, "settle_s": round(t - step.end_s, 3),
                           "pooled_steps": pooled, **result})
        self.search.record(step.level, result["verdict"])
        self.settling_since = None
        level = self.search.next_level()
        if level is None:
            self.done = True
            return schedule
        # a re-run continues the level it held through the settle: no new warm-up
        warmup = 0.0 if level == step.level else self.warmup_s
        return schedule.with_step(level, t, self.step_s, warmup)

    def stop(self, reason: str) -> None:
        self.search.stop(reason)
        self.done = True

    def to_dict(self) -> dict[str, Any]:
        """meta.json's `search`: the settings, each judged step, and the answer."""
        s = self.search
        return {"varies": "users" if s.integer else "rate", "start": s.start, "max_level": s.max_level
                if s.max_level != float("inf") else None, "max_steps": s.max_steps,
                "resolution": s.resolution_text(), "criteria": self.criteria.to_dict(),
                "repeats": s.repeats, "undecided": "re-run (pooled) up to `repeats` times, then counted as failing",
                "steps": self.steps, "answer": s.answer()}
