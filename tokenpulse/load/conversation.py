"""What a conversation sends back: the assistant's message of a finished turn, as the next turn's history.

Why its own module: a reasoning model's next turn must carry the assistant's `reasoning_details`
unmodified and in order (OpenRouter's rule for reasoning models, DESIGN.md §3); providers that sign
their reasoning refuse a turn whose details changed, and the others lose the reasoning context. The
plain multi-turn workload and the `tools` workload both continue conversations, so both build the
message here: the answer's text, its tool calls (id, name and arguments exactly as streamed), and
the merged `reasoning_details` the recorder kept (core/reasoning_details.py). When a server sent only
reasoning text (`reasoning` / `reasoning_content`, no structured details), that text goes back as
`reasoning`, which OpenRouter accepts on assistant messages.
"""

from __future__ import annotations

from typing import Any

from tokenpulse.core.recorder import StreamResult


def can_continue(result: StreamResult) -> bool:
    """A turn a conversation can build on: it succeeded, said something (text or a tool call), and its
    reasoning details are whole (cut ones cannot be sent back unmodified, so the conversation ends)."""
    return result.ok and bool(result.text or result.tool_calls) and not result.reasoning_details_truncated


def assistant_message(result: StreamResult) -> dict[str, Any]:
    """The assistant message of `result` for the next turn's `messages`."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text or ""}
    if result.tool_calls:
        message["content"] = result.text or None
        message["tool_calls"] = [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            for call in result.tool_calls]
    if result.reasoning_details:
        message["reasoning_details"] = result.reasoning_details
    elif result.reasoning_text:
        message["reasoning"] = result.reasoning_text
    return message
