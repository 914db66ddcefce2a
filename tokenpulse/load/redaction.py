"""Keeping API keys out of everything Locust stores: its exception table (the web UI's exceptions tab,
`locust_exceptions.csv`, `locust.html`), its failure table (`locust_failures.csv`), and its log.

Why at Locust's two sinks rather than where our code raises: any exception that escapes a user's task
(a recorder bug tripped by a field a server filled with the key, a library error quoting a header)
lands in `Runner.log_exception` with `str(exception)` as its message, and every failed request's
exception in `RequestStats.log_error`; wrapping those two catches them all, including the ones a
master receives from its workers. The log goes through the process-wide record factory
(tokenpulse.core.redact.install), and `tokenpulse load` redacts the child's whole output again on its way
into `locust.log` (tokenpulse.load.runner).
"""

from __future__ import annotations

import functools
from typing import Any

from tokenpulse.core.redact import install as install_process_redaction
from tokenpulse.core.redact import redact


def sanitize_environment(environment: Any) -> None:
    """Wrap the runner's and the stats' error sinks of this Locust environment (idempotent)."""
    runner = getattr(environment, "runner", None)
    if runner is not None and not getattr(runner, "_tokenpulse_redacted", False):
        runner._tokenpulse_redacted = True
        log_exception = runner.log_exception

        @functools.wraps(log_exception)
        def redacted_log_exception(node_id: str, msg: str, formatted_tb: str) -> None:
            log_exception(node_id, redact(str(msg)), redact(str(formatted_tb)))

        runner.log_exception = redacted_log_exception
    stats = getattr(environment, "stats", None)
    if stats is not None and not getattr(stats, "_tokenpulse_redacted", False):
        stats._tokenpulse_redacted = True
        log_error = stats.log_error

        @functools.wraps(log_error)
        def redacted_log_error(method: str, name: str, error: Any) -> None:
            if error is not None:
                from locust.stats import StatsError

                text = StatsError.parse_error(error)
                cleaned = redact(text)
                if cleaned != text:
                    error = cleaned  # Locust keys and shows string errors as they are
            log_error(method, name, error)

        stats.log_error = redacted_log_error


def install(events: Any) -> None:
    """Called by the locustfile at import: the process-wide log and traceback redaction now, the
    runner's and stats' sinks as soon as Locust has built them (the `init` event)."""
    install_process_redaction()
    if getattr(events, "_tokenpulse_redaction_installed", False):
        return
    events._tokenpulse_redaction_installed = True

    @events.init.add_listener
    def _on_init(environment: Any, **_: Any) -> None:
        sanitize_environment(environment)
