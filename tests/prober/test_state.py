"""The confirmed state machine: confirmation thresholds, caller-side classes, the TTFT SLO."""

from __future__ import annotations

import pytest

from tokenpulse.config import ConfirmThresholds
from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.prober.state import BLIND, DEGRADED, DOWN, TTFT_WINDOW, UNKNOWN, UP, TargetState

SLO = 2.0


def machine(down: int = 3, up: int = 2) -> TargetState:
    return TargetState(ConfirmThresholds(failures_before_down=down, successes_before_up=up), SLO)


def ok(state: TargetState, ttft: float = 0.2) -> str:
    return state.observe(True, None, ttft).state


def fail(state: TargetState, error_class: ErrorClass = ErrorClass.SERVER_ERROR) -> str:
    return state.observe(False, error_class, None).state


def test_starts_unknown_and_first_success_is_up() -> None:
    s = machine()
    assert s.state == UNKNOWN
    assert ok(s) == UP


def test_failures_degrade_then_confirm_down() -> None:
    s = machine(down=3)
    ok(s)
    assert [fail(s), fail(s), fail(s)] == [DEGRADED, DEGRADED, DOWN]
    assert s.consecutive_failures == 3


def test_from_unknown_failures_go_degraded_then_down() -> None:
    s = machine(down=2)
    assert [fail(s), fail(s)] == [DEGRADED, DOWN]


def test_leaving_down_needs_successes_in_a_row() -> None:
    s = machine(down=1, up=3)
    assert fail(s) == DOWN
    assert [ok(s), ok(s)] == [DOWN, DOWN]
    assert fail(s) == DOWN  # a failure resets the run of successes
    assert [ok(s), ok(s), ok(s)] == [DOWN, DOWN, UP]


def test_one_success_clears_an_unconfirmed_failure() -> None:
    s = machine(down=3)
    ok(s)
    assert fail(s) == DEGRADED
    assert ok(s) == UP
    assert s.consecutive_failures == 0


@pytest.mark.parametrize("caller_side", [ErrorClass.RATE_LIMITED, ErrorClass.CLIENT_ERROR])
def test_caller_side_errors_neither_add_nor_reset(caller_side: ErrorClass) -> None:
    s = machine(down=3)
    ok(s)
    fail(s)
    fail(s)
    assert [fail(s, caller_side) for _ in range(2)] == [DEGRADED, DEGRADED]
    for _ in range(3):
        fail(s, caller_side)
    assert s.health == DEGRADED and s.state == BLIND  # five caller-side in a row: blind over degraded
    assert s.consecutive_failures == 2  # not reset, not increased
    assert fail(s) == DOWN  # the third provider-side failure in a row confirms


def test_caller_side_errors_keep_unknown() -> None:
    s = machine()
    transition = s.observe(False, ErrorClass.RATE_LIMITED, None)
    assert not transition.changed and s.state == UNKNOWN


def test_one_slow_outlier_does_not_degrade() -> None:
    s = machine()
    assert [ok(s, 0.5), ok(s, 0.6)] == [UP, UP]
    assert ok(s, 5.0) == UP  # median of the last TTFT_WINDOW (3) successes is 0.6 s


def test_slow_provider_is_degraded_and_recovers() -> None:
    s = machine()
    assert TTFT_WINDOW == 3
    assert [ok(s, 3.0), ok(s, 3.5)] == [DEGRADED, DEGRADED]  # serving, but over the 2 s TTFT SLO
    assert ok(s, 0.3) == DEGRADED  # median(3.0, 3.5, 0.3) = 3.0
    assert ok(s, 0.3) == UP  # median(3.5, 0.3, 0.3) = 0.3


# ------------------------------------------------------------------------------------------- blind
def caller(state: TargetState, status: int, at: float = 0.0) -> str:
    error_class = ErrorClass.RATE_LIMITED if status == 429 else ErrorClass.CLIENT_ERROR
    return state.observe(False, error_class, None, http_status=status, at=at).state


@pytest.mark.parametrize(("status", "reason"), [(401, "key_rejected"), (403, "key_rejected"), (402, "no_credits"),
                                                (429, "rate_limited"), (400, "no_success"), (404, "no_success")])
def test_caller_side_errors_in_a_row_make_a_target_blind(status: int, reason: str) -> None:
    s = machine(down=3)
    ok(s)
    assert [caller(s, status) for _ in range(3)] == [UP, UP, BLIND]
    assert s.blind_reason == reason and s.health == UP
    assert ok(s) == UP and s.blind_reason is None  # one success ends it


def test_blind_wins_over_down_when_the_key_dies_during_an_outage() -> None:
    s = machine(down=2)
    assert [fail(s), fail(s)] == [DEGRADED, DOWN]
    assert [caller(s, 402) for _ in range(2)] == [DOWN, BLIND]
    assert s.blind_reason == "no_credits"
    assert fail(s) == DOWN  # a provider-side failure ends the caller-side streak


def test_no_success_for_n_intervals_is_blind_unless_down() -> None:
    s = TargetState(ConfirmThresholds(failures_before_down=3), SLO, interval_s=60.0, blind_after_intervals=3,
                    since=1000.0)
    assert s.check(1000.0 + 179.0).state == UNKNOWN
    transition = s.check(1000.0 + 180.0)
    assert transition.changed and transition.state == BLIND and transition.reason == "no_success"
    s.observe(True, None, 0.2, at=1200.0)
    assert s.state == UP and s.check(1200.0 + 179.0).state == UP
    assert s.check(1200.0 + 181.0).state == BLIND  # probes stopped finishing
    d = TargetState(ConfirmThresholds(failures_before_down=1), SLO, interval_s=60.0, since=0.0)
    d.observe(False, ErrorClass.SERVER_ERROR, None, at=10.0)
    assert d.check(10_000.0).state == DOWN  # the outage explains the missing successes
    g = TargetState(ConfirmThresholds(failures_before_down=3), SLO, interval_s=60.0, since=0.0)
    g.observe(False, ErrorClass.TIMEOUT_TTFT, None, at=60.0)  # a hung provider on its way to down
    assert g.check(10_000.0).state == DEGRADED


def test_a_mix_of_caller_side_failures_keeps_the_latest_reason() -> None:
    s = machine(down=3)
    for status in (429, 402, 401):
        caller(s, status)
    assert s.state == BLIND and s.blind_reason == "key_rejected"
    transition = s.observe(False, ErrorClass.CLIENT_ERROR, None, http_status=402)
    assert transition.changed and transition.previous == BLIND and transition.reason == "no_credits"
