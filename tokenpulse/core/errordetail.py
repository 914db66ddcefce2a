"""OpenRouter's error details, read from an error object and the response headers (sans-IO).

Why: a 429 of OpenRouter itself (its own request limits, with `X-RateLimit-*` headers and no provider
in the metadata) and a 429 of the provider behind it (`error.metadata.provider_name`) need different
reactions: the first is the caller's key, the second the provider's capacity. OpenRouter documents the
details an error can carry (DESIGN.md §3): `error.metadata` (`error_type`, `provider_code`,
`provider_name`, ...), `error.availability` (`code` such as `capacity_exhausted` or `no_endpoints`,
`retryable`) and, on its own 429s, the `X-RateLimit-*` headers.

Whatever a server sends, `parse_error_detail` returns a bounded, typed `ErrorDetail` and never raises:
only strings, numbers and booleans of the documented fields are read, strings are cut, header values
are cut and at most `MAX_RATE_LIMIT_HEADERS` are kept, and every string is redacted. Only `origin` ever
becomes a metric label (a fixed enum); the rest goes to the record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenpulse.core.outcomes import ErrorOrigin
from tokenpulse.core.redact import redact

#: Longest text kept of one detail (error_type, provider_code, availability code, a header value).
MAX_DETAIL_CHARS = 128
#: Longest provider name kept (the same bound as the recorder's identifiers).
MAX_NAME_CHARS = 256
#: `X-RateLimit-*` headers kept of one response (OpenRouter sends three or four).
MAX_RATE_LIMIT_HEADERS = 8
RATE_LIMIT_PREFIX = "x-ratelimit-"


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """The details of one error response: what OpenRouter said about it, and who answered (`origin`)."""

    origin: ErrorOrigin
    error_type: str | None = None
    provider_code: str | None = None
    provider_name: str | None = None
    availability_code: str | None = None
    retryable: bool | None = None
    #: `X-RateLimit-*` headers of the response (lowercase names), e.g. {"x-ratelimit-remaining": "0"}.
    rate_limit: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record's `error_detail` (JSON-ready; absent fields left out, `origin` always there)."""
        d: dict[str, Any] = {"origin": self.origin.value}
        for name in ("error_type", "provider_code", "provider_name", "availability_code", "retryable"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.rate_limit:
            d["rate_limit"] = dict(self.rate_limit)
        return d


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The `X-RateLimit-*` headers of a head whose names are already lowercase, bounded."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        if name.startswith(RATE_LIMIT_PREFIX) and isinstance(value, str):
            kept[name[:64]] = value.strip()[:MAX_DETAIL_CHARS]
            if len(kept) == MAX_RATE_LIMIT_HEADERS:
                break
    return kept


def parse_error_detail(error: Any, rate_limit: Mapping[str, str] | None = None, *,
                       secrets: Sequence[str] = ()) -> ErrorDetail:
    """The details of an `error` object (the body's or a mid-stream chunk's `error`; anything else is
    read as no details) and the `X-RateLimit-*` headers of the response. `origin`: the provider when the
    metadata names one, else OpenRouter when the response carries rate-limit headers, else unknown."""
    metadata = error.get("metadata") if isinstance(error, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    availability = error.get("availability") if isinstance(error, dict) else None
    availability = availability if isinstance(availability, dict) else {}
    limits = {k: redact(v, secrets) for k, v in (rate_limit or {}).items()}
    provider_name = _text(metadata.get("provider_name"), MAX_NAME_CHARS, secrets)
    if provider_name:
        origin = ErrorOrigin.PROVIDER
    elif limits:
        origin = ErrorOrigin.OPENROUTER
    else:
        origin = ErrorOrigin.UNKNOWN
    retryable = availability.get("retryable")
    return ErrorDetail(
        origin=origin,
        error_type=_text(metadata.get("error_type"), MAX_DETAIL_CHARS, secrets),
        provider_code=_text(metadata.get("provider_code"), MAX_DETAIL_CHARS, secrets),
        provider_name=provider_name,
        availability_code=_text(availability.get("code"), MAX_DETAIL_CHARS, secrets),
        retryable=retryable if isinstance(retryable, bool) else None,
        rate_limit=limits,
    )


def _text(value: Any, limit: int, secrets: Sequence[str]) -> str | None:
    """A string or a number as bounded, redacted text; None for anything else (containers, null)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 64 else None
    elif isinstance(value, float):
        text = repr(value) if math.isfinite(value) else None
    elif isinstance(value, str):
        text = "".join(c for c in value[:limit] if c.isprintable()).strip()
    else:
        text = None
    return redact(text, secrets) if text else None
