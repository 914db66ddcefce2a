"""The report's structured-answers figures: rates with n and Wilson intervals, verdict counts, and only
the measured, successful requests counted; hostile field values count as absent."""

from __future__ import annotations

from typing import Any

from tokenpulse.report.validity import validity_markdown, validity_summary


def rec(provider: str, **fields: Any) -> dict[str, Any]:
    return {"endpoint": "mock", "model": "m", "target_provider": provider, "outcome": "ok", "phase": "measure",
            **fields}


def test_rates_per_target_with_intervals() -> None:
    tools = [rec("a", structured="tools", validity="valid", tool_required=True, tool_called=True,
                 finish_reason="tool_calls", first_tool_call_s=0.2) for _ in range(18)]
    tools += [rec("a", structured="tools", validity="invalid_json", tool_required=True, tool_called=True,
                  finish_reason="tool_calls", first_tool_call_s=0.3),
              rec("a", structured="tools", validity="missing", tool_required=True, tool_called=False,
                  finish_reason="stop")]
    tools += [rec("a", structured="tools", validity="valid", tool_required=True, tool_called=True, outcome="error"),
              rec("a", structured="tools", validity="valid", tool_required=True, tool_called=True, phase="warmup"),
              rec("a", structured="tools", validity=["valid"], tool_required="yes", tool_called=1),
              rec("a", structured="tools", validity=None, tool_required=False, tool_called=False)]  # turn 2
    answers = [rec("b", structured="json_schema", validity="valid") for _ in range(9)]
    answers.append(rec("b", structured="json_schema", validity="schema_mismatch"))
    summary = validity_summary([*tools, *answers, rec("c")])
    assert summary is not None and set(summary) == {"tools", "json_schema"}
    t = summary["tools"]["mock/m/a"]
    assert (t["valid"]["k"], t["valid"]["n"]) == (18, 20)  # failed, warm-up and malformed records left out
    assert t["valid"]["low"] < 0.9 < t["valid"]["high"] and t["invalid_by_kind"] == {"invalid_json": 1, "missing": 1}
    assert (t["called_when_required"]["k"], t["called_when_required"]["n"]) == (19, 20)
    assert t["finish_tool_calls"]["rate"] == 1.0 and t["first_tool_call"]["n"] == 19
    j = summary["json_schema"]["mock/m/b"]
    assert (j["valid"]["k"], j["valid"]["n"]) == (9, 10) and j["invalid_by_kind"] == {"schema_mismatch": 1}
    text = "\n".join(validity_markdown(summary))
    assert "## Structured answers" in text and "90.0% [" in text and "(n 20)" in text and "(n 10)" in text
    assert validity_summary([rec("c")]) is None and validity_markdown(None) == []
