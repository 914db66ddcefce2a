"""The confirmed state machine: confirmation thresholds, caller-side classes, the TTFT SLO."""

from __future__ import annotations

import pytest

from tokenpulse.config import ConfirmThresholds
from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.prober.state import DEGRADED, DOWN, TTFT_WINDOW, UNKNOWN, UP, TargetState

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
    for _ in range(5):
        assert fail(s, caller_side) == DEGRADED
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
