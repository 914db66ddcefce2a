"""The cost cap's reservations, and the per-request JSONL (fields, one write per line, torn lines)."""

from __future__ import annotations

import json
from pathlib import Path

from tokenpulse.config import Price
from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import StreamResult
from tokenpulse.load.cost import CostGuard, request_cost, worst_case_cost
from tokenpulse.load.exporter import LoadExporter
from tokenpulse.load.observation import Observation
from tokenpulse.runfolder.records import JsonlAppender, build_record, iter_jsonl

PRICE = Price(prompt_per_mtok=1.0, completion_per_mtok=2.0)


def result(*, ok: bool = True, cost: float | None = None, error: ErrorClass | None = None,
           ttft: float | None = 0.1) -> StreamResult:
    return StreamResult(outcome=Outcome.OK if ok else Outcome.ERROR, error_class=None if ok else error,
                        error_message=None if ok else "boom", http_status=200 if ok else 502, t0_ns=123,
                        ttfb_s=0.01, ttft_s=ttft, ttfc_s=ttft, e2e_s=0.5, tpot_s=0.01, output_tokens_per_s=50.0,
                        prompt_tokens=1000, output_tokens=500, reasoning_tokens=0, cached_tokens=0, cost_usd=cost,
                        tokens_estimated=False, chunk_count=3, token_times_s=[0.1, 0.2, 0.3],
                        provider="Fast", generation_id="gen-1", finish_reason="stop", retry_after_s=None,
                        bytes_received=999, keepalive_count=1, truth_ttft_s=0.09, truth_lags_s=[0.001, 0.002, 0.003])


def test_request_cost_prefers_usage_cost_then_price() -> None:
    assert request_cost(result(cost=0.5), PRICE) == 0.5
    assert request_cost(result(), PRICE) == (1000 * 1.0 + 500 * 2.0) / 1e6
    assert request_cost(result(), None) is None
    # refused before any token: not billed
    assert request_cost(result(ok=False, error=ErrorClass.RATE_LIMITED, ttft=None), None) == 0.0
    # failed after tokens: billed as usage x price
    assert request_cost(result(ok=False, error=ErrorClass.MID_STREAM_ERROR), PRICE) > 0


def test_guard_never_lets_spent_plus_reserved_pass_the_cap() -> None:
    guard = CostGuard(cap_usd=1.0)
    worst = worst_case_cost(PRICE, 100_000, 100_000)  # 0.3 USD
    reservations = [guard.reserve("t", worst) for _ in range(3)]
    assert all(reservations) and guard.reserve("t", worst) is None and guard.exhausted
    assert guard.reserved_usd + guard.spent_usd <= 1.0
    for r in reservations:
        assert r is not None
        guard.settle(r, 0.1)
    assert guard.spent_usd == 0.30000000000000004 or abs(guard.spent_usd - 0.3) < 1e-12
    assert guard.reserved_usd == 0
    assert guard.reserve("t", worst) is None  # once exhausted, it stays so: the run is draining


def test_guard_learns_the_largest_cost_when_no_price() -> None:
    guard = CostGuard(cap_usd=1.0)
    first = guard.reserve("t", 0.0)
    assert first is not None and first.amount == 0.0
    guard.settle(first, 0.4)
    second = guard.reserve("t", 0.0)
    assert second is not None and second.amount == 0.4
    assert guard.reserve("t", 0.0) is None  # 0.4 spent + 0.4 reserved + 0.4 > 1.0


def test_guard_scales_reservations_by_the_overrun_it_has_seen() -> None:
    """A provider charging a third more than the configured price, prompts of every length: after the
    first finished request every reservation bounds its request's actual cost, long prompts included,
    and the spend never passes the cap (before, only the largest cost seen raised a reservation, and a
    prompt longer than any before could overshoot)."""
    charged = Price(prompt_per_mtok=1.2, completion_per_mtok=2.4)  # what the provider really bills
    cap = 0.5
    guard = CostGuard(cap_usd=cap)
    first = guard.reserve("t", worst_case_cost(PRICE, 1_000, 500))
    assert first is not None
    guard.settle(first, charged.cost(1_000, 500))
    in_flight = []
    for prompt in [100, 50_000, 200, 120_000, 3_000, 90_000, 160_000, 10, 70_000] * 20:
        reservation = guard.reserve("t", worst_case_cost(PRICE, prompt, 500))
        if reservation is None:
            break
        assert reservation.amount >= charged.cost(prompt, 500)
        in_flight.append((reservation, charged.cost(prompt, 500)))
        if len(in_flight) == 4:  # requests finish in a different order than they started
            reservation, actual = in_flight.pop(1)
            guard.settle(reservation, actual)
    for reservation, actual in in_flight:
        guard.settle(reservation, actual)
    assert guard.exhausted and guard.spent_usd <= cap


