"""Sans-IO merging of streamed `reasoning_details` into the list a conversation must send back.

Why: OpenRouter tells clients of reasoning models to continue a conversation with the assistant's
`reasoning_details` unmodified and in order (DESIGN.md §3); providers that sign their reasoning
(`reasoning.text` with a `signature`, `reasoning.encrypted` with opaque `data`) refuse a turn whose
details were altered. A stream delivers them in pieces: every delta's `reasoning_details` is a list of
entries, each naming the detail it belongs to by `index`; the pieces of one detail carry further
characters of `text` (or `summary`, or `data`), and usually only the last carries the `signature`.
Merging, as OpenRouter's own SDK does: a piece whose `index` and `type` equal the previous detail's
extends it (strings concatenated, `signature` and other scalars taken when first given); any other
piece starts a new detail. Details keep the order in which they started.

Bounded and never raising, like the recorder: at most `MAX_DETAILS` details and `MAX_DETAIL_CHARS`
characters over all their strings; past either, `truncated` is set (the list is then not what the server
sent, and a conversation must not pass it off as unmodified). Pieces that are not objects are counted
in `malformed`.
"""

from __future__ import annotations

from typing import Any

MAX_DETAILS = 64
MAX_DETAIL_CHARS = 1024 * 1024
#: The string fields whose pieces are concatenated; any other field is kept from its first piece.
_TEXT_KEYS = ("text", "summary", "data")


class ReasoningDetailsMerger:
    """Feed it every delta's `reasoning_details` value; `details()` is the merged list."""

    __slots__ = ("_details", "_chars", "truncated", "malformed")

    def __init__(self) -> None:
        self._details: list[dict[str, Any]] = []
        self._chars = 0
        self.truncated = False
        self.malformed = 0

    def feed(self, pieces: Any) -> None:
        if not isinstance(pieces, list):
            self.malformed += 1
            return
        for piece in pieces:
            if isinstance(piece, dict):
                self._piece(piece)
            else:
                self.malformed += 1

    def _piece(self, piece: dict[str, Any]) -> None:
        last = self._details[-1] if self._details else None
        if last is not None and piece.get("index") == last.get("index") and piece.get("type") == last.get("type"):
            target = last
        else:
            if len(self._details) >= MAX_DETAILS:
                self.truncated = True
                return
            target = {}
            self._details.append(target)
        for key, value in piece.items():
            if key in _TEXT_KEYS and isinstance(value, str):
                room = MAX_DETAIL_CHARS - self._chars
                if len(value) > room:
                    value = value[:max(room, 0)]
                    self.truncated = True
                self._chars += len(value)
                previous = target.get(key)
                target[key] = previous + value if isinstance(previous, str) else value
            elif key not in target or target[key] is None:
                if isinstance(value, (dict, list)):
                    self.malformed += 1  # nested values are not part of any known detail type
                    continue
                if isinstance(value, str):
                    room = MAX_DETAIL_CHARS - self._chars
                    if len(value) > room:
                        value = value[:max(room, 0)]
                        self.truncated = True
                    self._chars += len(value)
                target[key] = value

    def details(self) -> list[dict[str, Any]]:
        """The merged details (copies: a caller may keep them in a conversation)."""
        return [dict(d) for d in self._details]

    def __bool__(self) -> bool:
        return bool(self._details)
