"""One short real Locust run of the `tools` workload: every record carries its judgement, turn 2 answers
the tool's result, and the report has the structured-answers figures (the logic itself is tested
in-process: tests/mock/test_mock_structured.py)."""

from __future__ import annotations

from pathlib import Path

from load_helpers import records, summary, tokenpulse, write_config

from tokenpulse.mock import MockServerProcess


def test_tools_workload_records_and_report(mock: MockServerProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer", "steadystack"],
                          workload={"kind": "tools", "output_tokens_mean": 256, "fixed_output": False})
    out = tmp_path / "run"
    tokenpulse("load", "--config", str(config), "--users", "6", "--run-time", "5s", "--out", str(out), "--quiet",
               "--metrics-port", "0")
    rows = [r for r in records(out) if r["outcome"] == "ok"]
    first = [r for r in rows if r["turn"] == 1]
    second = [r for r in rows if r["turn"] == 2]
    assert first and second
    for r in first:
        assert r["structured"] == "tools" and r["tool_required"] and r["tool_called"]
        assert r["validity"] in ("valid", "invalid_json", "schema_mismatch") and r["first_tool_call_s"] > 0
        assert r["finish_reason"] == "tool_calls" and r["tool_calls"][0]["name"] in ("get_weather", "search_flights")
        assert "arguments" not in r["tool_calls"][0]  # a record keeps sizes, never the model's arguments
    for r in second:
        assert r["validity"] is None and not r["tool_called"] and r["finish_reason"] == "stop"
    # turn 2 carries the history: the call and its result come back, so its prompt is longer
    assert min(r["prompt_tokens"] for r in second) > min(r["prompt_tokens"] for r in first)
    validity = summary(out)["validity"]["tools"]
    assert set(validity) <= {"swiftinfer", "steadystack"} and validity
    assert sum(v["valid"]["n"] for v in validity.values()) == sum(1 for r in first if r["phase"] == "measure")
    assert "## Structured answers" in (out / "report.md").read_text(encoding="utf-8")
