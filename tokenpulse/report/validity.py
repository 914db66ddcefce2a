"""Validity of structured answers per target: tool calls (`tools` workload) and JSON answers (`json_schema`).

What a user decides on: how often a provider's tool calls can be executed (arguments that parse and
match the tool's schema), whether it calls a tool when one is required, and how often its strict JSON
answers validate. Each rate comes with its sample size and a Wilson interval (core/stats.py); the
verdicts that were not `valid` are counted by kind (core/schema_check.py), and the time to the first
tool-call delta has its percentiles with their intervals.

Counted from the measured records (phase `measure`, or every record of a folder without a schedule),
successful requests only: a request that failed (HTTP error, timeout) never got to answer, and counts
in the error figures instead. Records are read defensively: a field of the wrong type counts as absent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from tokenpulse.core.schema_check import VERDICTS, Verdict
from tokenpulse.core.stats import distribution, proportion
from tokenpulse.runfolder.schedule import MEASURE

_VALID = Verdict.VALID.value


class _Tally:
    __slots__ = ("judged", "valid", "verdicts", "required", "called_when_required", "calls", "finish_tool_calls",
                 "first_tool_call_s")

    def __init__(self) -> None:
        self.judged = 0
        self.valid = 0
        self.verdicts: Counter[str] = Counter()
        self.required = 0
        self.called_when_required = 0
        self.calls = 0  # responses that called a tool
        self.finish_tool_calls = 0
        self.first_tool_call_s: list[Any] = []

    def add(self, r: dict[str, Any]) -> None:
        verdict = r.get("validity")
        if isinstance(verdict, str) and verdict in VERDICTS:
            self.judged += 1
            self.valid += verdict == _VALID
            if verdict != _VALID:
                self.verdicts[verdict] += 1
        called = r.get("tool_called") is True
        if r.get("tool_required") is True:
            self.required += 1
            self.called_when_required += called
        if called:
            self.calls += 1
            self.finish_tool_calls += r.get("finish_reason") == "tool_calls"
            self.first_tool_call_s.append(r.get("first_tool_call_s"))

    def figures(self, kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": proportion(self.valid, self.judged), "invalid_by_kind": dict(self.verdicts)}
        if kind == "tools":
            out["called_when_required"] = proportion(self.called_when_required, self.required)
            out["finish_tool_calls"] = proportion(self.finish_tool_calls, self.calls)
            out["first_tool_call"] = distribution(self.first_tool_call_s)
        return out


def _measured(r: dict[str, Any], scheduled: bool) -> bool:
    return not scheduled or r.get("phase") == MEASURE


def validity_summary(records: Iterable[dict[str, Any]], *, scheduled: bool = True,
                     names: Mapping[tuple[str, str, str], str] | None = None) -> dict[str, Any] | None:
    """`{kind: {target name: figures}}` for the structured kinds present, or None when the run had
    none. `names` maps (endpoint, model, provider) to the report's target names; a target it lacks is
    named `endpoint/model/provider`."""
    names = names or {}
    tallies: dict[str, dict[str, _Tally]] = {}
    for r in records:
        kind = r.get("structured")
        if kind not in ("tools", "json_schema") or r.get("outcome") != "ok" or not _measured(r, scheduled):
            continue
        triple = (str(r.get("endpoint")), str(r.get("model")), str(r.get("target_provider")))
        key = names.get(triple) or "/".join(triple)
        tallies.setdefault(kind, {}).setdefault(key, _Tally()).add(r)
    if not tallies:
        return None
    return {kind: {key: tally.figures(kind) for key, tally in sorted(per.items())} for kind, per in tallies.items()}


def _rate(p: dict[str, Any]) -> str:
    if p["rate"] is None:
        return "- (n 0)"
    return f"{p['rate']:.1%} [{p['low']:.1%}-{p['high']:.1%}] (n {p['n']})"


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


TOOL_HEADERS = ("target", "valid tool calls", "invalid by kind", "called when required", "finish tool_calls",
                "first tool call p50")
SCHEMA_HEADERS = ("target", "valid answers", "invalid by kind")
INTRO = "Successful requests of the measured windows; [low-high]: 95% Wilson interval."
TOOLS_TEXT = ("Tool calls: arguments that parse as JSON and validate against the tool's schema; called when "
              "`tool_choice: required`; `finish_reason: tool_calls` among responses that called.")
SCHEMA_TEXT = "JSON answers (`response_format: json_schema`, strict): answers that parse and validate."


def _p50(first: dict[str, Any]) -> str:
    if first.get("p50") is None:
        return "-"
    low, high = first["p50_ci"]
    ci = "?" if low is None or high is None else f"{low * 1000:.0f}-{high * 1000:.0f}"
    return f"{first['p50'] * 1000:.0f} ms [{ci}] (n {first['n']})"


def validity_tables(validity: dict[str, Any] | None) -> list[tuple[str, tuple[str, ...], list[list[str]]]]:
    """(text, headers, rows) of each table the run has: the markdown and HTML reports render these."""
    out: list[tuple[str, tuple[str, ...], list[list[str]]]] = []
    if not validity:
        return out
    tools = validity.get("tools")
    if tools:
        out.append((TOOLS_TEXT, TOOL_HEADERS, [
            [key, _rate(f["valid"]), _kinds(f["invalid_by_kind"]), _rate(f["called_when_required"]),
             _rate(f["finish_tool_calls"]), _p50(f["first_tool_call"])] for key, f in tools.items()]))
    schema = validity.get("json_schema")
    if schema:
        out.append((SCHEMA_TEXT, SCHEMA_HEADERS, [
            [key, _rate(f["valid"]), _kinds(f["invalid_by_kind"])] for key, f in schema.items()]))
    return out


def validity_markdown(validity: dict[str, Any] | None) -> list[str]:
    """The report's section (no lines when the run had no structured workload)."""
    tables = validity_tables(validity)
    if not tables:
        return []
    out = ["## Structured answers", "", INTRO, ""]
    for text, headers, rows in tables:
        out += [text, "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    return out
