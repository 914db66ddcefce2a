"""How long a closed-loop user pauses after a failed request.

Why: a provider that fails fast (an outage answering 502 in a millisecond, a burst of 429s) turns a
closed-loop user into a tight loop: thousands of errors a second that swamp the run's records, burn the
generator's CPU and say nothing new. Real clients back off; so do our users, by the configured pause or
the server's Retry-After when it asks for longer. Kept free of Locust imports so it can be unit-tested
without gevent's monkey-patching.
"""

from __future__ import annotations

from tokenpulse.core.recorder import StreamResult

#: Longest pause honoured from a server's Retry-After.
MAX_RETRY_AFTER_S = 60.0


def error_backoff(result: StreamResult, configured_s: float) -> float:
    """The pause after a failed request; 0 when back-off is disabled (`load.error_backoff_s: 0`)."""
    if configured_s <= 0:
        return 0.0
    return max(configured_s, min(result.retry_after_s or 0.0, MAX_RETRY_AFTER_S))
