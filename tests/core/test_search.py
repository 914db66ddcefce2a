"""core/search.py: the capacity search's state machine and a step's verdict, without Locust or a clock."""

from __future__ import annotations

import math

import pytest

from tokenpulse.core.search import (
    FAIL,
    PASS,
    UNDECIDED,
    Criteria,
    PercentileObjective,
    Search,
    StepTally,
    bracket,
    judge,
    parse_resolution,
)
from tokenpulse.core.stats import proportion_interval


def run_search(search: Search, capacity: float) -> list[float]:
    """Drive the search against a target whose true capacity is `capacity` (pass iff level <= it)."""
    levels = []
    while (level := search.next_level()) is not None:
        levels.append(level)
        search.record(level, PASS if level <= capacity else FAIL)
    return levels


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 6, 7, 11, 16, 33, 100])
def test_a_concurrency_search_ends_on_the_capacity_with_a_one_user_bracket(capacity: int) -> None:
    search = Search(start=1, integer=True, resolution=1, max_level=256, max_steps=30)
    levels = run_search(search, capacity)
    assert search.status() == "found"
    assert search.lo == capacity and search.hi == capacity + 1
    assert all(level == int(level) for level in levels)
    assert len(levels) == len(set(levels)), "no level is tried twice"
    # exploration by doubling, then bisection: about 2 log2(capacity) steps
    assert len(levels) <= 2 * math.ceil(math.log2(capacity + 1)) + 2


def test_the_exploration_doubles_then_bisects() -> None:
    search = Search(start=2, integer=True, resolution=1, max_level=64)
    assert run_search(search, 6) == [2, 4, 8, 6, 7]
    assert search.answer()["bracket"] == [6, 7]


def test_a_first_level_that_fails_halves_until_one_passes() -> None:
    search = Search(start=16, integer=True, resolution=1, max_level=64)
    assert run_search(search, 5) == [16, 8, 4, 6, 5]
    assert (search.lo, search.hi, search.status()) == (5, 6, "found")


def test_the_lowest_level_failing_is_below_min() -> None:
    search = Search(start=4, integer=True, resolution=1, max_level=64)
    assert run_search(search, 0) == [4, 2, 1]
    assert search.status() == "below_min" and search.lo is None and search.hi == 1


def test_a_cap_that_passes_is_above_max() -> None:
    search = Search(start=1, integer=True, resolution=1, max_level=12)
    assert run_search(search, 1000) == [1, 2, 4, 8, 12]
    assert search.status() == "above_max" and search.answer()["bracket"] == [12, None]


def test_max_steps_stops_the_search_with_the_bracket_so_far() -> None:
    search = Search(start=1, integer=True, resolution=1, max_level=1024, max_steps=4)
    assert run_search(search, 300) == [1, 2, 4, 8]
    assert search.status() == "stopped" and search.stopped_by == "max_steps"
    assert search.answer()["bracket"] == [8, None]


def test_a_search_that_ends_exactly_at_max_steps_is_found_not_stopped() -> None:
    search = Search(start=2, integer=True, resolution=1, max_level=64, max_steps=5)
    run_search(search, 6)
    assert search.status() == "found" and search.stopped_by is None


def test_a_stop_from_outside_ends_the_search() -> None:
    search = Search(start=1, integer=True, resolution=1)
    search.record(1, PASS)
    search.stop("max_cost")
    assert search.next_level() is None and search.status() == "stopped" and search.stopped_by == "max_cost"


def test_an_undecided_level_is_rerun_twice_then_counts_as_failing() -> None:
    search = Search(start=4, integer=True, resolution=1, max_level=64)
    search.record(4, PASS)
    for _ in range(2):
        search.record(8, UNDECIDED)
        assert search.hi is None and search.next_level() == 8 and search.status() == "running"
    search.record(8, UNDECIDED)
    assert search.hi == 8 and search.next_level() == 6


def test_a_rerun_that_decides_counts_as_decided() -> None:
    search = Search(start=4, integer=True, resolution=1, max_level=64, repeats=1)
    search.record(4, UNDECIDED)
    assert search.next_level() == 4 and search.runs_at_end() == 1
    search.record(4, PASS)
    assert search.lo == 4 and search.next_level() == 8
    assert bracket(search.tried) == (4, None), "a re-run level's last verdict stands"


