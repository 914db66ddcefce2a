"""OpenRouter provider discovery: `GET {base}/models/{author}/{slug}/endpoints` -> provider tags.

Why checked so strictly: discovered tags become metric label values, so they must stay as bounded
and as well-formed as names written in the config. A tag that does not match the config's provider
pattern is skipped (and logged), and at most `MAX_PROVIDERS` are taken per model. The request itself is
bounded in time and size (`fetch`): a listing that never answers fails after `TIMEOUT_S`, like any
other failed discovery.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from tokenpulse.config import PROVIDER_PATTERN, Endpoint
from tokenpulse.core.redact import clip, redact
from tokenpulse.core.served import listed_name
from tokenpulse.metrics import OPENROUTER_QUANTILES, OPENROUTER_UPTIME_WINDOWS, QUANTIZATIONS
from tokenpulse.prober.fetch import FetchError, fetch

log = logging.getLogger(__name__)

#: A bound on label cardinality: no model has this many providers on OpenRouter today.
MAX_PROVIDERS = 64
#: The whole request, from connecting to the body's last byte.
TIMEOUT_S = 15.0
#: OpenRouter's listing of a model is a few kilobytes per provider; 64 providers fit many times over.
MAX_BODY_BYTES = 2 * 1024 * 1024
_TAG = re.compile(PROVIDER_PATTERN)


class DiscoveryError(Exception):
    """Discovery failed; the message names the endpoint and model, never a key."""


@dataclass(frozen=True, slots=True)
class ListedProvider:
    """One provider of a model's endpoints listing, with OpenRouter's own figures for it.

    Units are converted on reading: uptime percentages (0..100) become ratios, latency milliseconds
    become seconds (OpenRouter documents `latency_last_30m` as TTFT percentiles in ms, and
    `throughput_last_30m` as output tokens/s percentiles; both are null without a key). Absent or
    malformed figures are left out, never guessed. `quantization` is clamped to `QUANTIZATIONS`."""

    tag: str
    quantization: str | None = None
    price_prompt: float | None = None  # USD per token
    price_completion: float | None = None
    uptime: dict[str, float] = field(default_factory=dict)  # window -> 0..1
    latency_s: dict[str, float] = field(default_factory=dict)  # quantile -> seconds
    throughput: dict[str, float] = field(default_factory=dict)  # quantile -> tokens/s
    #: The listing's display name of the provider (`provider_name`, "DeepInfra"): what a stream's
    #: `provider` field says when this provider served it (core/served.py). Never a label.
    provider_name: str | None = None


def _ratio(value: object) -> float | None:
    number = _finite(value)
    return None if number is None else min(1.0, max(0.0, number / 100.0))


def _finite(value: object) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _percentiles(value: object, divisor: float) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key, quantile in OPENROUTER_QUANTILES.items():
        number = _finite(value.get(key))
        if number is not None and number >= 0:
            out[quantile] = number / divisor
    return out


def listed_provider(tag: str, entry: Mapping[str, object]) -> ListedProvider:
    quantization = entry.get("quantization")
    if isinstance(quantization, str):
        quantization = quantization if quantization in QUANTIZATIONS else "other"
    else:
        quantization = None
    pricing = entry.get("pricing")
    pricing = pricing if isinstance(pricing, Mapping) else {}
    uptime = {w: r for w in OPENROUTER_UPTIME_WINDOWS if (r := _ratio(entry.get(f"uptime_last_{w}"))) is not None}
    return ListedProvider(tag, quantization, _finite(pricing.get("prompt")), _finite(pricing.get("completion")),
                          uptime, _percentiles(entry.get("latency_last_30m"), 1000.0),
                          _percentiles(entry.get("throughput_last_30m"), 1.0), listed_name(entry))


def listing_names(endpoint: str, model: str, listing: Sequence[ListedProvider]) -> dict[tuple[str, str, str],
                                                                                       tuple[str, ...]]:
    """(endpoint, model, tag) -> the listing's display name of each provider that has one: what
    `targets.plan` gives the probes' pins (core/served.py)."""
    return {(endpoint, model, p.tag): (p.provider_name,) for p in listing if p.provider_name}


def endpoints_url(base_url: str, model_id: str) -> str:
    return f"{base_url.rstrip('/')}/models/{quote(model_id, safe='/:')}/endpoints"


def auth_headers(endpoint: Endpoint, api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "tokenpulse", **endpoint.headers}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


async def discover_listing(client: httpx.AsyncClient, endpoint: Endpoint, model_id: str, *,
                           api_key: str | None, timeout_s: float | None = None) -> list[ListedProvider]:
    """The providers serving `model_id` on `endpoint` with their listing figures and names, in the
    listing's order, deduplicated by tag. Raises DiscoveryError within `timeout_s` (default
    `TIMEOUT_S`) whatever the server does."""
    secrets = (api_key,) if api_key else ()
    where = f"discovery of {model_id} on {endpoint.name}"
    try:
        response = await fetch(client, endpoints_url(endpoint.base_url, model_id),
                               auth_headers(endpoint, api_key), total_s=timeout_s or TIMEOUT_S,
                               max_bytes=MAX_BODY_BYTES)
    except FetchError as exc:
        raise DiscoveryError(f"{where}: {_safe(str(exc), secrets)}") from None
    if response.status != 200:
        raise DiscoveryError(f"{where}: HTTP {response.status}: {_safe(response.text, secrets)}")
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        raise DiscoveryError(f"{where}: the response is not JSON") from None
    return parse_listing(document, where=where)


def parse_endpoints(document: object, *, where: str) -> list[str]:
    """Provider tags from an endpoints listing (`data.endpoints[].tag`)."""
    return [p.tag for p in parse_listing(document, where=where)]


def parse_listing(document: object, *, where: str) -> list[ListedProvider]:
    """The providers of an endpoints listing (`data.endpoints[]`), checked as `parse_endpoints` says."""
    data = document.get("data") if isinstance(document, Mapping) else None
    entries = data.get("endpoints") if isinstance(data, Mapping) else None
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise DiscoveryError(f"{where}: no data.endpoints list in the response")
    tags: list[str] = []
    listed: list[ListedProvider] = []
    for entry in entries:
        tag = entry.get("tag") if isinstance(entry, Mapping) else None
        if not isinstance(tag, str) or not _TAG.match(tag) or redact(tag) != tag:  # a key is no label value
            log.warning("%s: skipping an endpoint with an unusable tag %r", where, clip(str(tag), 80))
            continue
        if tag in tags:
            continue
        if len(tags) == MAX_PROVIDERS:
            log.warning("%s: more than %d providers listed; probing the first %d", where, MAX_PROVIDERS,
                        MAX_PROVIDERS)
            break
        tags.append(tag)
        assert isinstance(entry, Mapping)
        listed.append(listed_provider(tag, entry))
    if not tags:
        raise DiscoveryError(f"{where}: the listing holds no provider")
    return listed


def _safe(text: str, secrets: Sequence[str]) -> str:
    return clip(redact(text, secrets), 200)
