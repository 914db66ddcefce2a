"""Sans-IO accumulation of streamed tool calls: OpenAI / OpenRouter `delta.tool_calls` pieces in, calls out.

Why a module of its own: a streamed tool call arrives in pieces. Each `delta.tool_calls` entry names
the call it belongs to by `index` (several calls can be open at once, and their pieces interleave);
the first piece of a call carries `id`, `type` and `function.name`, the later ones only further
characters of `function.arguments`, which are concatenated. Whether the arguments are JSON and match
the tool's schema can only be judged on the whole string, so the recorder hands every piece here and
asks for the calls at the end.

Whatever the server sends, this never raises and stays bounded: at most `MAX_TOOL_CALLS` calls, names
and ids cut to `MAX_NAME_CHARS`, arguments to `MAX_ARGUMENT_CHARS` per call; a piece that is not an
object, an index that is not a small non-negative int, or a field of the wrong type is counted in
`malformed` (so a report can say so) and otherwise ignored. A cut call is marked `truncated`: its
arguments are not the ones the server sent, so they are never judged valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Calls kept per response; pieces of further calls are counted as `dropped`.
MAX_TOOL_CALLS = 16
#: Characters of one call's arguments kept (a runaway argument string must not grow without bound).
MAX_ARGUMENT_CHARS = 64 * 1024
#: Characters of a call id or function name kept.
MAX_NAME_CHARS = 256


@dataclass(slots=True)
class ToolCall:
    """One tool call as assembled from its pieces. `arguments` is the raw string the server sent."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    truncated: bool = False
    _parts: list[str] = field(default_factory=list, repr=False)
    _chars: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "name": self.name, "arguments": self.arguments,
                "truncated": self.truncated}


class ToolCallAccumulator:
    """Feed it every `delta.tool_calls` list of a stream (`feed`); read `calls()` once it ended."""

    __slots__ = ("_calls", "_order", "malformed", "dropped", "pieces")

    def __init__(self) -> None:
        self._calls: dict[int, ToolCall] = {}
        self._order: list[int] = []
        #: pieces that were not usable (not an object, bad index, wrong field types)
        self.malformed = 0
        #: pieces of calls beyond MAX_TOOL_CALLS
        self.dropped = 0
        #: usable pieces taken
        self.pieces = 0

    def feed(self, tool_calls: Any) -> int:
        """One delta's `tool_calls` value (any JSON value; only a list of objects is used). Returns the
        delta's characters (function names and arguments, of every piece that carries them, kept or
        not): the recorder's token estimate counts them, so the delta is read once."""
        if not isinstance(tool_calls, list):
            self.malformed += 1
            return 0
        return sum(self._piece(position, piece) for position, piece in enumerate(tool_calls))

    def _piece(self, position: int, piece: Any) -> int:
        if not isinstance(piece, dict):
            self.malformed += 1
            return 0
        function = piece.get("function")
        chars = _function_chars(function)
        index = piece.get("index", position)  # some servers omit it on single-call streams
        if type(index) is not int or not 0 <= index < 1_000_000:
            self.malformed += 1
            return chars
        call = self._calls.get(index)
        if call is None:
            if len(self._calls) >= MAX_TOOL_CALLS:
                self.dropped += 1
                return chars
            call = self._calls[index] = ToolCall(index=index)
            self._order.append(index)
        ok = True
        call_id = piece.get("id")
        if call_id is not None:
            if isinstance(call_id, str):
                if call.id is None and call_id:
                    call.id = call_id[:MAX_NAME_CHARS]
            else:
                ok = False
        if function is not None:
            if isinstance(function, dict):
                name = function.get("name")
                if isinstance(name, str):
                    if name and call.name is None:
                        call.name = name[:MAX_NAME_CHARS]
                elif name is not None:
                    ok = False
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    self._append(call, arguments)
                elif arguments is not None:
                    ok = False
            else:
                ok = False
        if ok:
            self.pieces += 1
        else:
            self.malformed += 1
        return chars

    @staticmethod
    def _append(call: ToolCall, text: str) -> None:
        if not text:
            return
        room = MAX_ARGUMENT_CHARS - call._chars
        if room <= 0:
            call.truncated = True
            return
        if len(text) > room:
            text = text[:room]
            call.truncated = True
        call._parts.append(text)
        call._chars += len(text)

    def calls(self) -> list[ToolCall]:
        """The calls in `index` order (the position OpenAI gives each call in the message's list),
        their arguments joined."""
        out = []
        for index in sorted(self._order):
            call = self._calls[index]
            if call._parts:
                call.arguments = "".join(call._parts)
                call._parts = [call.arguments]
            out.append(call)
        return out

    def __bool__(self) -> bool:
        return bool(self._calls)


def _function_chars(function: Any) -> int:
    """Characters of a piece's `function` name and arguments (strings only)."""
    if not isinstance(function, dict):
        return 0
    return sum(len(v) for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
