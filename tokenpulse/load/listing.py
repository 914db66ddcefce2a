"""The endpoints listing a load run read at its start, saved in the run folder for the provider matrix.

Why at the start: OpenRouter's `latency_last_30m`, `throughput_last_30m` and `uptime_last_30m` are what
it published when the run began; the matrix report puts the run's own figures beside them, and a
listing read later (at report time, days after) would describe another half hour. One file per
(endpoint, model) of the `kind: openrouter` targets: `listing-<endpoint>-<model>.json` holding
`{"endpoint", "model", "fetched_at", "http_status", "endpoints": [...]}` with only the fields the
report reads (bounded: a listing is small, and nothing else of it is kept), every string redacted (a
server may echo the key anywhere).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenpulse.core.redact import clip
from tokenpulse.core.served import listed_name
from tokenpulse.load.context import LoadTarget
from tokenpulse.load.fetch import bounded_get
from tokenpulse.runfolder.generations import listing_file

log = logging.getLogger("tokenpulse.load")

MAX_LISTING_BYTES = 1024 * 1024
LISTING_TIMEOUT_S = 10.0
#: Fields of an endpoint entry kept in the snapshot.
KEPT = ("tag", "provider_name", "quantization", "uptime_last_5m", "uptime_last_30m", "uptime_last_1d",
        "latency_last_30m", "throughput_last_30m", "pricing", "status")


def _entries(body: bytes) -> list[dict[str, Any]] | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    endpoints = data.get("endpoints") if isinstance(data, dict) else None
    if not isinstance(endpoints, list):
        return None
    return [{k: _redacted(e[k]) for k in KEPT if k in e} for e in endpoints[:256] if isinstance(e, dict)]


def _redacted(value: Any, depth: int = 0) -> Any:
    """`value` with every string redacted (a server may echo a key in any field), nesting bounded."""
    if isinstance(value, str):
        return clip(value, 200)
    if depth > 4:
        return None
    if isinstance(value, dict):
        return {clip(str(k), 64): _redacted(v, depth + 1) for k, v in list(value.items())[:32]}
    if isinstance(value, list):
        return [_redacted(v, depth + 1) for v in value[:32]]
    return value


def save_listings(out: Path, targets: Iterable[LoadTarget]) -> list[list[str]]:
    """Read and save the listing of every OpenRouter model of the run (once per endpoint and model).
    A listing that cannot be read is saved with its status and no endpoints, and logged: the matrix
    then says it has no published figures, rather than failing the run.

    Returns the providers' display names as rows `[endpoint, model, tag, provider_name]`, for the
    pins of every process's requests (LoadOptions.provider_names)."""
    names: list[list[str]] = []
    seen: set[tuple[str, str]] = set()
    for t in targets:
        endpoint, model = t.target.endpoint, t.target.model.id
        if endpoint.kind != "openrouter" or (endpoint.name, model) in seen:
            continue
        seen.add((endpoint.name, model))
        headers = {"Authorization": f"Bearer {t.api_key}"} if t.api_key else {}
        status, body = bounded_get(f"{endpoint.base_url}/models/{model}/endpoints", headers,
                                   total_s=LISTING_TIMEOUT_S, max_bytes=MAX_LISTING_BYTES)
        entries = _entries(body) if status == 200 else None
        if entries is None:
            log.warning("tokenpulse: endpoints listing of %s on %s not read (HTTP %s): the provider matrix "
                        "will have no published figures", model, endpoint.name, status)
        path = listing_file(out, endpoint.name, model)
        path.write_text(json.dumps({"endpoint": endpoint.name, "model": model, "fetched_at": time.time(),
                                    "http_status": status, "endpoints": entries or []}) + "\n",
                        encoding="utf-8")
        for entry in entries or []:
            tag, provider_name = entry.get("tag"), listed_name(entry)
            if isinstance(tag, str) and tag and provider_name:
                names.append([endpoint.name, model, tag, provider_name])
    return names
