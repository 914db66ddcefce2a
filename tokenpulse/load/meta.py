"""meta.json: what a run was (schedule, targets, SLOs, options, seed, drain) and how it ended.

Why a module: the master (or the only process) writes it twice, at the test's start (so a run killed
early is still readable) and at the end (stop reason, Locust's totals); the report reads it. Open-loop
rates are not here: the report computes them from the records (summary.json `rate` per step), which a
killed master cannot lose, so there is one implementation and it always has its data. The document
is built from plain values (no Locust object), and written atomically (a temp file, then rename), so a
reader never sees half of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tokenpulse import __version__
from tokenpulse.load.context import RunContext
from tokenpulse.runfolder.records import META_FILE


def _locust_version() -> str | None:
    """Without importing Locust (which monkey-patches the process that imports it)."""
    try:
        return version("locust")
    except PackageNotFoundError:
        return None


def build_meta(ctx: RunContext, *, role: str, run_start: float) -> dict[str, Any]:
    opts, config = ctx.opts, ctx.config
    return {
        "run_id": opts.run_id,
        "tokenpulse_version": __version__,
        "locust_version": _locust_version(),
        "role": role,
        "config_path": opts.config_path,
        "run_start": run_start,
        "schedule": ctx.schedule.to_dict(),
        "workers": opts.workers,
        "drain_s": ctx.drain_s,
        "arrival_seed": opts.arrival_seed,
        "options": {"shape": opts.shape, "users": opts.users, "spawn_rate": opts.spawn_rate,
                    "run_time_s": opts.run_time_s, "levels": list(opts.levels), "rate": opts.rate,
                    "arrival": opts.arrival, "max_cost_usd": opts.max_cost, "providers": list(opts.providers),
                    "models": list(opts.models), "transport": opts.transport, "ground_truth": opts.ground_truth,
                    "burstiness": opts.burstiness, "max_requests": opts.max_requests,
                    "input_lengths": list(opts.input_lengths), "trace": opts.trace or None,
                    "speed": opts.speed if opts.trace else None},
        "targets": [{"index": t.index, "name": t.name, "endpoint": t.target.endpoint.name,
                     "model": t.target.model.id, "provider": t.target.provider,
                     "price": t.target.model.price.model_dump() if t.target.model.price else None}
                    for t in ctx.targets],
        "slo": ctx.slo,
        "workload": config.load.workload.model_dump(mode="json"),
        "timeouts": config.load.timeouts.model_dump(),
    }


def locust_totals(entries: Mapping[tuple[str, str], Any] | None) -> dict[str, Any]:
    """Locust's own request counts (its `stats.entries`: (name, method) -> entry), to set beside ours."""
    per_type: dict[str, dict[str, int]] = {}
    failures = 0
    for (name, method), entry in (entries or {}).items():
        per_type.setdefault(method, {})[name] = entry.num_requests
        if method == "E2E":
            failures += entry.num_failures
    return {"e2e_requests": sum(per_type.get("E2E", {}).values()), "e2e_failures": failures,
            "requests_by_type": per_type}


def write_meta(out: Path, meta: Mapping[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{META_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / META_FILE)
