"""History survives a prober restart: the SQLite store in `probe.state_dir` is written in batches (never
per probe), reloaded at start, bounded, and drops retired targets."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from prober_support import T0_RESULTS, config_data, make_config, result

from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.mock import MockServerThread
from tokenpulse.prober.history import HOUR_S, TargetHistory
from tokenpulse.prober.service import Prober
from tokenpulse.prober.store import FILE_NAME, MAX_ROW_BYTES, HistoryStore, encode


def test_history_survives_a_restart(farm_server: MockServerThread, tmp_path: Path) -> None:
    data = config_data(farm_server.base_url, ["fast-a", "err502"])
    data["probe"]["state_dir"] = str(tmp_path / "state")
    config = make_config(data)

    async def run(seconds: float) -> dict[str, object]:
        prober = Prober(config, interval_override=0.3, listen=None)
        await prober.start()
        try:
            await asyncio.sleep(seconds)
        finally:
            await prober.stop()  # the last batch is saved on stop
        return prober.status()

    first = asyncio.run(run(1.5))
    rows = sqlite3.connect(tmp_path / "state" / FILE_NAME).execute("SELECT target, doc FROM history").fetchall()
    assert sorted(r[0] for r in rows) == ["mock/test/chat/err502/default", "mock/test/chat/fast-a/default"]
    probes_first = {t["provider"]: t["probes"] for t in first["groups"][0]["targets"]}  # type: ignore[index]
    assert min(probes_first.values()) >= 2

    async def restarted() -> dict[str, object]:
        prober = Prober(config, interval_override=60, listen=None)  # no new probe before we look
        await prober.start()
        try:
            return prober.status()
        finally:
            await prober.stop()

    second = asyncio.run(restarted())
    targets = {t["provider"]: t for t in second["groups"][0]["targets"]}  # type: ignore[index]
    assert {p: t["probes"] for p, t in targets.items()} == probes_first
    assert targets["err502"]["uptime_1h"] == 0.0 and targets["fast-a"]["uptime_1h"] == 1.0
    assert targets["err502"]["recent_failures"][0]["count"] >= 2  # identical 502s collapsed
    # the incident (err502 went down) is still listed after the restart
    assert any(i["provider"] == "err502" and i["state"] == "down" for i in second["incidents"])  # type: ignore[union-attr]


def test_store_batches_bounds_and_deletes(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    h = TargetHistory()
    for i, r in enumerate(T0_RESULTS):
        h.record(1_800_000_000.0 + i * 60, r)
    for i in range(200):  # far more failures and successes than the history keeps
        h.record(1_800_010_000.0 + i, result(False, ErrorClass.SERVER_ERROR, ttft=None, message=f"HTTP 502 #{i}"))
        h.record(1_800_010_000.5 + i, result())
    doc = encode(h.to_dict())
    assert len(doc) < MAX_ROW_BYTES / 4  # bounded whatever the history saw (docs/prober.md states the bound)
    assert store.save({"a": doc, "b": doc, "huge": "x" * (MAX_ROW_BYTES + 1)}) == 2
    assert store.save({}, deleted=["b"]) == 0
    loaded = store.load()
    assert sorted(loaded) == ["a"]
    restored = TargetHistory()
    restored.restore(loaded["a"])
    assert json.loads(encode(restored.to_dict())) == json.loads(doc)
    assert restored.uptime(1_800_010_200.0, HOUR_S) == h.uptime(1_800_010_200.0, HOUR_S)
    store.close()


def test_an_unusable_state_dir_leaves_history_in_memory(farm_server: MockServerThread, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    data = config_data(farm_server.base_url, ["fast-a"])
    data["probe"]["state_dir"] = str(blocker / "state")  # a directory below a file cannot be made
    config = make_config(data)

    async def run() -> int:
        prober = Prober(config, interval_override=0.3, listen=None)
        await prober.start()
        try:
            await asyncio.sleep(0.8)
        finally:
            await prober.stop()
        assert prober.store is None
        return sum(t.history.probes for t in prober.runner.tracked.values())

    assert asyncio.run(run()) >= 1
