"""Every request that was sent has exactly one record (issue 12 §1): real short headless Locust runs
against a mock of their own, whose `/_mock/stats` counts the requests it received and the completion
tokens it put on the wire (`tokens_sent`), finished or not.

No timing assertion: records are compared with the server's own counters, and the steps of a sweep at
one level with each other (within a few standard deviations of a count)."""

from __future__ import annotations

import json
import math
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from load_helpers import records, tokenpulse, write_config

from tokenpulse.mock import MockServerProcess

pytestmark = pytest.mark.slow

#: TTFT ~1.8 s, 30 tokens/s: with 64-token answers a request lasts ~4 s, so a short run always ends
#: with every user's request in flight (the requests that were dropped before, and the slowest ones).
SLOW = "tortoiselabs"
#: ~0.35 s TTFT, 60 tokens/s: many requests per step, for comparing the steps of a sweep.
STEADY = "steadystack"


@pytest.fixture()
def own_mock() -> Iterator[MockServerProcess]:
    """A mock per test: its counters then hold exactly that test's run."""
    with MockServerProcess() as srv:
        yield srv


def provider_stats(srv: MockServerProcess, provider: str) -> dict[str, Any]:
    root = srv.base_url.split("/api/")[0].split("/v1")[0]
    with urllib.request.urlopen(f"{root}/_mock/stats", timeout=10) as resp:
        return dict(json.loads(resp.read())["providers"][provider])


def run_load(srv: MockServerProcess, tmp: Path, provider: str, *args: str,
             load: dict[str, Any] | None = None) -> tuple[Path, int]:
    config = write_config(tmp / "cfg.yaml", srv.base_url, [provider], workload={"output_tokens_mean": 64})
    if load:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["load"].update(load)
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp / "run"
    proc = tokenpulse("load", "--config", str(config), "--out", str(out), "--metrics-port", "0", "--quiet", *args,
                      check=False)
    assert (out / "meta.json").exists(), proc.stderr
    return out, proc.returncode


def output_tokens(rows: list[dict[str, Any]]) -> int:
    return sum(r.get("output_tokens") or 0 for r in rows)


def test_fixed_run_records_every_request_and_every_token(own_mock: MockServerProcess, tmp_path: Path) -> None:
    out, code = run_load(own_mock, tmp_path, SLOW, "--users", "16", "--run-time", "8s")
    assert code == 0
    rows = records(out)
    stats = provider_stats(own_mock, SLOW)
    assert len(rows) == stats["requests"] > 16
    assert stats["tokens_sent"] > 0
    assert abs(output_tokens(rows) - stats["tokens_sent"]) <= 0.01 * stats["tokens_sent"]
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["drain_s"] == 60.0 and meta["locust"]["e2e_requests"] == len(rows)


def test_sweep_at_one_level_gives_the_same_count_per_step(own_mock: MockServerProcess, tmp_path: Path) -> None:
    # The exit code is the report's business (a knee over two equal levels): only the records count here.
    out, _ = run_load(own_mock, tmp_path, STEADY, "--shape", "sweep", "--levels", "16,16", "--step-time", "8s")
    rows = records(out)
    stats = provider_stats(own_mock, STEADY)
    assert len(rows) == stats["requests"]
    assert abs(output_tokens(rows) - stats["tokens_sent"]) <= 0.01 * stats["tokens_sent"]
    per_step = Counter(r["step"] for r in rows)
    assert set(per_step) == {0, 1}
    first, second = per_step[0], per_step[1]
    # Each step counts the requests *sent* in it (those still running at its end included): the two
    # counts differ by noise only, a few standard deviations of a count of that size.
    assert first > 30 and abs(first - second) <= 3 * math.sqrt((first + second) / 2), per_step
    for row in rows:  # a request belongs to the step in which it was sent (the last one: or after its end)
        step = meta_step(out, row["step"])
        assert step["start_s"] <= row["t_s"] and (row["t_s"] < step["start_s"] + step["duration_s"] or row["step"] == 1)


def meta_step(out: Path, index: int) -> dict[str, Any]:
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    return dict(meta["schedule"]["steps"][index])


def test_no_drain_records_the_requests_cut_off_as_cancelled(own_mock: MockServerProcess, tmp_path: Path) -> None:
    out, code = run_load(own_mock, tmp_path, SLOW, "--users", "8", "--run-time", "5s", load={"drain_s": 0})
    assert code == 0
    rows = records(out)
    stats = provider_stats(own_mock, SLOW)
    assert len(rows) == stats["requests"]  # every request the server saw has its record
    cancelled = [r for r in rows if r["outcome"] == "cancelled"]
    assert cancelled, Counter(r["outcome"] for r in rows)
    for r in cancelled:
        assert r["error_class"] is None and "cancelled" in r["error_message"]
        assert r["e2e_s"] is not None and r["e2e_s"] > 0  # the time it reached
        assert r["step"] == 0
    reached_tokens = [r for r in cancelled if r["ttft_s"] is not None]
    assert all(r["tokens_estimated"] for r in reached_tokens)
    # Locust's table has one entry per request: a cancelled one is a failure named "cancelled".
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["locust"]["e2e_requests"] == len(rows)
