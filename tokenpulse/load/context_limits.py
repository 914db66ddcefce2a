"""The models' context lengths, so that no long prompt is sent larger than the model takes.

Why ask the API: OpenRouter's (and the mock's) `GET /models` gives each model's `context_length`; a
vLLM server gives `max_model_len`. `tokenpulse load` asks once, before Locust starts, for the long-prompt
workloads only (prefill, shared_prefix, trace replay), and sends the answer to every process with the
other options. A model the listing does not describe falls back to the config's `context_length`; with
neither, prompts are not capped (and the run says so).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from tokenpulse.config import Target
from tokenpulse.core.keys import read_api_key
from tokenpulse.core.redact import redact

#: The listing is a one-off request before the run: short limits, so an unreachable API costs little.
_TIMEOUT_S = 10.0
_MAX_BYTES = 64 * 1024 * 1024


def context_lengths(targets: Iterable[Target]) -> tuple[dict[str, int], list[str]]:
    """Per model id, its context in tokens; and notes for the user (listing unreadable, model unknown)."""
    found: dict[str, int] = {}
    notes: list[str] = []
    by_endpoint: dict[str, list[Target]] = {}
    for t in targets:
        by_endpoint.setdefault(t.endpoint.name, []).append(t)
    for group in by_endpoint.values():
        endpoint = group[0].endpoint
        listing: dict[str, int] = {}
        try:
            listing = _listing(endpoint.base_url, read_api_key(endpoint.api_key_env), endpoint.headers)
        except (httpx.HTTPError, ValueError) as exc:
            notes.append(f"{endpoint.name}: the models listing is not readable ({redact(str(exc))[:200]}); "
                         "using the config's context_length")
        for t in group:
            model = t.model.id
            limit = listing.get(model) or t.model.context_length
            if limit:
                found[model] = int(limit)
            elif model not in found:
                notes.append(f"{endpoint.name}: {model}: no context length (listing or config "
                             "context_length): prompts are not capped")
    return found, sorted(set(notes))


def _listing(base_url: str, api_key: str | None, headers: dict[str, str]) -> dict[str, int]:
    sent = {"Accept": "application/json", **headers}
    if api_key:
        sent["Authorization"] = f"Bearer {api_key}"
    with httpx.Client(timeout=_TIMEOUT_S) as client:
        resp = client.get(base_url.rstrip("/") + "/models", headers=sent)
        resp.raise_for_status()
        if len(resp.content) > _MAX_BYTES:
            raise ValueError("models listing too large")
        return parse_listing(resp.json())


def parse_listing(document: Any) -> dict[str, int]:
    """`{"data": [{"id", "context_length" | "max_model_len"}]}` -> {id: tokens}; anything else is skipped."""
    out: dict[str, int] = {}
    data = document.get("data") if isinstance(document, dict) else None
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        value = entry.get("context_length") or entry.get("max_model_len")
        if type(value) is int and value > 0:
            out[entry["id"]] = value
    return out
