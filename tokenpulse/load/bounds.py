"""`--max-requests N`: a run bounded by its request count as well as by its time.

Why shares rather than one shared counter: the processes of a distributed run share nothing per
request (records.py), so each process that runs users sends its own share of N, fixed up front from
the worker count and its index: floor(N / W), plus one for the first N mod W workers. The shares sum
to N, each process stops sending once its share is sent (and lets those requests finish: every one is
recorded), and the master ends the run when every worker has drained. Exactly N requests are then
sent and recorded, unless the run's time or `--max-cost` ends it first (fewer, never more).
"""

from __future__ import annotations

from dataclasses import dataclass


def request_share(total: int, workers: int, index: int) -> int:
    """Process `index`'s share (0-based) of `total` requests over `workers` processes."""
    workers = max(1, workers)
    return total // workers + (1 if index % workers < total % workers else 0)


@dataclass(slots=True)
class RequestBudget:
    """This process's remaining requests (None: unbounded). Claimed right before a request is sent."""

    limit: int | None = None
    claimed: int = 0

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.claimed >= self.limit

    def claim(self) -> bool:
        """Take one request of the budget; False when none is left (nothing taken)."""
        if self.exhausted:
            return False
        self.claimed += 1
        return True
