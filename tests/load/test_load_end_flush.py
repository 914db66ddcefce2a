"""The end of a distributed run: the master ends only once every worker has sent its last Locust
stats, so Locust's totals count every request the records hold (the flaky count this fixes was one
request short when a worker's last report came after the master had quit)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tokenpulse.load import session as session_mod
from tokenpulse.load.session import MSG_FLUSH, MSG_FLUSHED, LoadSession
from tokenpulse.runfolder.schedule import Schedule, build_schedule


class FakeRunner:
    def __init__(self, workers: list[str]) -> None:
        self.clients = SimpleNamespace(all=[SimpleNamespace(id=w) for w in workers])
        self.user_count = 0
        self.sent: list[tuple[str, Any]] = []

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        self.sent.append((msg_type, data))

    def _send_stats(self) -> None:
        self.sent.append(("stats", None))


def _session(role: str, runner: FakeRunner) -> LoadSession:
    s = LoadSession(SimpleNamespace(runner=None, stop_timeout=0.0))  # type: ignore[arg-type]
    s.env.runner = runner
    s.role = role
    return s


def _schedule() -> Schedule:
    return build_schedule("fixed", users=4, spawn_rate=4.0, run_time_s=10.0)


def test_master_waits_for_every_worker_to_flush(monkeypatch: Any) -> None:
    clock = [100.0]
    monkeypatch.setattr(session_mod.time, "monotonic", lambda: clock[0])
    runner = FakeRunner(["w1", "w2"])
    master = _session("master", runner)
    sched = _schedule()
    assert master._end_tick(sched) == (0, sched.spawn_rate)  # first tick: ask for zero users
    clock[0] += 1
    assert master._end_tick(sched) == (0, sched.spawn_rate)  # no user left: ask for the last stats
    assert [m for m, _ in runner.sent] == [MSG_FLUSH]
    master.on_msg_flushed(None, SimpleNamespace(node_id="w1", data={}))  # type: ignore[arg-type]
    clock[0] += 1
    assert master._end_tick(sched) == (0, sched.spawn_rate)  # w2 has not answered
    master.on_msg_flushed(None, SimpleNamespace(node_id="w2", data={}))  # type: ignore[arg-type]
    assert master._end_tick(sched) is None
    assert [m for m, _ in runner.sent] == [MSG_FLUSH]  # asked once


def test_master_ends_anyway_when_a_worker_never_answers(monkeypatch: Any, caplog: Any) -> None:
    clock = [100.0]
    monkeypatch.setattr(session_mod.time, "monotonic", lambda: clock[0])
    master = _session("master", FakeRunner(["w1"]))
    sched = _schedule()
    master._end_tick(sched)
    clock[0] += 1
    assert master._end_tick(sched) is not None
    clock[0] += session_mod.FLUSH_WAIT_S + 1
    assert master._end_tick(sched) is None
    assert "did not send their last stats" in caplog.text


def test_worker_sends_stats_before_it_answers() -> None:
    runner = FakeRunner([])
    worker = _session("worker", runner)
    worker.on_msg_flush(None, SimpleNamespace(node_id="", data={}))  # type: ignore[arg-type]
    assert [m for m, _ in runner.sent] == ["stats", MSG_FLUSHED]


def test_local_run_ends_without_a_handshake(monkeypatch: Any) -> None:
    clock = [100.0]
    monkeypatch.setattr(session_mod.time, "monotonic", lambda: clock[0])
    runner = FakeRunner([])
    local = _session("local", runner)
    sched = _schedule()
    local._end_tick(sched)
    clock[0] += 1
    assert local._end_tick(sched) is None
    assert runner.sent == []
