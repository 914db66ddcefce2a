"""The `tools` and `json_schema` workloads: what each turn sends, and the judgement recorded with it.

`tools`: a conversation starts with a prompt that calls for the tools (`tool_choice` from the config,
`required` by default); when the model calls, and `tool_result_turn` is on, the second turn sends the
assistant's calls back with one `tool` message per call (tool_choice `auto`), and the model answers.
`json_schema`: one turn with a strict `response_format`; the answer must parse and validate.

Each request carries a `StructuredCheck`; once the result is in, `record_fields` gives the fields its
record gets (runfolder/records.py): `structured` (which workload), `tool_required`, `tool_called`,
`tool_call_count`, `validity` (a `core.schema_check.Verdict`, or null when nothing was judged: a
failed request, or an `auto` turn that chose to answer) and `validity_problem` (the first problem,
never the answer's text). The report turns these into rates with intervals (report/validity.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tokenpulse.config import Workload
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.schema_check import SchemaJudge, judge_response
from tokenpulse.core.structured import (
    BUILTIN_RESPONSE_SCHEMA,
    BUILTIN_SCHEMA_PROMPTS,
    BUILTIN_TOOL_PROMPTS,
    BUILTIN_TOOLS,
    response_format,
    tool_payload,
    tool_result,
)
from tokenpulse.load.conversation import assistant_message, can_continue

STRUCTURED_KINDS = frozenset(("tools", "json_schema"))


@dataclass(frozen=True, slots=True)
class StructuredCheck:
    """How to judge one request's answer."""

    kind: str  # tools | json_schema
    judge: SchemaJudge
    tool_required: bool = False
    #: the turn answers a tool result: its text is not judged (a plain answer is what is asked)
    answers_tool_result: bool = False

    def record_fields(self, result: StreamResult) -> dict[str, Any]:
        calls = result.tool_calls or []
        fields: dict[str, Any] = {"structured": self.kind, "validity": None, "validity_problem": None}
        if self.kind == "tools":
            fields.update(tool_required=self.tool_required, tool_called=bool(calls), tool_call_count=len(calls))
        if self.answers_tool_result:
            return fields
        judgement = judge_response(self.judge, self.kind, ok=result.ok, text=result.text, tool_calls=calls,
                                   finish_reason=result.finish_reason, tool_required=self.tool_required)
        if judgement is not None:
            fields["validity"] = judgement.verdict.value
            fields["validity_problem"] = judgement.problem
        return fields


@dataclass(frozen=True, slots=True)
class StructuredTurn:
    """What the workload sends next: messages and the structured fields of the request."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    response_format: dict[str, Any] | None
    check: StructuredCheck
    turn: int


class StructuredSpec:
    """Per process: the tools or schema in force (config or built-in) and their compiled validators."""

    def __init__(self, workload: Workload) -> None:
        self.kind = workload.kind
        self.workload = workload
        tools = [t.as_tuple() for t in workload.tools] if workload.tools else list(BUILTIN_TOOLS)
        self.tool_defs = tool_payload(tools)
        self.tool_judge = SchemaJudge(tool_schemas={name: params for name, _, params in tools})
        schema = workload.response_schema or BUILTIN_RESPONSE_SCHEMA
        self.response_format = response_format(schema)
        self.answer_judge = SchemaJudge(answer_schema=schema)
        self.tool_prompts = tuple(workload.tool_prompts or BUILTIN_TOOL_PROMPTS)
        self.schema_prompts = tuple(workload.schema_prompts or BUILTIN_SCHEMA_PROMPTS)


class StructuredConversation:
    """One user's `tools` / `json_schema` conversations: `next_turn`, then `on_result` with its result."""

    def __init__(self, spec: StructuredSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self._pending: list[dict[str, Any]] | None = None  # history of a conversation awaiting turn 2

    def next_turn(self, prefix: str | None) -> StructuredTurn:
        spec = self.spec
        head = f"[{prefix}] " if prefix else ""
        if spec.kind == "json_schema":
            prompt = head + self.rng.choice(spec.schema_prompts)
            return StructuredTurn(messages=[{"role": "user", "content": prompt}], tools=None, tool_choice=None,
                                  response_format=spec.response_format,
                                  check=StructuredCheck("json_schema", spec.answer_judge), turn=1)
        if self._pending is not None:
            messages, self._pending = self._pending, None
            return StructuredTurn(messages=messages, tools=spec.tool_defs, tool_choice="auto", response_format=None,
                                  check=StructuredCheck("tools", spec.tool_judge, answers_tool_result=True), turn=2)
        prompt = head + self.rng.choice(spec.tool_prompts)
        choice = spec.workload.tool_choice
        return StructuredTurn(messages=[{"role": "user", "content": prompt}], tools=spec.tool_defs, tool_choice=choice,
                              response_format=None,
                              check=StructuredCheck("tools", spec.tool_judge, tool_required=choice == "required"),
                              turn=1)

    def on_result(self, sent: list[dict[str, Any]], turn: int, result: StreamResult) -> None:
        """After turn 1 with tool calls: the history of turn 2 (the calls, then one result per call)."""
        self._pending = None
        if (self.spec.kind != "tools" or turn != 1 or not self.spec.workload.tool_result_turn
                or not result.tool_calls or not can_continue(result)):
            return
        history = [*sent, assistant_message(result)]
        for call in result.tool_calls:
            history.append({"role": "tool", "tool_call_id": call["id"], "content": tool_result(call["name"] or "")})
        self._pending = history
