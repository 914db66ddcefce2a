"""Outcomes and error classes: the bounded vocabulary every result, metric label and report uses.

Why one module: metric labels must be drawn from fixed enums (never from response text), and the
prober, the load tests and the reports must agree on what "failed" means. DESIGN.md §4 is the contract.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    """Why a request failed. The value is used verbatim as a metric label."""

    CLIENT_ERROR = "client_error"  # 400/401/402/403/404/413/422 (and other 4xx but 408/429)
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx, 524, 529 and 408 (upstream timeout reported by the gateway)
    MID_STREAM_ERROR = "mid_stream_error"  # HTTP 200, then a chunk with a top-level `error`
    TIMEOUT_CONNECT = "timeout_connect"
    TIMEOUT_TTFT = "timeout_ttft"  # no token before the TTFT deadline
    TIMEOUT_IDLE = "timeout_idle"  # silence between bytes longer than the idle timeout
    TIMEOUT_TOTAL = "timeout_total"
    CONNECT_ERROR = "connect_error"  # refused, reset, DNS, TLS, connection dropped
    PROTOCOL_ERROR = "protocol_error"  # malformed SSE/JSON, wrong content type, oversized body
    EMPTY_RESPONSE = "empty_response"  # stream finished properly but carried no token
    TRUNCATED = "truncated"  # stream closed without [DONE] or a finish reason
    #: A pinned request served by another provider than its pin (the stream's `provider`, or the error's
    #: `metadata.provider_name`, names someone else: tokenpulse/core/served.py). Never a sample of the
    #: pinned provider, and not counted against its availability: the router chose, not the provider.
    WRONG_PROVIDER = "wrong_provider"


class Outcome(StrEnum):
    """The first-class result of one request (blackbox_exporter's `probe_success`, with a reason)."""

    OK = "ok"
    ERROR = "error"
    #: Still in flight when the load test stopped waiting for it (a step lowered its users, or the run
    #: ended, and the drain passed): neither the provider's success nor its failure. It keeps the timings
    #: it reached; its `error_class` is None.
    CANCELLED = "cancelled"


#: Error classes that say something about the caller (quota, key, request) rather than the provider.
#: Availability excludes them, as OpenRouter's own uptime does (DESIGN.md §4).
CALLER_SIDE_CLASSES: frozenset[ErrorClass] = frozenset({ErrorClass.CLIENT_ERROR, ErrorClass.RATE_LIMITED})
#: Error classes that do not lower the (pinned) provider's availability: the caller-side ones, and
#: `wrong_provider` (the router sent the request elsewhere; the pinned provider was never asked).
NOT_PROVIDER_CLASSES: frozenset[ErrorClass] = CALLER_SIDE_CLASSES | {ErrorClass.WRONG_PROVIDER}

ALL_ERROR_CLASSES: tuple[str, ...] = tuple(c.value for c in ErrorClass)


def error_class_for_status(status: int) -> ErrorClass | None:
    """Map an HTTP status to its error class; None for 2xx/3xx (not an HTTP-level failure).

    408 is OpenRouter's "request timed out upstream": a provider-side failure, so server_error.
    """
    if status < 400:
        return None
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status == 408 or status >= 500:
        return ErrorClass.SERVER_ERROR
    return ErrorClass.CLIENT_ERROR


def counts_against_availability(error_class: ErrorClass | str | None) -> bool:
    """True when a failure of this class is the provider's fault (it lowers availability)."""
    if error_class is None:
        return False
    return ErrorClass(error_class) not in NOT_PROVIDER_CLASSES


class ErrorOrigin(StrEnum):
    """Who answered with an error, as far as the response says (a bounded label value): OpenRouter
    itself (its own 429s carry `X-RateLimit-*` headers and no provider), the provider behind it
    (`error.metadata.provider_name`), or unknown (neither sign: a plain OpenAI-compatible server)."""

    OPENROUTER = "openrouter"
    PROVIDER = "provider"
    UNKNOWN = "unknown"


ALL_ERROR_ORIGINS: tuple[str, ...] = tuple(o.value for o in ErrorOrigin)