def test_an_overrun_raises_the_reservations_already_in_flight() -> None:
    """The failure a fresh-clone CI run found (records summed to $0.00050112 against a $0.0005 cap):
    eight requests start before any has finished, reserved at the configured price while the provider
    bills a third more; one finishes and shows it. The seven still in flight must now count at their
    real worst case, or the last requests are let in as if the budget had room for them."""
    charged = Price(prompt_per_mtok=1.2, completion_per_mtok=2.4)
    estimate, actual = worst_case_cost(PRICE, 1_000, 500), charged.cost(1_000, 500)
    guard = CostGuard(cap_usd=29 * actual - 1e-12)  # room for 28 such requests, not 29
    first_wave = [guard.reserve("t", estimate) for _ in range(8)]
    assert all(first_wave)
    guard.settle(first_wave.pop(), actual)  # the first to finish; the slowest of the wave never does
    admitted = 8
    while (r := guard.reserve("t", estimate)) is not None:
        admitted += 1
        guard.settle(r, actual)
    for r in first_wave:
        assert r is not None
        guard.settle(r, actual)
    assert admitted == 28 and guard.spent_usd <= guard.cap_usd


def test_guard_without_cap_only_totals() -> None:
    guard = CostGuard(cap_usd=None)
    for _ in range(100):
        r = guard.reserve("t", 1.0)
        assert r is not None
        guard.settle(r, 1.0)
    assert guard.spent_usd == 100


def test_record_has_measure_fields_series_and_context() -> None:
    res = result()
    record = build_record(res, start_time=1.5, step=2, phase="measure", target_provider="fast")
    assert set(res.to_dict()) <= set(record)
    assert record["token_times_s"] == [0.1, 0.2, 0.3]
    assert record["truth_lags_s"] == [0.001, 0.002, 0.003]
    assert record["step"] == 2 and record["target_provider"] == "fast" and record["provider"] == "Fast"
    assert "t0_ns" not in record and "text" not in record
    json.dumps(record, allow_nan=False)


def test_appender_writes_whole_lines_and_reader_skips_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "records-local.jsonl"
    writer = JsonlAppender(path)
    for i in range(5):
        writer.write({"i": i, "x": float("nan") if i == 3 else 1.0})
    writer.close()
    with open(path, "ab") as fh:
        fh.write(b'{"i": 5, "torn')  # what a non-atomic writer could leave behind
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 6 and lines[-1].startswith(b'{"i": 5')
    rows = list(iter_jsonl(path))
    assert [r["i"] for r in rows] == [0, 1, 2, 3, 4] and rows[3]["x"] is None


def test_observation_roundtrip_for_the_exporter() -> None:
    res = result(ok=False, error=ErrorClass.SERVER_ERROR, cost=0.2)
    obs = Observation.of(3, res, 0.2, 0.05)
    wire = json.loads(json.dumps(obs.to_dict()))  # what crosses Locust's worker report
    back = Observation.from_dict(wire)
    assert back == obs
    assert back.error_class is ErrorClass.SERVER_ERROR and back.ttft_s == res.ttft_s and not back.ok
    assert back.output_tokens == 500 and back.cost_usd == 0.2 and back.target == 3 and back.queue_wait_s == 0.05
    # A record this version cannot read is refused, never turned into invented labels.
    assert Observation.from_dict({**wire, "outcome": "exploded"}) is None
    assert Observation.from_dict({**wire, "ttft_s": "fast"}) is None
    assert Observation.from_dict([3, "ok"]) is None


def test_exporter_observes_the_wire_record_directly() -> None:
    from tokenpulse.config import config_from_text

    text = "endpoints: [{name: e, base_url: 'http://127.0.0.1:1/v1', models: [{id: m}]}]\n"
    targets = list(config_from_text(text, source="t.yaml").targets())
    exporter = LoadExporter(targets)
    res = result(ok=False, error=ErrorClass.SERVER_ERROR, cost=0.2)
    exporter.observe(Observation.of(0, res, 0.2, 0.05))
    exporter.observe(Observation.of(7, res, 0.2, None))  # a target this master does not have: ignored
    requests = exporter.metrics.registry.get_sample_value(
        "tokenpulse_requests_total", {**targets[0].labels, "outcome": "error", "error_class": "server_error"})
    assert requests == 1.0
