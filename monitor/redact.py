"""Scrubbing secrets out of text before it can reach a log, a report, a metric or an exception.

Why here and not at each print: an API key can come back inside a server's error message or an
exception's repr; redacting at the one place where text leaves the core keeps the rule enforceable.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[REDACTED]"
#: Shorter strings are not treated as secrets: redacting "a" would shred every message.
_MIN_SECRET_LEN = 6


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return `text` with every occurrence of each secret replaced by a fixed marker."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_LEN and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def clip(text: str, limit: int = 300) -> str:
    """Bound a message's length (error bodies can be whole HTML pages)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
