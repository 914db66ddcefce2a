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