@pytest.mark.parametrize("capacity", [0.37, 3.3, 13.3, 250.0])
def test_a_rate_search_narrows_to_its_relative_resolution(capacity: float) -> None:
    search = Search(start=1.0, integer=False, resolution=0.10, relative=True, max_steps=40)
    run_search(search, capacity)
    assert search.status() == "found"
    assert search.lo is not None and search.hi is not None
    assert search.lo <= capacity < search.hi
    assert search.hi - search.lo <= 0.10 * search.lo


def test_an_absolute_rate_resolution() -> None:
    search = Search(start=1.0, integer=False, resolution=0.5, max_steps=40)
    run_search(search, 7.2)
    assert search.lo is not None and search.hi is not None and search.hi - search.lo <= 0.5
    assert search.lo <= 7.2 < search.hi


@pytest.mark.parametrize("kwargs", [{"start": 0}, {"start": 1.5}, {"start": 10, "max_level": 4}, {"max_steps": 0}])
def test_bad_search_settings_are_refused(kwargs: dict[str, float]) -> None:
    settings = {"start": 1, "integer": True, "resolution": 1.0, **kwargs}
    with pytest.raises(ValueError):
        Search(**settings)  # type: ignore[arg-type]


def test_parse_resolution() -> None:
    assert parse_resolution("2") == (2.0, False)
    assert parse_resolution("10%") == (pytest.approx(0.10), True)
    for bad in ("", "x", "-1", "0%", "nan"):
        with pytest.raises(ValueError, match="--resolution"):
            parse_resolution(bad)


def test_the_resolution_is_stated() -> None:
    def text(**kw: object) -> str:
        return Search(**{"start": 1, "integer": True, "resolution": 1.0, **kw}).resolution_text()  # type: ignore[arg-type]

    assert text() == "1 user" and text(resolution=2.0) == "2 users"
    assert text(resolution=0.1, relative=True) == "10% of the lower level (at least 1 user)"
    assert text(integer=False, resolution=0.1, relative=True) == "10% of the lower level"
    assert text(integer=False, resolution=0.5) == "0.5 requests/s"


def test_bracket_of_results_in_any_order() -> None:
    assert bracket([(8, FAIL), (2, PASS), (6, PASS), (4, PASS), (7, UNDECIDED)]) == (6, 7)
    assert bracket([(1, FAIL)]) == (None, 1)
    assert bracket([(1, PASS), (2, PASS)]) == (2, None)
    # a pass above the lowest failure (noise) does not raise the answer
    assert bracket([(4, PASS), (6, FAIL), (8, PASS)]) == (4, 6)


# --------------------------------------------------------------------------- a step's verdict
def test_proportion_interval() -> None:
    lo, hi = proportion_interval(95, 100)
    assert lo is not None and hi is not None
    assert 0.88 < lo < 0.89 and 0.97 < hi < 0.98  # the textbook values 0.8882, 0.9785
    assert proportion_interval(0, 0) == (None, None)
    assert proportion_interval(10, 10)[1] == 1.0 and proportion_interval(0, 10)[0] == 0.0


def records(n_good: int, n_slow: int, n_errors: int = 0, n_cancelled_slow: int = 0) -> list[dict[str, object]]:
    good = {"outcome": "ok", "ttft_s": 0.2, "tpot_s": 0.02, "e2e_s": 2.0}
    slow = {"outcome": "ok", "ttft_s": 3.0, "tpot_s": 0.02, "e2e_s": 5.0}
    error = {"outcome": "error", "ttft_s": None, "e2e_s": 0.1}
    cancelled = {"outcome": "cancelled", "ttft_s": None, "e2e_s": 9.0}
    return [good] * n_good + [slow] * n_slow + [error] * n_errors + [cancelled] * n_cancelled_slow


SLO = {"ttft_s": 1.0, "tpot_s": 0.05}


def tally_of(rows: list[dict[str, object]], criteria: Criteria) -> StepTally:
    tally = StepTally()
    for r in rows:
        tally.add(r, criteria)
    return tally


def test_a_step_passes_fails_or_is_undecided_by_its_interval() -> None:
    criteria = Criteria(slo=SLO, goodput=0.95)
    assert judge(tally_of(records(400, 0), criteria), criteria)["verdict"] == PASS
    assert judge(tally_of(records(80, 20), criteria), criteria)["verdict"] == FAIL
    undecided = judge(tally_of(records(95, 5), criteria), criteria)
    assert undecided["verdict"] == UNDECIDED
    check = undecided["checks"][0]
    assert check["name"] == "goodput" and check["n"] == 100 and check["k"] == 95
    assert check["ci"][0] < 0.95 < check["ci"][1]


