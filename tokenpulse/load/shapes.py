"""Locust's `LoadTestShape` for tokenpulse runs: fixed, ramp, sweep and rate, chosen by `--tp-shape`.

Why one class that delegates: Locust takes the single shape class it finds in the locustfile, and the
four shapes differ only in their schedule (`schedule.py`), which workers also need to tag records. So the
shape asks the session, which answers from the schedule, and ends the run early when a `--max-cost`
drain has finished. The rate shape's `tick` sets the pool of users; the arrivals themselves come from
`arrivals.py` in every process that runs users.
"""

from __future__ import annotations

from locust import LoadTestShape

from tokenpulse.load.session import session_for


class TokenpulseShape(LoadTestShape):
    """Locust calls `tick` about once a second on the master (or the only process)."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        return session_for(self.runner.environment).shape_tick()
