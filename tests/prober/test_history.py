"""Per-target history: uptime windows (caller-side errors excluded), latency medians, bounded memory,
redacted failure messages."""

from __future__ import annotations

from prober_support import result

from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.prober.history import DAY_S, HOUR_S, RECENT_FAILURES, BucketRing, TargetHistory

T0 = 1_800_000_000.0  # a wall-clock origin


def test_bucket_ring_windows_and_wraparound() -> None:
    ring = BucketRing(60.0, 61)
    for minute in range(200):
        ring.add(T0 + minute * 60, ok=minute % 4 != 0)
    now = T0 + 199 * 60
    ok, bad = ring.totals(now, 3600)
    assert ok + bad == 60  # exactly the last hour of one-per-minute results, old laps ignored
    assert bad == 15


def test_uptime_excludes_caller_side_errors() -> None:
    h = TargetHistory()
    for i in range(6):
        h.record(T0 + i, result())
    h.record(T0 + 10, result(False, ErrorClass.SERVER_ERROR, ttft=None, message="HTTP 502"))
    h.record(T0 + 11, result(False, ErrorClass.RATE_LIMITED, ttft=None, message="HTTP 429"))
    h.record(T0 + 12, result(False, ErrorClass.CLIENT_ERROR, ttft=None, message="HTTP 402"))
    assert h.uptime(T0 + 20, HOUR_S) == 6 / 7
    assert h.uptime(T0 + 20, DAY_S) == 6 / 7
    assert [f.error_class for f in h.failures] == ["server_error", "rate_limited", "client_error"]
    assert [f.counts_against_availability for f in h.failures] == [True, False, False]
    assert h.probes == 9 and h.last_error_class == "client_error"


def test_uptime_forgets_old_results() -> None:
    h = TargetHistory()
    h.record(T0, result(False, ErrorClass.SERVER_ERROR, ttft=None))
    h.record(T0 + 2 * HOUR_S, result())
    assert h.uptime(T0 + 2 * HOUR_S, HOUR_S) == 1.0
    assert h.uptime(T0 + 2 * HOUR_S, DAY_S) == 0.5
    assert h.uptime(T0 + 3 * DAY_S, DAY_S) is None


def test_latency_last_and_median_within_the_hour() -> None:
    h = TargetHistory()
    h.record(T0, result(ttft=9.0, speed=1.0))  # older than an hour by the time we look
    for i, (ttft, speed) in enumerate([(0.3, 40.0), (0.1, 60.0), (0.2, 50.0)]):
        h.record(T0 + HOUR_S + i, result(ttft=ttft, speed=speed))
    figures = h.latency(T0 + HOUR_S + 10)
    assert figures == {"last_ttft_s": 0.2, "median_ttft_s": 0.2, "last_tokens_per_s": 50.0,
                       "median_tokens_per_s": 50.0}


def test_failures_are_bounded_and_redacted() -> None:
    secret = "sk-or-v1-canary-history-0123456789"
    h = TargetHistory(secrets=(secret,))
    for i in range(RECENT_FAILURES + 5):
        h.record(T0 + i, result(False, ErrorClass.SERVER_ERROR, ttft=None, message=f"bad key {secret} {i} " * 20))
    assert len(h.failures) == RECENT_FAILURES
    assert all(secret not in f.message and len(f.message) <= 160 for f in h.failures)


def test_repeated_identical_failures_collapse_with_a_count() -> None:
    h = TargetHistory()
    for i in range(12):
        h.record(T0 + i * 60, result(False, ErrorClass.SERVER_ERROR, ttft=None, message="HTTP 502: upstream down"))
    h.record(T0 + 800, result(False, ErrorClass.TIMEOUT_TTFT, ttft=None, message="no token"))
    h.record(T0 + 900, result(False, ErrorClass.SERVER_ERROR, ttft=None, message="HTTP 502: upstream down"))
    assert [(f.error_class, f.count) for f in h.failures] == [("server_error", 12), ("timeout_ttft", 1),
                                                              ("server_error", 1)]
    assert h.failures[0].first_at == T0 and h.failures[0].at == T0 + 11 * 60


def test_bars_count_caller_side_apart_and_history_round_trips() -> None:
    h = TargetHistory()
    h.record(T0, result())
    h.record(T0 + 1, result(False, ErrorClass.SERVER_ERROR, ttft=None))
    h.record(T0 + 2, result(False, ErrorClass.CLIENT_ERROR, ttft=None, message="HTTP 402"))
    h.transition(T0 + 3, "up", "blind", "no_credits")
    bars = h.bars(T0 + 10)
    assert len(bars) == 96 and bars[-1][1:] == (1, 1, 1) and all(b[1:] == (0, 0, 0) for b in bars[:-1])
    assert h.covered_s(T0 + 600, HOUR_S) == 600
    copy = TargetHistory()
    copy.restore(h.to_dict())
    assert copy.to_dict() == h.to_dict()
    assert copy.uptime(T0 + 10, HOUR_S) == 0.5 and copy.bars(T0 + 10) == bars
    assert copy.transitions[-1].reason == "no_credits" and copy.first_at == T0
