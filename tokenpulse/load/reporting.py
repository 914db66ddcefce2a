"""What a worker attaches to Locust's periodic worker report, and what the master takes from it.

Why here and not in the session: the payload is a small protocol between versions of tokenpulse on
different machines (one key in Locust's report dict, plain JSON-able values), so it has one writer
and one reader, both testable without Locust. Per request: the typed wire record (observation.py);
per second: health samples; cumulative: spend and unsent arrivals. (Open-loop rates per step are not
sent: the report computes them from the records and health lines, which a killed master does not lose.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokenpulse.load.observation import Observation

#: Report key of our data inside Locust's worker report.
REPORT_KEY = "tokenpulse"


class WorkerOutbox:
    """Worker side: what has accumulated since the last report."""

    def __init__(self) -> None:
        self._obs: list[dict[str, Any]] = []
        self._health: list[dict[str, Any]] = []

    def request(self, obs: Observation) -> None:
        self._obs.append(obs.to_dict())

    def health(self, worker: str, cpu: float | None, lags: list[float]) -> None:
        self._health.append({"worker": worker, "cpu": cpu, "lags": lags})

    def flush_into(self, data: dict[str, Any], *, spent_usd: float, unsent: int,
                   search: dict[str, Any] | None = None) -> None:
        """`search` (search shape): {"t_s": now in run seconds, "sent": measured sends per step so far}."""
        data[REPORT_KEY] = {"obs": self._obs, "health": self._health, "spent": spent_usd, "dropped": unsent,
                            "search": search}
        self._obs = []
        self._health = []


class MasterInbox:
    """Master side: unpacks each worker's report into the callbacks."""

    def __init__(self, on_request: Callable[[Observation], None],
                 on_health: Callable[[str, float | None, list[float]], None],
                 on_search: Callable[[str, float, dict[Any, Any]], None] | None = None) -> None:
        self._on_request = on_request
        self._on_health = on_health
        self._on_search = on_search
        self.skipped = 0

    def receive(self, client_id: str, data: dict[str, Any]) -> None:
        ours = data.get(REPORT_KEY)
        if not isinstance(ours, dict):
            return
        search = ours.get("search")
        if isinstance(search, dict) and isinstance(search.get("sent"), dict) and self._on_search is not None:
            self._on_search(client_id, float(search.get("t_s") or 0.0), search["sent"])
        for item in ours.get("obs") or ():
            obs = Observation.from_dict(item)
            if obs is None:  # a worker of another version: skipped rather than mislabelled
                self.skipped += 1
            else:
                self._on_request(obs)
        for sample in ours.get("health") or ():
            cpu = sample.get("cpu")
            self._on_health(str(sample.get("worker")), None if cpu is None else float(cpu), sample.get("lags") or [])
