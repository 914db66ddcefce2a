"""Load schedules (what the shapes apply when), and the CLI's duration and level parsing."""

from __future__ import annotations

import pytest

from tokenpulse.load.timespan import parse_duration
from tokenpulse.runfolder.schedule import (
    MEASURE,
    WARMUP,
    Schedule,
    build_schedule,
    parse_levels,
)


def test_fixed_excludes_warmup_and_spawning() -> None:
    s = build_schedule("fixed", users=20, spawn_rate=10, run_time_s=60, warmup_s=5)
    (step,) = s.steps
    assert step.warmup_s == 5 + 2  # 20 users at 10/s
    assert s.phase_at(6.9) == WARMUP and s.phase_at(7.0) == MEASURE
    assert s.tick(0) == (20, 10.0) and s.tick(59.9) == (20, 10.0) and s.tick(60) is None


def test_sweep_steps_levels_and_locate() -> None:
    s = build_schedule("sweep", users=10, spawn_rate=None, run_time_s=0, warmup_s=2, levels=[1, 4, 16],
                       step_s=10)
    assert [(st.start_s, st.users) for st in s.steps] == [(0, 1), (10, 4), (20, 16)]
    assert s.spawn_rate == 16  # the largest step spawns within a second
    assert s.steps[2].warmup_s == pytest.approx(2 + 12 / 16)
    assert s.locate(10.5) == (1, 4.0, WARMUP)
    assert s.locate(13) == (1, 4.0, MEASURE)
    assert s.locate(31) == (2, 16.0, MEASURE)  # after the end: the last step (requests draining)
    assert s.users_at(25) == 16 and s.tick(30) is None
    assert s.total_s == 30


def test_sweep_default_step_time_splits_the_run() -> None:
    s = build_schedule("sweep", users=1, spawn_rate=None, run_time_s=30, levels=[2, 4, 8])
    assert [st.duration_s for st in s.steps] == [10, 10, 10]


def test_ramp_grows_to_users_and_bins_for_the_report() -> None:
    s = build_schedule("ramp", users=100, spawn_rate=None, run_time_s=50)
    assert s.users_at(0) == 1 and s.users_at(25) == 50 and s.users_at(49.9) == 100
    assert len(s.steps) == 10 and s.steps[0].users == 5 and s.steps[-1].users == 95
    assert all(st.warmup_s == 0 for st in s.steps)
    assert s.spawn_rate == 2.0


def test_rate_levels_and_pool() -> None:
    s = build_schedule("rate", users=50, spawn_rate=None, run_time_s=40, levels=[1, 2], warmup_s=3)
    assert [(st.rate, st.users) for st in s.steps] == [(1.0, 50), (2.0, 50)]
    assert s.steps[0].warmup_s == 4 and s.steps[1].warmup_s == 3
    assert s.steps[1].level == 2.0
    single = build_schedule("rate", users=8, spawn_rate=None, run_time_s=10, rate=5)
    assert [st.rate for st in single.steps] == [5.0]


def test_schedule_roundtrips_through_meta_json() -> None:
    s = build_schedule("sweep", users=1, spawn_rate=2, run_time_s=20, levels=[2, 4], warmup_s=1)
    assert Schedule.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "sweep"}, "needs --levels"),
    ({"kind": "sweep", "levels": [1.5]}, "whole numbers"),
    ({"kind": "rate"}, "needs --rate"),
    ({"kind": "fixed", "warmup_s": 40}, "warm-up and spawning take"),
    ({"kind": "zigzag"}, "unknown shape"),
])
def test_schedule_errors_are_cli_ready(kwargs: dict, message: str) -> None:
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=message):
        build_schedule(kind, users=4, spawn_rate=None, run_time_s=30, **kwargs)


def test_parse_levels_and_durations() -> None:
    assert parse_levels("1, 4,16") == [1.0, 4.0, 16.0]
    with pytest.raises(ValueError, match="'x'"):
        parse_levels("1,x")
    assert parse_duration("90") == 90 and parse_duration("1h30m") == 5400 and parse_duration("2.5s") == 2.5
    assert parse_duration("250ms") == 0.25
    for bad in ("", "5 minutes", "m5", "1h30x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
