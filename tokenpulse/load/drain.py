"""Drain coordination: once the run must stop sending (`--max-cost`), who has finished its requests.

Why a state of its own: the rules (a deadline of `load.drain_s`, a local process done when nothing is
in flight, a master done when every worker said `tp_drained`, the first reason wins) are decisions
that need no Locust and no clock of their own (time is an argument), so they are tested as such. The
session does the messaging and the waiting greenlet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A master waits this much longer than its workers' drain for their answers.
MASTER_MARGIN_S = 5.0


@dataclass(slots=True)
class DrainState:
    draining: bool = False
    reason: str | None = None
    deadline: float | None = None
    drained: bool = False
    drained_workers: set[str] = field(default_factory=set)

    def begin(self, reason: str, now: float, drain_s: float) -> bool:
        """Start draining (False when already draining: the first reason and deadline stand)."""
        if self.draining:
            return False
        self.draining = True
        self.reason = self.reason or reason
        self.deadline = now + drain_s
        return True

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline

    def worker_drained(self, worker: str) -> None:
        self.drained_workers.add(worker)

    def done(self, *, local: bool, workers: int, now: float) -> bool:
        """Whether the shape may end the run: this process (local) or every worker (master) drained,
        or the deadline passed."""
        finished = self.drained if local else len(self.drained_workers) >= max(1, workers)
        return finished or self.expired(now)


#: How long a master waits for its workers' last stats before it ends the run anyway.
FLUSH_WAIT_S = 15.0


@dataclass(slots=True)
class FlushState:
    """The end of a distributed run: the master asks every worker for its last Locust stats and ends
    the run once each has answered (its answer follows its stats on the same socket), or once
    `FLUSH_WAIT_S` has passed. Why: Locust's own last report comes after "quit", which a master waits
    only half a second for, so its totals missed a busy worker's last requests."""

    asked_at: float | None = None
    asked: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)

    def ask(self, now: float, workers: set[str]) -> bool:
        """Record the question (True the first time only: send it then)."""
        if self.asked_at is not None:
            return False
        self.asked_at, self.asked = now, set(workers)
        return True

    def answer(self, worker: str) -> None:
        self.answered.add(worker)

    @property
    def missing(self) -> set[str]:
        return self.asked - self.answered

    def done(self, now: float) -> bool:
        """Every worker asked has answered, or the wait is over (see `timed_out`)."""
        return not self.missing or self.timed_out(now)

    def timed_out(self, now: float) -> bool:
        return self.asked_at is not None and now - self.asked_at > FLUSH_WAIT_S
