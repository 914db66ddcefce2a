"""Judging structured answers: do tool-call arguments and `json_schema` answers parse and validate?

Why one module: the load test and the prober both report a validity rate (tool calls per provider,
JSON answers per provider), and the rate only compares if both judge alike. A verdict is one of a
fixed set (`Verdict`), so it can be a metric label and a report row; the first problem found is kept
as a short message for the record (never the answer's text itself, which may be long or sensitive).

Parsing is RFC 8259 JSON (NaN and Infinity refused, as strict structured output must be); validation
is JSON Schema draft 2020-12 by `jsonschema`, against the schema the request sent. Nothing here
raises: an answer nested too deeply, or a schema jsonschema cannot apply, is a verdict too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


class Verdict(StrEnum):
    """The outcome of judging one answer (bounded: these are metric label values)."""

    VALID = "valid"
    #: the text is not JSON (or not a JSON object where one is required)
    INVALID_JSON = "invalid_json"
    #: JSON, but it does not validate against the schema
    SCHEMA_MISMATCH = "schema_mismatch"
    #: a tool call names a function the request did not define
    UNKNOWN_TOOL = "unknown_tool"
    #: the answer was cut (by the client's size bound or `finish_reason: length`): not judged
    TRUNCATED = "truncated"
    #: a tool call (or an answer) was expected and none came
    MISSING = "missing"


VERDICTS: tuple[str, ...] = tuple(v.value for v in Verdict)


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return self.verdict is Verdict.VALID


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable JSON Schema (None when it is): config validation calls this, so a
    bad schema is an exit-2 config error rather than a verdict on every answer."""
    if not isinstance(schema, Mapping):
        return "a JSON Schema must be an object"
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message[:200]}"
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> tuple[bool, Any, str | None]:
    """(ok, value, problem) for strict JSON text."""
    try:
        return True, json.loads(text, parse_constant=_reject_constant), None
    except RecursionError:
        return False, None, "nested too deeply"
    except ValueError as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return False, None, f"not JSON: {message[:120]}"


class SchemaJudge:
    """Compiled validators for one request's schemas: the `json_schema` answer's, or each tool's."""

    __slots__ = ("_answer", "_tools")

    def __init__(self, *, answer_schema: Mapping[str, Any] | None = None,
                 tool_schemas: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._answer = None if answer_schema is None else Draft202012Validator(dict(answer_schema))
        self._tools = {name: Draft202012Validator(dict(schema)) for name, schema in (tool_schemas or {}).items()}

    def judge_answer(self, text: str | None, *, truncated: bool = False) -> Judgement:
        """A `json_schema` answer (the whole content of the response)."""
        if truncated:
            return Judgement(Verdict.TRUNCATED, "answer cut short (finish_reason length)")
        if not text:
            return Judgement(Verdict.MISSING, "no answer text")
        ok, value, problem = parse_json(text)
        if not ok:
            return Judgement(Verdict.INVALID_JSON, problem)
        return self._validate(self._answer, value)

    def judge_tool_calls(self, calls: Sequence[tuple[str | None, str, bool]]) -> Judgement:
        """Every call of one response, as (function name, arguments, truncated). The response is valid
        only if every call is; the first failing call's verdict stands for it."""
        if not calls:
            return Judgement(Verdict.MISSING, "no tool call")
        for name, arguments, truncated in calls:
            if truncated:
                return Judgement(Verdict.TRUNCATED, f"arguments of {name!r} cut at the size bound")
            if name is None or name not in self._tools:
                return Judgement(Verdict.UNKNOWN_TOOL, f"call to undefined function {str(name)[:80]!r}")
            ok, value, problem = parse_json(arguments)
            if not ok:
                return Judgement(Verdict.INVALID_JSON, f"{name}: {problem}")
            if not isinstance(value, dict):
                return Judgement(Verdict.INVALID_JSON, f"{name}: arguments are not a JSON object")
            judgement = self._validate(self._tools[name], value)
            if not judgement.valid:
                return Judgement(judgement.verdict, f"{name}: {judgement.problem}")
        return Judgement(Verdict.VALID)

    @staticmethod
    def _validate(validator: Draft202012Validator | None, value: Any) -> Judgement:
        if validator is None:
            return Judgement(Verdict.VALID)
        try:
            error = next(iter(validator.iter_errors(value)), None)
        except RecursionError:
            return Judgement(Verdict.SCHEMA_MISMATCH, "nested too deeply to validate")
        except Exception as exc:  # noqa: BLE001 - jsonschema on a hostile value: a verdict, never a crash
            return Judgement(Verdict.SCHEMA_MISMATCH, f"could not validate: {type(exc).__name__}")
        if error is None:
            return Judgement(Verdict.VALID)
        # The keyword and the path only: jsonschema's message quotes the value, i.e. the answer's text.
        where = "/".join(str(p)[:40] for p in list(error.absolute_path)[:8]) or "(root)"
        return Judgement(Verdict.SCHEMA_MISMATCH, f"{where}: fails {str(error.validator)[:40]!r}")


def judge_response(judge: SchemaJudge, kind: str, *, ok: bool, text: str | None,
                   tool_calls: Sequence[Mapping[str, Any]] | None, finish_reason: str | None,
                   tool_required: bool) -> Judgement | None:
    """The verdict on one response of a `tools` or `json_schema` request (the load test's and the
    prober's rule), or None when there is nothing to judge: a failed request (it never answered), or
    a `tools` request that answered in text when a call was not required."""
    if not ok:
        return None
    truncated = finish_reason == "length"
    if kind == "json_schema":
        return judge.judge_answer(text, truncated=truncated)
    if not tool_calls:
        return Judgement(Verdict.MISSING, "no tool call") if tool_required else None
    if truncated:
        return Judgement(Verdict.TRUNCATED, "tool call cut short (finish_reason length)")
    return judge.judge_tool_calls([(c.get("name"), str(c.get("arguments") or ""), bool(c.get("truncated")))
                                   for c in tool_calls])
