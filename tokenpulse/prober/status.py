"""The status document: what `/api/status` returns and what the HTML status page renders.

Why one document for both: the page and the JSON can never disagree, and the page's test can check
the same data a script would read. Every string in it comes from the config, a fixed enum, or a
failure message that was redacted and clipped when it was recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tokenpulse import __version__
from tokenpulse.core.stats import percentile
from tokenpulse.prober.history import DAY_S, HOUR_S
from tokenpulse.prober.runner import TrackedTarget


@dataclass(frozen=True, slots=True)
class ProberHealth:
    """The prober's own figures at the time of the snapshot."""

    started_at: float
    ready: bool
    in_flight: int
    misfires: int
    lags: Sequence[float]


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def target_status(tracked: TrackedTarget, now: float) -> dict[str, Any]:
    probe, history, state = tracked.probe, tracked.history, tracked.state
    return {
        "provider": probe.provider,
        "profile": probe.profile,
        "state": state.state,
        "consecutive_failures": state.consecutive_failures,
        "uptime_1h": history.uptime(now, HOUR_S),
        "uptime_1d": history.uptime(now, DAY_S),
        **history.latency(now),
        "last_probe_at": iso(history.last_at),
        "last_probe_age_s": None if history.last_at is None else max(0.0, now - history.last_at),
        "last_outcome": None if history.last_ok is None else ("ok" if history.last_ok else "error"),
        "last_error_class": history.last_error_class,
        "probes": history.probes,
        "interval_s": probe.interval_s,
        "recent_failures": [
            {"at": iso(f.at), "error_class": f.error_class, "http_status": f.http_status, "message": f.message,
             "counts_against_availability": f.counts_against_availability}
            for f in reversed(history.failures)
        ],
    }


def status_document(tracked: Mapping[str, TrackedTarget], health: ProberHealth, *, now: float,
                    pending_discovery: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """Targets grouped by (endpoint, model) in config order, plus the prober's own health."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for item in tracked.values():
        key = (item.probe.endpoint, item.probe.model)
        group = groups.setdefault(key, {"endpoint": key[0], "model": key[1], "targets": []})
        group["targets"].append(target_status(item, now))
    states = [t["state"] for g in groups.values() for t in g["targets"]]
    return {
        "generated_at": iso(now),
        "version": __version__,
        "ready": health.ready,
        "prober": {
            "started_at": iso(health.started_at),
            "targets": len(tracked),
            "states": {s: states.count(s) for s in ("up", "degraded", "down", "unknown")},
            "in_flight": health.in_flight,
            "misfires": health.misfires,
            "scheduler_lag_p50_s": percentile(sorted(health.lags), 50),
            "scheduler_lag_p99_s": percentile(sorted(health.lags), 99),
        },
        "groups": list(groups.values()),
        "pending_discovery": [dict(p) for p in pending_discovery],
    }
