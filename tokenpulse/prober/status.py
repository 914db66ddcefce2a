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
from tokenpulse.metrics import TARGET_STATES
from tokenpulse.prober.discovery import ListedProvider
from tokenpulse.prober.history import DAY_S, HOUR_S, QUARTER_S, StateChange
from tokenpulse.prober.runner import TrackedTarget
from tokenpulse.prober.state import BLIND, DEGRADED, DOWN, UNKNOWN

#: States that make an incident (degraded is left out: one unconfirmed failure or a slow median is
#: shown in the table, not listed as an incident).
INCIDENT_STATES = (DOWN, BLIND)
MAX_INCIDENTS = 20


@dataclass(frozen=True, slots=True)
class ProberHealth:
    """The prober's own figures at the time of the snapshot."""

    started_at: float
    ready: bool
    in_flight: int
    misfires: int
    lags: Sequence[float]
    prober_errors: int = 0


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _price(tracked: TrackedTarget, listed: ListedProvider | None) -> dict[str, Any] | None:
    """USD per million tokens, from the listing when discovered, else the config's `price`."""
    if listed is not None and listed.price_prompt is not None and listed.price_completion is not None:
        return {"prompt_per_mtok": listed.price_prompt * 1e6, "completion_per_mtok": listed.price_completion * 1e6,
                "source": "listing"}
    price = tracked.probe.target.model.price
    if price is not None:
        return {"prompt_per_mtok": price.prompt_per_mtok, "completion_per_mtok": price.completion_per_mtok,
                "source": "config"}
    return None


def _bars(tracked: TrackedTarget, now: float) -> dict[str, Any]:
    """The last day's 15-minute buckets as parallel lists (compact: 96 buckets x 1,000 targets)."""
    bars = tracked.history.bars(now)
    return {"first_start": iso(bars[0][0]) if bars else None, "width_s": QUARTER_S,
            "ok": [b[1] for b in bars], "failed": [b[2] for b in bars], "caller_side": [b[3] for b in bars]}


def target_status(tracked: TrackedTarget, now: float, listed: ListedProvider | None = None) -> dict[str, Any]:
    probe, history, state = tracked.probe, tracked.history, tracked.state
    return {
        "provider": probe.provider,
        "profile": probe.profile,
        "state": state.state,
        "blind_reason": state.blind_reason,
        "state_since": iso(history.transitions[-1].at) if history.transitions else None,
        "consecutive_failures": state.consecutive_failures,
        "uptime_1h": history.uptime(now, HOUR_S),
        "uptime_1d": history.uptime(now, DAY_S),
        "uptime_1h_covers_s": history.covered_s(now, HOUR_S),
        "uptime_1d_covers_s": history.covered_s(now, DAY_S),
        "quantization": listed.quantization if listed else None,
        "price": _price(tracked, listed),
        "openrouter_uptime": dict(listed.uptime) if listed else {},
        "history_bars": _bars(tracked, now),
        **history.latency(now),
        "last_probe_at": iso(history.last_at),
        "last_probe_age_s": None if history.last_at is None else max(0.0, now - history.last_at),
        "last_outcome": None if history.last_ok is None else ("ok" if history.last_ok else "error"),
        "last_error_class": history.last_error_class,
        "probes": history.probes,
        "interval_s": probe.interval_s,
        "recent_failures": [
            {"at": iso(f.at), "first_at": iso(f.first_at if f.first_at is not None else f.at), "count": f.count,
             "error_class": f.error_class, "http_status": f.http_status, "message": f.message,
             "counts_against_availability": f.counts_against_availability}
            for f in reversed(history.failures)
        ],
    }


def incidents(tracked: Mapping[str, TrackedTarget], now: float, window_s: float = DAY_S) -> list[dict[str, Any]]:
    """Periods in `down` or `blind` from the targets' state changes over the last `window_s`: ongoing
    ones first, then the most recent; at most MAX_INCIDENTS."""
    out: list[dict[str, Any]] = []
    for item in tracked.values():
        opened: StateChange | None = None
        for change in item.history.transitions:
            if opened is not None and (change.state != opened.state or change.reason != opened.reason):
                out.append(_incident(item, opened, change.at, now))
                opened = None
            if opened is None and change.state in INCIDENT_STATES:
                opened = change
        if opened is not None:
            out.append(_incident(item, opened, None, now))
    recent = [i for i in out if i["ongoing"] or now - i["_end"] <= window_s]
    recent.sort(key=lambda i: (not i["ongoing"], -i["_start"]))
    for incident in recent:
        del incident["_start"], incident["_end"]
    return recent[:MAX_INCIDENTS]


def _incident(item: TrackedTarget, opened: StateChange, ended: float | None, now: float) -> dict[str, Any]:
    end = now if ended is None else ended
    return {"endpoint": item.probe.endpoint, "model": item.probe.model, "provider": item.probe.provider,
            "profile": item.probe.profile, "state": opened.state, "reason": opened.reason,
            "since": iso(opened.at), "until": iso(ended), "ongoing": ended is None,
            "duration_s": max(0.0, end - opened.at), "_start": opened.at, "_end": end}


def banner(states: Mapping[str, int], total: int) -> dict[str, str]:
    """One line over the page: the worst thing going on (blind first: then nothing else is known)."""
    if total == 0:
        return {"level": UNKNOWN, "text": "No targets yet"}
    parts = [f"{states[s]} {s}" for s in (BLIND, DOWN, DEGRADED) if states.get(s)]
    if states.get(BLIND):
        return {"level": BLIND, "text": "The prober cannot measure some targets: " + ", ".join(parts)}
    if states.get(DOWN):
        return {"level": DOWN, "text": "Outage: " + ", ".join(parts)}
    if states.get(DEGRADED):
        return {"level": DEGRADED, "text": "Partly degraded: " + ", ".join(parts)}
    if states.get(UNKNOWN) == total:
        return {"level": UNKNOWN, "text": "Waiting for the first probes"}
    return {"level": "up", "text": "All probed targets are up"}


def status_document(tracked: Mapping[str, TrackedTarget], health: ProberHealth, *, now: float,
                    pending_discovery: Sequence[Mapping[str, str]] = (),
                    listings: Mapping[tuple[str, str, str], ListedProvider] | None = None,
                    failed_discovery: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """Targets grouped by (endpoint, model) in config order, plus the prober's own health."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    listings = listings or {}
    for item in tracked.values():
        key = (item.probe.endpoint, item.probe.model)
        group = groups.setdefault(key, {"endpoint": key[0], "model": key[1], "targets": []})
        listed = listings.get((*key, item.probe.provider))
        group["targets"].append(target_status(item, now, listed))
    states = [t["state"] for g in groups.values() for t in g["targets"]]
    counts = {s: states.count(s) for s in TARGET_STATES}
    return {
        "generated_at": iso(now),
        "version": __version__,
        "ready": health.ready,
        "banner": banner(counts, len(states)),
        "prober": {
            "started_at": iso(health.started_at),
            "targets": len(tracked),
            "states": counts,
            "in_flight": health.in_flight,
            "misfires": health.misfires,
            "prober_errors": health.prober_errors,
            "scheduler_lag_p50_s": percentile(sorted(health.lags), 50),
            "scheduler_lag_p99_s": percentile(sorted(health.lags), 99),
        },
        "incidents": incidents(tracked, now),
        "groups": list(groups.values()),
        "pending_discovery": [dict(p) for p in pending_discovery],
        "failed_discovery": [dict(p) for p in failed_discovery],
    }
