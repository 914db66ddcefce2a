"""What load to apply when: a run is a list of steps; each has a level, a duration and a warm-up.

Why a pure schedule apart from Locust's `LoadTestShape`: the master runs the shape, but every worker
must tag each record with the step and phase it started in, and the report must know each step's
measured window. All of them compute the same `Schedule` from the same options and a shared start time,
so nothing about steps travels per request.

Shapes:
- fixed: one step at `users` for the run time.
- ramp: users grow linearly from 1 to `users` over the run time; records are grouped into `bins` steps
  of equal duration whose level is the target concurrency at the bin's middle. No warm-up.
- sweep: one step per concurrency level, `step_s` each.
- rate: open-loop arrivals at a fixed rate per step (`levels` are rates when given); `users` is the pool
  of concurrent requests available to serve them.
- search: adaptive (core/search.py, load/search.py): the schedule starts with one step at the start
  level and the master appends each next step (`with_step`) once the previous one is judged; every
  worker appends the same step when the master announces it. Between a step's end and the next one's
  start the level is held while the master collects the step's last requests: that time is the step's
  `settle` phase, measured by nothing (like a warm-up).

Each step's first `warmup_s` (plus the time needed to spawn its new users at `spawn_rate`) is excluded
from every figure: the report measures only the steady part.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

ShapeKind = Literal["fixed", "ramp", "sweep", "rate", "search"]
SHAPES: tuple[str, ...] = ("fixed", "ramp", "sweep", "rate", "search")
WARMUP = "warmup"
MEASURE = "measure"
#: search only: after a step's measured window, while the master judges it (the level is held).
SETTLE = "settle"
#: Ramp runs are cut into this many steps for the report (and its knee detection).
RAMP_BINS = 10


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    start_s: float
    duration_s: float
    warmup_s: float
    users: int
    rate: float | None = None

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def measure_start_s(self) -> float:
        return self.start_s + self.warmup_s

    @property
    def level(self) -> float:
        """The x-axis value of this step: arrivals per second for rate shapes, else users."""
        return self.rate if self.rate is not None else float(self.users)


@dataclass(frozen=True, slots=True)
class Schedule:
    kind: ShapeKind
    steps: tuple[Step, ...]
    spawn_rate: float
    max_users: int

    @property
    def total_s(self) -> float:
        return self.steps[-1].end_s if self.steps else 0.0

    def step_at(self, t: float) -> Step | None:
        """The step running `t` seconds after the start (None before the start or after the end)."""
        if t < 0:
            return None
        for step in self.steps:
            if t < step.end_s:
                return step if t >= step.start_s else self.held_step(t)
        return self.held_step(t)

    def held_step(self, t: float) -> Step | None:
        """search: the step whose level is held after its end, until the next one starts (None for the
        other shapes, whose steps leave no gap and end the run with the last one)."""
        if self.kind != "search" or t < 0:
            return None
        held = None
        for step in self.steps:
            if step.start_s <= t:
                held = step
        return held

    def with_step(self, level: float, start_s: float, duration_s: float, warmup_s: float) -> Schedule:
        """search: this schedule plus a step at `level` (users, or a rate when the steps are rates)
        starting at `start_s`; its warm-up adds the time to spawn the users it adds."""
        last = self.steps[-1]
        if last.rate is not None:
            return self.add(Step(last.index + 1, start_s, duration_s, warmup_s, last.users, float(level)))
        users = int(level)
        warm = warmup_s + max(users - last.users, 0) / self.spawn_rate
        return self.add(Step(last.index + 1, start_s, duration_s, warm, users))

    def add(self, step: Step) -> Schedule:
        """This schedule plus `step` (a worker adds the step its master announced); a step it already
        has is ignored, so an announcement repeated or arriving twice changes nothing."""
        if any(s.index == step.index for s in self.steps):
            return self
        return Schedule(self.kind, (*self.steps, step), self.spawn_rate, max(self.max_users, step.users))

    def phase_at(self, t: float) -> str:
        held = self.held_step(t)
        if held is not None and t >= held.end_s:
            return SETTLE
        step = self.step_at(t)
        if step is None:
            return MEASURE if t >= 0 else WARMUP  # after the end: draining, still counted with the last step
        return WARMUP if t < step.measure_start_s else MEASURE

    def users_at(self, t: float) -> int:
        """Target concurrency now. The ramp grows continuously; the others follow their step."""
        if self.kind == "ramp":
            fraction = min(max(t / self.total_s, 0.0), 1.0) if self.total_s else 1.0
            return max(1, math.ceil(self.max_users * fraction))
        step = self.step_at(t)
        return step.users if step else (self.steps[-1].users if self.steps else 0)

    def tick(self, t: float) -> tuple[int, float] | None:
        """What Locust's shape returns at `t`: (users, spawn rate), or None once the run is over."""
        if t >= self.total_s:
            return None
        return self.users_at(t), self.spawn_rate

    def locate(self, t: float) -> tuple[int, float, str]:
        """(step index, level, phase) of a request that starts at `t`; after the end, the last step."""
        step = self.step_at(t)
        if step is None:
            step = self.steps[-1] if t >= 0 else self.steps[0]
        return step.index, step.level, self.phase_at(t)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "spawn_rate": self.spawn_rate, "max_users": self.max_users,
                "steps": [asdict(s) for s in self.steps]}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Schedule:
        return Schedule(kind=data["kind"], spawn_rate=float(data["spawn_rate"]), max_users=int(data["max_users"]),
                        steps=tuple(Step(**s) for s in data["steps"]))