def test_goodput_counts_errors_and_cancelled_requests_that_broke_the_slo() -> None:
    criteria = Criteria(slo=SLO)
    tally = tally_of(records(10, 2, n_errors=3, n_cancelled_slow=4)
                     + [{"outcome": "cancelled", "ttft_s": 0.1, "e2e_s": 0.2}], criteria)
    assert (tally.judged, tally.good, tally.errors, tally.ok, tally.cancelled) == (19, 10, 3, 12, 5)


def test_unresolved_requests_count_as_not_good() -> None:
    criteria = Criteria(slo=SLO)
    tally = tally_of(records(50, 0), criteria)
    tally.add_unresolved(7)
    assert tally.judged == 57 and tally.good == 50 and tally.unresolved == 7


def test_e2e_threshold_and_queue_wait_count_toward_goodput() -> None:
    criteria = Criteria(slo={**SLO, "e2e_s": 3.0})
    ok = {"outcome": "ok", "ttft_s": 0.2, "tpot_s": 0.02, "e2e_s": 2.5}
    tally = tally_of([ok, {**ok, "e2e_s": 3.5}, {**ok, "queue_wait_s": 0.9}], criteria)
    assert tally.good == 1  # the E2E past 3 s, and the 0.9 s wait that pushes TTFT and E2E past theirs


def test_error_rate_and_percentile_objectives() -> None:
    criteria = Criteria(slo={"ttft_s": 10.0, "tpot_s": 1.0}, goodput=0.5, error_rate=0.01,
                        percentiles=(PercentileObjective.parse("ttft_p95", 1.0),))
    # 500 fast successes: every check passes (with 300, no error at all is still undecided against 1 %:
    # the interval of 0/300 reaches 1.3 %)
    assert judge(tally_of(records(300, 0), criteria), criteria)["checks"][1]["verdict"] == UNDECIDED
    result = judge(tally_of(records(500, 0), criteria), criteria)
    assert result["verdict"] == PASS and [c["name"] for c in result["checks"]] == ["goodput", "error_rate", "ttft_p95"]
    # 30 % slow: the TTFT p95 objective fails though goodput (against the 10 s threshold) passes
    result = judge(tally_of(records(210, 90), criteria), criteria)
    by_name = {c["name"]: c for c in result["checks"]}
    assert by_name["goodput"]["verdict"] == PASS and by_name["ttft_p95"]["verdict"] == FAIL
    assert result["verdict"] == FAIL
    # 10 % errors: the error rate fails
    result = judge(tally_of(records(270, 0, n_errors=30), criteria), criteria)
    assert {c["name"]: c["verdict"] for c in result["checks"]}["error_rate"] == FAIL


def test_criteria_from_an_slo_mapping() -> None:
    criteria = Criteria.from_slo({"ttft_s": 1.0, "tpot_s": 0.05, "error_rate": 0.02,
                                  "percentiles": {"tpot_p50": 0.03, "e2e_p99": 20.0}}, goodput=0.9)
    assert criteria.goodput == 0.9 and criteria.error_rate == 0.02
    assert [p.name for p in criteria.percentiles] == ["e2e_p99", "tpot_p50"]
    with pytest.raises(ValueError):
        PercentileObjective.parse("ttft_p100", 1.0)
    with pytest.raises(ValueError):
        PercentileObjective.parse("latency_p95", 1.0)


def test_tallies_of_a_rerun_level_pool() -> None:
    criteria = Criteria(slo=SLO, goodput=0.8)
    first, second = tally_of(records(10, 0), criteria), tally_of(records(29, 1), criteria)
    assert judge(first, criteria)["verdict"] == UNDECIDED  # 10 of 10: the interval reaches down to 72 %
    pooled = first.merged(second)
    assert (pooled.judged, pooled.good) == (40, 39) and judge(pooled, criteria)["verdict"] == PASS


def test_a_tally_round_trips_through_json() -> None:
    criteria = Criteria(slo=SLO, percentiles=(PercentileObjective.parse("ttft_p50", 1.0),))
    tally = tally_of(records(5, 3, n_errors=1), criteria)
    assert StepTally.from_dict(tally.to_dict()) == tally
