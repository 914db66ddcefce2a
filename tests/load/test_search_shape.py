"""The search shape's pieces without Locust: the master's driver (load/search.py), the adaptive schedule,
the `--slo` overrides and the CLI's refusals (exit 2 naming the flag)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from load_helpers import write_config

from tokenpulse.cli.main import main
from tokenpulse.load.observation import Observation
from tokenpulse.load.options import LoadOptions
from tokenpulse.load.search import SearchDriver
from tokenpulse.load.slo_flags import effective_slo, parse_slo
from tokenpulse.runfolder.schedule import MEASURE, SETTLE, WARMUP, Schedule, build_schedule

SLO = {"ttft_s": 1.0, "tpot_s": 0.05}
GOOD = {"outcome": "ok", "ttft_s": 0.1, "tpot_s": 0.01, "e2e_s": 0.5}
SLOW = {"outcome": "ok", "ttft_s": 3.0, "tpot_s": 0.01, "e2e_s": 3.5}


def options(**given: Any) -> LoadOptions:
    return LoadOptions.from_parsed(SimpleNamespace(tp_shape="search", tp_users=16, tp_step_time=4.0, tp_start=2.0,
                                                   tp_goodput=0.8, **given))


def first_schedule(opts: LoadOptions) -> Schedule:
    return opts.schedule(0.5)


def driver(opts: LoadOptions) -> SearchDriver:
    return SearchDriver.of(opts, SLO, drain_s=10.0, warmup_s=0.5)


def feed(d: SearchDriver, step: int, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        d.observe(step, r)


# ------------------------------------------------------------------------------ schedule
def test_a_search_schedule_starts_with_one_step_and_holds_its_level_until_the_next() -> None:
    s = build_schedule("search", users=16, spawn_rate=None, run_time_s=30, warmup_s=0.5, step_s=4.0, search_start=2)
    assert [(st.users, st.rate) for st in s.steps] == [(2, None)]
    assert s.phase_at(0.2) == WARMUP and s.phase_at(1.0) == MEASURE
    # after the step's end and before any next step: the level is held, in the settle phase
    assert s.phase_at(5.0) == SETTLE and s.locate(5.0) == (0, 2.0, SETTLE) and s.users_at(5.0) == 2
    s2 = s.with_step(4, start_s=5.5, duration_s=4.0, warmup_s=0.5)
    step = s2.steps[1]
    assert (step.index, step.users, step.start_s) == (1, 4, 5.5)
    assert step.warmup_s == pytest.approx(0.5 + 2 / 16)  # plus spawning the two new users at 16/s
    assert s2.locate(5.2) == (0, 2.0, SETTLE) and s2.locate(6.5)[0::2] == (1, MEASURE)
    assert s2.add(step) is s2, "a step announced twice is added once"
    assert Schedule.from_dict(s2.to_dict()) == s2


def test_a_rate_search_varies_the_rate_with_a_fixed_pool() -> None:
    s = build_schedule("search", users=64, spawn_rate=None, run_time_s=30, warmup_s=0.0, step_s=5.0, rate=2.0)
    s = s.with_step(4.0, start_s=5.2, duration_s=5.0, warmup_s=0.0)
    assert [(st.users, st.rate) for st in s.steps] == [(64, 2.0), (64, 4.0)]
    assert s.step_at(5.1) is not None and s.step_at(5.1).rate == 2.0  # type: ignore[union-attr]


def test_a_search_step_must_leave_a_measured_window_at_the_cap() -> None:
    with pytest.raises(ValueError, match="search step"):
        build_schedule("search", users=64, spawn_rate=8, run_time_s=30, warmup_s=1.0, step_s=5.0, search_start=1)


# ------------------------------------------------------------------------------ driver
def test_the_driver_judges_a_complete_step_and_lays_out_the_next() -> None:
    opts = options()
    d, s = driver(opts), first_schedule(opts)
    feed(d, 0, [GOOD] * 30)
    d.worker_report("local", 3.0, {0: 30})
    assert d.tick(s, 3.9, workers=1) is s, "the step is still running"
    assert d.tick(s, 4.0, workers=1) is s, "the worker's count predates the step's end"
    d.worker_report("local", 4.0, {0: 30})
    s2 = d.tick(s, 4.1, workers=1)
    assert [st.users for st in s2.steps] == [2, 4] and s2.steps[1].start_s == 4.1
    assert d.steps[0]["verdict"] == "pass" and d.steps[0]["tally"]["judged"] == 30


def test_the_driver_waits_for_requests_still_in_flight_then_counts_them_as_not_good() -> None:
    opts = options()
    d, s = driver(opts), first_schedule(opts)
    feed(d, 0, [GOOD] * 20)
    d.worker_report("local", 4.5, {0: 25})
    assert d.tick(s, 4.5, workers=1) is s
    assert d.tick(s, 4.5 + d.settle_timeout_s - 0.1, workers=1) is s
    s2 = d.tick(s, 4.5 + d.settle_timeout_s, workers=1)
    assert len(s2.steps) == 2
    tally = d.steps[0]["tally"]
    assert (tally["judged"], tally["good"], tally["unresolved"]) == (25, 20, 5)


def test_an_undecided_step_is_rerun_at_its_level_and_judged_on_the_pooled_requests() -> None:
    opts = options()
    d, s = driver(opts), first_schedule(opts)
    feed(d, 0, [GOOD] * 10)  # 10 of 10 good: the interval reaches below 0.8
    d.worker_report("local", 4.0, {0: 10})
    s = d.tick(s, 4.0, workers=1)
    assert d.steps[0]["verdict"] == "undecided"
    rerun = s.steps[1]
    assert (rerun.users, rerun.warmup_s) == (2, 0.0), "the same level, no new warm-up"
    feed(d, 1, [GOOD] * 30)
    d.worker_report("local", 8.0, {0: 10, 1: 30})
    s = d.tick(s, 8.0, workers=1)
    assert d.steps[1]["verdict"] == "pass" and d.steps[1]["pooled_steps"] == [0, 1]
    assert d.steps[1]["tally"]["judged"] == 40 and s.steps[2].users == 4


def test_every_worker_must_have_reported_since_the_step_end() -> None:
    opts = options()
    d, s = driver(opts), first_schedule(opts)
    feed(d, 0, [GOOD] * 40)
    d.worker_report("1", 4.2, {"0": 20})
    assert d.tick(s, 4.3, workers=2) is s
    d.worker_report("2", 4.4, {"0": 20})
    assert len(d.tick(s, 4.5, workers=2).steps) == 2


def test_late_requests_of_a_judged_step_change_nothing_and_the_search_ends() -> None:
    opts = options(tp_max_steps=2)
    d, s = driver(opts), first_schedule(opts)
    feed(d, 0, [GOOD] * 30)
    d.worker_report("local", 4.0, {0: 30})
    s = d.tick(s, 4.0, workers=1)
    d.observe(0, SLOW)
    d.observe(None, SLOW)  # a warm-up or settle request: not in any tally
    assert d.finished[0] == 30
    feed(d, 1, [SLOW] * 30)
    d.worker_report("local", 8.5, {0: 31, 1: 30})
    s = d.tick(s, 8.5, workers=1)
    assert d.done and d.steps[1]["verdict"] == "fail"
    answer = d.to_dict()["answer"]
    assert answer["bracket"] == [2.0, 4.0] and (answer["status"], answer["stopped_by"]) == ("stopped", "max_steps")


def test_an_observation_carries_its_step_to_the_master() -> None:
    obs = Observation.from_dict({"target": 0, "outcome": "ok", "error_class": None, "ttft_s": 0.1, "step": 3})
    assert obs is not None and obs.step == 3 and Observation.from_dict(obs.to_dict()) == obs
    older = Observation.from_dict({"target": 0, "outcome": "ok", "error_class": None})
    assert older is not None and older.step is None
    assert Observation.from_dict({"target": 0, "outcome": "ok", "error_class": None, "step": "3"}) is None


# ------------------------------------------------------------------------------ --slo
def test_slo_overrides_replace_thresholds_and_add_percentiles() -> None:
    config_slo = {"ttft_s": 2.0, "tpot_s": 0.05, "e2e_s": None, "error_rate": None,
                  "percentiles": {"ttft_p95": 3.0, "tpot_p90": 0.1}}
    slo = effective_slo(config_slo, "ttft=1s,e2e=20s,ttft_p95=1s,tpot_p50=50ms,error_rate=1%")
    assert (slo["ttft_s"], slo["tpot_s"], slo["e2e_s"], slo["error_rate"]) == (1.0, 0.05, 20.0, 0.01)
    assert slo["percentiles"] == {"ttft_p95": 1.0, "tpot_p90": 0.1, "tpot_p50": 0.05}
    assert effective_slo(config_slo, "") == config_slo


@pytest.mark.parametrize(("text", "problem"), [
    ("ttft=fast", "ttft=fast: not a duration"), ("latency=1s", "'latency': unknown objective"),
    ("error_rate=150%", "below 100%"), ("ttft_p0=1s", "between 0 and 100"), ("tpot", "expected KEY=VALUE"),
    ("e2e=0s", "must be > 0"), (",", "empty"),
])
def test_bad_slo_overrides_name_the_item(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        parse_slo(text)


@pytest.mark.parametrize(("argv", "problem"), [
    (["--slo", "ttft=fast"], "--slo: ttft=fast: not a duration"),
    (["--shape", "search", "--start", "1.5"], "--start 1.5: a concurrency search starts at a whole number"),
    (["--shape", "search", "--start", "32", "--users", "8"], "start level 32 is above its cap 8"),
    (["--shape", "search", "--resolution", "x"], "--resolution 'x'"),
    (["--shape", "fixed", "--goodput", "0.9"], "--goodput does not apply to --shape fixed"),
    (["--shape", "rate", "--rate", "2", "--search", "rate"], "--search does not apply to --shape rate"),
])
def test_bad_search_options_exit_2_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   argv: list[str], problem: str) -> None:
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9/api/v1", ["p"])
    code = main(["load", "--config", str(config), "--metrics-port", "0", "--out", str(tmp_path / "run"), *argv])
    assert code == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_goodput_outside_0_1_is_refused_by_the_parser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["load", "--config", "x.yaml", "--shape", "search", "--goodput", "1.5"])
    assert exc.value.code == 2 and "--goodput" in capsys.readouterr().err


@pytest.mark.parametrize(("slo", "problem"), [
    ({"e2e_s": -1}, "slo.e2e_s: Input should be greater than 0"),
    ({"error_rate": 2}, "slo.error_rate: Input should be less than 1"),
    ({"percentiles": {"latency_p95": 1.0}}, "slo.percentiles.latency_p95"),
    ({"percentiles": {"ttft_p0": 1.0}}, "slo.percentiles: 'ttft_p0': the percentile must be between 0 and 100"),
])
def test_bad_slo_fields_in_the_config_exit_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              slo: dict[str, Any], problem: str) -> None:
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9/api/v1", ["p"], slo={"ttft_s": 1.0, **slo})
    assert main(["load", "--config", str(config), "--metrics-port", "0", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and problem in err