def build_schedule(kind: str, *, users: int, spawn_rate: float | None, run_time_s: float,
                   warmup_s: float = 0.0, levels: list[float] | None = None, step_s: float | None = None,
                   rate: float | None = None, search_start: float | None = None) -> Schedule:
    """Validate the options of one shape and lay out its steps. Raises ValueError with a CLI-ready text."""
    if kind not in SHAPES:
        raise ValueError(f"unknown shape {kind!r}; choose one of {', '.join(SHAPES)}")
    if users < 1:
        raise ValueError("--users must be >= 1")
    if warmup_s < 0:
        raise ValueError("--warmup must be >= 0")
    # Default spawn rate: every user of the largest step within a second (so a step's spawning is short).
    top = max([users, *(int(x) for x in levels or [] if kind == "sweep")])
    spawn = float(spawn_rate) if spawn_rate else float(top)
    if spawn <= 0:
        raise ValueError("--spawn-rate must be > 0")

    def spawn_time(before: int, after: int) -> float:
        return max(after - before, 0) / spawn

    if kind == "fixed":
        if run_time_s <= 0:
            raise ValueError("--run-time must be > 0")
        warm = warmup_s + spawn_time(0, users)
        _check_window(run_time_s, warm, "the run")
        return Schedule("fixed", (Step(0, 0.0, run_time_s, warm, users),), spawn, users)

    if kind == "ramp":
        if run_time_s <= 0:
            raise ValueError("--run-time must be > 0")
        bins = max(1, min(RAMP_BINS, users))
        width = run_time_s / bins
        steps = tuple(Step(i, i * width, width, 0.0, max(1, round(users * (i + 0.5) / bins))) for i in range(bins))
        # The ramp's own growth rate: reach `users` exactly at the end, never faster than asked.
        ramp_rate = max(users / run_time_s, 1.0) if spawn_rate is None else spawn
        return Schedule("ramp", steps, ramp_rate, users)

    if kind == "sweep":
        if not levels:
            raise ValueError("--shape sweep needs --levels, e.g. --levels 1,4,16,64")
        if any(level < 1 or level != int(level) for level in levels):
            raise ValueError("sweep levels are user counts: whole numbers >= 1")
        per_step = step_s if step_s else run_time_s / len(levels)
        steps_list: list[Step] = []
        t, before = 0.0, 0
        for i, level in enumerate(levels):
            warm = warmup_s + spawn_time(before, int(level))
            _check_window(per_step, warm, f"step {i + 1} (level {int(level)})")
            steps_list.append(Step(i, t, per_step, warm, int(level)))
            t += per_step
            before = int(level)
        return Schedule("sweep", tuple(steps_list), spawn, max(int(x) for x in levels))

    if kind == "search":
        # The first step only; the master appends the others (`with_step`). `rate` set: a rate search
        # from that rate whose pool is `users`; else a concurrency search from `search_start` users,
        # capped at `users`.
        per_step = step_s if step_s else 30.0
        start = search_start if search_start is not None else 1.0
        if rate is not None:  # a rate search starts at `rate`
            if rate <= 0:
                raise ValueError("--start: a rate search starts at an arrival rate > 0")
            warm = warmup_s + spawn_time(0, users)
            _check_window(per_step, warm, f"step 1 (rate {rate:g}/s)")
            return Schedule("search", (Step(0, 0.0, per_step, warm, users, float(rate)),), spawn, users)
        if start < 1 or start != int(start) or start > users:
            raise ValueError(f"--start {start:g}: a concurrency search starts at whole users, 1..--users ({users})")
        warm = warmup_s + spawn_time(0, int(start))
        # Any later step may spawn up to the cap: its warm-up must still leave a measured window.
        _check_window(per_step, warmup_s + spawn_time(0, users), f"a search step (up to {users} users)")
        return Schedule("search", (Step(0, 0.0, per_step, warm, int(start)),), spawn, int(start))

    # rate
    rates = levels if levels else ([rate] if rate else None)
    if not rates:
        raise ValueError("--shape rate needs --rate (arrivals per second) or --levels of rates")
    if any(r <= 0 for r in rates):
        raise ValueError("arrival rates must be > 0")
    per_step = step_s if step_s else run_time_s / len(rates)
    steps_list = []
    t = 0.0
    for i, r in enumerate(rates):
        warm = warmup_s + (spawn_time(0, users) if i == 0 else 0.0)
        _check_window(per_step, warm, f"step {i + 1} (rate {r:g}/s)")
        steps_list.append(Step(i, t, per_step, warm, users, float(r)))
        t += per_step
    return Schedule("rate", tuple(steps_list), spawn, users)


def _check_window(duration: float, warmup: float, what: str) -> None:
    if duration <= 0:
        raise ValueError(f"{what}: duration must be > 0")
    if warmup >= duration:
        raise ValueError(f"{what}: warm-up and spawning take {warmup:g} s of its {duration:g} s; "
                         "lengthen the step (--run-time / --step-time) or shorten --warmup")


def parse_levels(text: str) -> list[float]:
    """`1,4,16` -> [1.0, 4.0, 16.0]; raises ValueError naming the bad item."""
    levels = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"not a number in --levels: {item!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"--levels values must be > 0, got {item}")
        levels.append(value)
    if not levels:
        raise ValueError("--levels is empty")
    return levels
