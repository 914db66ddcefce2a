"""OpenRouter key credit: `GET {base}/key` -> `tokenpulse_openrouter_credits_*` gauges.

Why: a key that runs out of credit turns every probe into a 402 `client_error`; watching the credit
left lets an alert fire before that happens. Polled for `kind: openrouter` endpoints that have a key
(`api_key_env` set in the environment) or point at a loopback address (the embedded mock, which needs
no key). The response's `limit_remaining` is used when present, else `limit - usage`; a key without a
limit has no remaining-credit or limit series at all (absent rather than a fake number) but still
reports its usage. A failed read sets `..._credits_read_success` to 0 and removes the other series, so
no alert or panel reads a stale last value; the limit and the usage together let a rule compute the
days left at the recent spend rate. The request is bounded in time and size (`fetch`), so a `/key`
that never answers costs one failed poll, never a stuck job.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
from prometheus_client import Gauge

from tokenpulse.config import Endpoint
from tokenpulse.core.redact import clip, redact
from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.discovery import auth_headers
from tokenpulse.prober.fetch import FetchError, fetch

log = logging.getLogger(__name__)

#: The whole request, from connecting to the body's last byte.
TIMEOUT_S = 15.0
#: The /key document is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024


def is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wants_credits(endpoint: Endpoint, api_key: str | None) -> bool:
    return endpoint.kind == "openrouter" and (api_key is not None or is_loopback(endpoint.base_url))


class CreditsPoller:
    """Polls one endpoint's key; `poll()` never raises (a failure is logged and shown as read_success 0)."""

    def __init__(self, client: httpx.AsyncClient, metrics: ProberMetrics, endpoint: Endpoint,
                 api_key: str | None) -> None:
        self._client = client
        self._metrics = metrics
        self._endpoint = endpoint
        self._api_key = api_key

    async def poll(self) -> None:
        if not await self._read():
            self._failed()

    def _failed(self) -> None:
        m, name = self._metrics, self._endpoint.name
        m.credits_read_success.labels(endpoint=name).set(0)
        for gauge in (m.credits_remaining, m.credits_limit, m.credits_usage):
            _remove(gauge, name)

    async def _read(self) -> bool:
        name = self._endpoint.name
        secrets = (self._api_key,) if self._api_key else ()
        try:
            response = await fetch(self._client, f"{self._endpoint.base_url}/key",
                                   auth_headers(self._endpoint, self._api_key), total_s=TIMEOUT_S,
                                   max_bytes=MAX_BODY_BYTES)
        except FetchError as exc:
            log.warning("credits of endpoint %s: %s", name, clip(redact(str(exc), secrets), 160))
            return False
        if response.status != 200:
            detail = clip(redact(response.text, secrets), 160)
            log.warning("credits of endpoint %s: HTTP %d: %s", name, response.status, detail)
            return False
        try:
            document = json.loads(response.body)
        except (ValueError, RecursionError):
            log.warning("credits of endpoint %s: the /key response is not JSON", name)
            return False
        data = document.get("data") if isinstance(document, Mapping) else None
        if not isinstance(data, Mapping):
            log.warning("credits of endpoint %s: no data object in the /key response", name)
            return False
        return self.apply(data)

    def apply(self, data: Mapping[str, object]) -> bool:
        """Set the gauges from a /key `data` object; False (nothing set) when it holds no usage."""
        m, name = self._metrics, self._endpoint.name
        usage = _number(data.get("usage"))
        limit = _number(data.get("limit"))
        remaining = _number(data.get("limit_remaining"))
        if usage is None:
            log.warning("credits of endpoint %s: the /key response has no usage figure", name)
            return False
        if remaining is None and limit is not None:
            remaining = limit - usage
        m.credits_usage.labels(endpoint=name).set(usage)
        for gauge, value in ((m.credits_remaining, remaining), (m.credits_limit, limit)):
            if value is not None:
                gauge.labels(endpoint=name).set(value)
            else:
                _remove(gauge, name)
        m.credits_read_success.labels(endpoint=name).set(1)
        return True


def _remove(gauge: Gauge, endpoint: str) -> None:
    try:
        gauge.remove(endpoint)
    except KeyError:
        pass


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
