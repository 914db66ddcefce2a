"""The load process's pieces, without Locust (issue 12 §6): run context, drain state, worker reports,
meta.json, the `cancelled` result, the run tally, shape-option checks."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import StreamRecorder
from tokenpulse.load.context import build_context
from tokenpulse.load.drain import FLUSH_WAIT_S, DrainState, FlushState
from tokenpulse.load.meta import build_meta, locust_totals, write_meta
from tokenpulse.load.observation import Observation
from tokenpulse.load.options import LoadOptions
from tokenpulse.load.reporting import REPORT_KEY, MasterInbox, WorkerOutbox
from tokenpulse.load.runner import UsageError, check_shape_options
from tokenpulse.load.targets import LoadSetupError
from tokenpulse.runfolder.records import JsonlAppender, reasoning_exhausted, tally

CONFIG = """\
endpoints:
  - name: mock
    base_url: http://127.0.0.1:9/api/v1
    models:
      - {id: m/a, providers: [p1, p2]}
      - {id: m/b, providers: [p1]}
load:
  drain_s: 900
  timeouts: {total_s: 120}
"""


def options(**extra: Any) -> LoadOptions:
    parsed = SimpleNamespace(tp_config="cfg.yaml", tp_config_text=CONFIG, tp_out="/tmp/x", tp_shape="sweep",
                             tp_levels="2,4", tp_run_time=10.0, **extra)
    return LoadOptions.from_parsed(parsed)


def test_run_context_from_options_alone() -> None:
    ctx = build_context(options(tp_models="m/a"), has_users=False)
    assert [t.name for t in ctx.targets] == ["p1", "p2"]
    assert [t.key for t in ctx.targets] == [t.target.key for t in ctx.targets]  # one identity: the config's
    assert ctx.drain_s == 120.0  # load.drain_s, capped by the total timeout
    assert [s.users for s in ctx.schedule.steps] == [2, 4]
    with pytest.raises(LoadSetupError, match="--model m/z"):
        build_context(options(tp_models="m/z"), has_users=False)


def test_drain_state_rules() -> None:
    d = DrainState()
    assert d.begin("max_cost", now=100.0, drain_s=30.0)
    assert not d.begin("other", now=101.0, drain_s=1.0)  # the first reason and deadline stand
    assert d.reason == "max_cost" and not d.done(local=True, workers=1, now=110.0)
    d.drained = True
    assert d.done(local=True, workers=1, now=110.0)
    m = DrainState()
    m.begin("max_cost", now=0.0, drain_s=10.0)
    m.worker_drained("0")
    assert not m.done(local=False, workers=2, now=5.0)
    m.worker_drained("1")
    assert m.done(local=False, workers=2, now=5.0)
    late = DrainState()
    late.begin("max_cost", now=0.0, drain_s=10.0)
    assert late.done(local=False, workers=3, now=10.5)  # the deadline ends it whoever answered


def test_flush_waits_for_every_worker_asked() -> None:
    """The end of a distributed run (session.py `_workers_flushed`): asked once, done when every worker
    asked has answered; a worker that answers without being asked changes nothing."""
    f = FlushState()
    assert f.ask(100.0, {"w1", "w2"})
    assert not f.ask(101.0, {"w1", "w2", "w3"})  # asked once; the first set stands
    assert not f.done(101.0) and f.missing == {"w1", "w2"}
    f.answer("w1")
    f.answer("stranger")
    assert not f.done(102.0) and f.missing == {"w2"}
    f.answer("w2")
    assert f.done(102.0) and not f.missing


def test_flush_ends_anyway_after_the_wait() -> None:
    f = FlushState()
    f.ask(100.0, {"w1"})
    assert not f.done(100.0 + FLUSH_WAIT_S)
    assert f.done(100.0 + FLUSH_WAIT_S + 0.1) and f.timed_out(100.0 + FLUSH_WAIT_S + 0.1)
    assert f.missing == {"w1"}  # said in the warning
    empty = FlushState()
    assert empty.ask(0.0, set())
    assert empty.done(0.0)  # a master with no worker left: done at once


def test_worker_report_roundtrip_through_json() -> None:
    rec = StreamRecorder(0)
    rec.on_failure(2_000_000, ErrorClass.TIMEOUT_TTFT, "slow")
    obs = Observation.of(1, rec.result(), 0.001, 0.25)
    outbox = WorkerOutbox()
    outbox.request(obs)
    outbox.health("3", 0.5, [0.001])
    report: dict[str, Any] = {}
    outbox.flush_into(report, spent_usd=0.5, unsent=2)
    report = json.loads(json.dumps(report))
    report[REPORT_KEY]["obs"].append({"target": 0, "outcome": "from-the-future"})
    seen: list[Observation] = []
    health: list[tuple[str, float | None, list[float]]] = []
    inbox = MasterInbox(seen.append, lambda w, c, lags: health.append((w, c, lags)))
    inbox.receive("client-a", report)
    assert seen == [obs] and inbox.skipped == 1
    assert health == [("3", 0.5, [0.001])]
    again: dict[str, Any] = {}
    outbox.flush_into(again, spent_usd=0.5, unsent=0)
    assert again[REPORT_KEY]["obs"] == []  # flushed once


def test_meta_written_whole_with_seed_and_drain(tmp_path: Path) -> None:
    ctx = build_context(options(tp_arrival_seed=77), has_users=False)
    meta = build_meta(ctx, role="local", run_start=1.0)
    assert meta["drain_s"] == 120.0 and meta["arrival_seed"] == 77 and meta["options"]["levels"] == [2.0, 4.0]
    write_meta(tmp_path, meta)
    assert json.loads((tmp_path / "meta.json").read_text()) == json.loads(json.dumps(meta))
    assert "rates" not in meta  # open-loop rates come from the records only (report/summary.py)
    assert not list(tmp_path.glob(".*tmp"))
    entry = SimpleNamespace(num_requests=5, num_failures=2)
    assert locust_totals({("p1", "E2E"): entry})["e2e_requests"] == 5


def test_cancel_keeps_the_timings_reached() -> None:
    rec = StreamRecorder(0)
    rec.on_headers(1_000_000, 200, {"content-type": "text/event-stream"})
    rec.on_bytes(5_000_000, b'data: {"choices":[{"delta":{"content":"hello there"}}]}\n\n')
    rec.cancel(9_000_000, "cancelled: the load test stopped waiting for the response")
    r = rec.result()
    assert r.outcome is Outcome.CANCELLED and r.error_class is None and not r.ok
    assert r.ttfb_s == pytest.approx(0.001) and r.ttft_s == pytest.approx(0.005) and r.e2e_s == pytest.approx(0.009)
    assert r.tokens_estimated and r.output_tokens and "cancelled" in (r.error_message or "")
    done = StreamRecorder(0)  # a request that had already ended keeps its outcome
    done.on_failure(3_000_000, ErrorClass.CONNECT_ERROR, "reset")
    done.cancel(4_000_000, "late")
    assert done.result().error_class is ErrorClass.CONNECT_ERROR


def test_tally_counts_cancelled_all_failed_and_reasoning_exhausted(tmp_path: Path) -> None:
    out = JsonlAppender(tmp_path / "records-local.jsonl")
    base = {"start_time": 1.0}
    out.write({**base, "outcome": "error", "error_class": "connect_error"})
    out.write({**base, "outcome": "cancelled", "error_class": None})
    t = tally(tmp_path)
    assert t.all_failed and t.cancelled == 1 and t.error_classes == {"connect_error": 1}
    exhausted = {**base, "outcome": "ok", "ttfc_s": None, "reasoning_tokens": 64, "output_tokens": 64,
                 "output_tokens_target": 64, "finish_reason": "length"}
    assert reasoning_exhausted(exhausted)
    assert not reasoning_exhausted({**exhausted, "ttfc_s": 0.5})
    assert not reasoning_exhausted({**exhausted, "reasoning_tokens": 0})
    out.write(exhausted)
    out.close()
    t = tally(tmp_path)
    assert not t.all_failed and t.reasoning_exhausted == 1


@pytest.mark.parametrize(("shape", "given", "ok"), [
    ("rate", {"rate": 2.0, "arrival": "constant", "levels": [1.0], "step_time": 5.0}, True),
    ("sweep", {"levels": [1.0, 2.0], "step_time": 5.0}, True),
    ("sweep", {"rate": 2.0}, False),
    ("fixed", {"levels": [1.0]}, False),
    ("ramp", {"arrival": "poisson"}, False),
])
def test_shape_options(shape: str, given: dict[str, Any], ok: bool) -> None:
    args = SimpleNamespace(shape=shape, **{"rate": None, "arrival": None, "levels": None, "step_time": None, **given})
    if ok:
        check_shape_options(args)
    else:
        with pytest.raises(UsageError, match="does not apply"):
            check_shape_options(args)


def test_the_listings_provider_names_reach_every_processs_pins(tmp_path: Path) -> None:
    """The master reads the endpoints listing at the start (load/listing.py); the display names it
    returns travel in the parsed options (as Locust sends them to workers) into each LoadTarget, and
    from there into each request's pin, so a provider whose name does not contain its slug is not
    judged `wrong_provider`."""
    from tokenpulse.core.request import ChatRequest, prepare
    from tokenpulse.core.served import ProviderPin, served_matches_pin
    from tokenpulse.load.listing import save_listings
    from tokenpulse.mock import MockServerThread
    from tokenpulse.mock.farm import farm_from_data

    profile = {"ttft": {"median_ms": 20, "p99_ms": 40}, "decode": {"tokens_per_s": 500}}
    farm = farm_from_data({"seed": 1, "models": {"m/a": {
        "name": "A", "context_length": 4096, "pricing": {"prompt": 0.1, "completion": 0.2},
        "providers": {"p1": {"name": "Acme Inference", "profile": profile},
                      "p2": {"name": "P2 Cloud", "profile": profile}}}}}, "test farm")
    with MockServerThread(farm) as server:
        config = CONFIG.replace("http://127.0.0.1:9/api/v1", server.base_url).replace(
            "  - name: mock\n", "  - name: mock\n    kind: openrouter\n")
        parsed = SimpleNamespace(tp_config="cfg.yaml", tp_config_text=config, tp_out=str(tmp_path),
                                 tp_shape="fixed", tp_run_time=10.0, tp_models="m/a")
        ctx = build_context(LoadOptions.from_parsed(parsed), has_users=False)
        assert all(t.provider_names == () for t in ctx.targets)  # before the listing is read
        names = save_listings(tmp_path, ctx.targets)
    assert sorted(names) == [["mock", "m/a", "p1", "Acme Inference"], ["mock", "m/a", "p2", "P2 Cloud"]]
    assert list(tmp_path.glob("listing-*.json"))  # the matrix report's snapshot, as before
    parsed.tp_provider_names = json.dumps(names)  # what the master sets before Locust's spawn message
    worker_ctx = build_context(LoadOptions.from_parsed(parsed), has_users=True)
    by_name = {t.name: t for t in worker_ctx.targets}
    assert by_name["p1"].provider_names == ("Acme Inference",)
    p1 = by_name["p1"]
    pin = prepare(server.base_url, ChatRequest(model="m/a", messages=[], provider=p1.target.provider),
                  provider_names=p1.provider_names).pin
    assert pin == ProviderPin("p1", ("Acme Inference",))
    assert served_matches_pin(pin, "Acme Inference") is True and served_matches_pin(pin, "P2 Cloud") is False
    assert served_matches_pin(ProviderPin("p1"), "Acme Inference") is False  # the slug rule alone would fail
    for hostile in ("not json", "[[1, 2, 3, 4]]", '{"a": 1}', '[["mock", "m/a", "p1"]]'):
        parsed.tp_provider_names = hostile
        assert LoadOptions.from_parsed(parsed).provider_names == ()
