"""Closed-loop users pause after a failure, so a provider that fails fast is not hammered in a tight loop."""

from __future__ import annotations

from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import StreamResult
from tokenpulse.load.backoff import MAX_RETRY_AFTER_S, error_backoff


def failed(retry_after_s: float | None = None) -> StreamResult:
    return StreamResult(
        outcome=Outcome.ERROR, error_class=ErrorClass.SERVER_ERROR, error_message="HTTP 502", http_status=502,
        t0_ns=0, ttfb_s=0.001, ttft_s=None, ttfc_s=None, e2e_s=0.002, tpot_s=None, output_tokens_per_s=None,
        prompt_tokens=None, output_tokens=None, reasoning_tokens=None, cached_tokens=None, cost_usd=None,
        tokens_estimated=False, chunk_count=0, token_times_s=[], provider=None, generation_id=None,
        finish_reason=None, retry_after_s=retry_after_s, bytes_received=10, keepalive_count=0)


def test_configured_backoff_applies() -> None:
    assert error_backoff(failed(), 1.0) == 1.0


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    assert error_backoff(failed(retry_after_s=3), 1.0) == 3
    assert error_backoff(failed(retry_after_s=0.2), 1.0) == 1.0
    assert error_backoff(failed(retry_after_s=3600), 1.0) == MAX_RETRY_AFTER_S


def test_zero_disables() -> None:
    assert error_backoff(failed(retry_after_s=5), 0.0) == 0.0
