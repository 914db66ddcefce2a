"""Long prompts of a given length: the `prefill` and `shared_prefix` workloads and trace replay.

Why a module of its own: these prompts are long (a prefill sweep goes to 100k tokens, 400 kB of text)
and must be cheap per user. The filler text of each length is built once per process and shared, as
an immutable string, by every user; a request adds only its own short prefix (and the instruction),
so a 100k-token prompt costs its bytes while it is sent and nothing per user afterwards (these
workloads keep no conversation). Lengths are sized in the server's tokens (calibration.py) and are
never larger than the model's context (`ContextLimits`).

- `prefill`: each user sends the `input_lengths` in turn (starting at a length set by its key, so
  every length is in flight at any moment, not one length per phase of the run), each prompt unique
  (a per-request prefix first), so no cache hides the prefill; the report fits TTFT against the
  server's prompt tokens (report/prefill.py).
- `shared_prefix`: a system message of `shared_prefix_tokens` tokens, the same for the whole run on
  `shared_prefix_share` of the requests (unique, same length, on the others), then a unique user
  message of `input_tokens_mean` tokens. Hits and misses then have the same length, so their TTFT
  difference is the cache's saving (report/cache.py).
- trace items: the trace's input length (Mooncake hash ids become shared blocks of text, so the
  trace's prefix reuse reaches the server's cache).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Filler texts kept per process (one per length in use; a prefill sweep has a handful).
_BODY_CACHE_ENTRIES = 16
#: Fraction of the context kept free of the prompt: calibration is an estimate and chat templates add
#: tokens, so a prompt sized to the last token could still be refused.
CONTEXT_MARGIN = 0.02


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    """The messages of one request and what they were sized to."""

    messages: list[dict[str, Any]]
    input_tokens: int
    chars: int  # characters sent (calibration input)


class ContextLimits:
    """Per model id, the context in tokens (the models listing, else the config's `context_length`)."""

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self._limits = dict(limits or {})

    def get(self, model: str) -> int | None:
        return self._limits.get(model)

    def fits(self, model: str, input_tokens: int, output_tokens: int) -> bool:
        limit = self._limits.get(model)
        return limit is None or input_tokens + output_tokens <= limit * (1.0 - CONTEXT_MARGIN)

    def lengths_for(self, model: str, lengths: Sequence[int], output_tokens: int) -> list[int]:
        """The prefill lengths this model can take with `output_tokens` of answer."""
        return [n for n in lengths if self.fits(model, n, output_tokens)]


class PromptBook:
    """Per process: the shared filler of each length, and the request builders of these workloads."""

    def __init__(self, base: str, instruction: str, *, run_id: str, limits: ContextLimits) -> None:
        self.base = base
        self.instruction = instruction
        self.run_id = run_id
        self.limits = limits
        self._bodies: OrderedDict[int, str] = OrderedDict()
        self._blocks: dict[tuple[int, int], str] = {}

    def body(self, chars: int) -> str:
        """`chars` characters of the base text (repeated as needed), built once per length."""
        if chars <= 0:
            return ""
        text = self._bodies.get(chars)
        if text is None:
            repeats = chars // (len(self.base) + 1) + 1
            text = ((self.base + " ") * repeats)[:chars] if repeats > 1 else self.base[:chars]
            self._bodies[chars] = text
            while len(self._bodies) > _BODY_CACHE_ENTRIES:
                self._bodies.popitem(last=False)
        else:
            self._bodies.move_to_end(chars)
        return text

    def unique(self, tag: str, tokens: int, chars_per_token: float) -> str:
        """A unique text of ~`tokens` tokens: `[tag] ` + shared filler + instruction."""
        head = f"[{tag}] "
        want = round(tokens * chars_per_token) - len(head) - len(self.instruction)
        return head + self.body(want) + self.instruction

    # ------------------------------------------------------------------------------ workloads
    def prefill(self, tag: str, tokens: int, chars_per_token: float) -> BuiltPrompt:
        content = self.unique(tag, tokens, chars_per_token)
        return BuiltPrompt([{"role": "user", "content": content}], tokens, len(content))

    def shared_prefix(self, tag: str, shared: bool, prefix_tokens: int, question_tokens: int,
                      chars_per_token: float) -> BuiltPrompt:
        """System message: the run's shared prefix, or a unique one of the same length; then a unique
        question. The shared prefix starts with the run id, so a new run starts cold."""
        system_tag = f"shared prefix {self.run_id}" if shared else f"{tag} own prefix"
        head = f"[{system_tag}] "
        system = head + self.body(round(prefix_tokens * chars_per_token) - len(head))
        question = self.unique(tag, question_tokens, chars_per_token)
        return BuiltPrompt([{"role": "system", "content": system}, {"role": "user", "content": question}],
                           prefix_tokens + question_tokens, len(system) + len(question))

    def trace_item(self, tag: str, input_tokens: int, hash_ids: Sequence[int] | None, block_tokens: int,
                   chars_per_token: float) -> BuiltPrompt:
        """A trace request of `input_tokens`; with Mooncake hash ids, blocks shared by id, then a unique tail."""
        if not hash_ids:
            return self.prefill(tag, input_tokens, chars_per_token)
        block_chars = round(block_tokens * chars_per_token)
        parts: list[str] = []
        budget = round(input_tokens * chars_per_token)
        for i, block_id in enumerate(hash_ids):
            if budget <= 0:
                break
            text = self._block(block_id, block_chars)
            parts.append(text[:budget] if i == len(hash_ids) - 1 or budget < len(text) else text)
            budget -= len(parts[-1])
        content = "".join(parts) + f"\n[{tag}]" + self.instruction
        return BuiltPrompt([{"role": "user", "content": content}], input_tokens, len(content))

    def _block(self, block_id: int, chars: int) -> str:
        key = (block_id, chars)
        text = self._blocks.get(key)
        if text is None:
            head = f"[block {block_id}] "
            offset = random.Random(f"block-{block_id}").randrange(max(1, len(self.base)))
            rotated = self.base[offset:] + " " + self.base[:offset]
            text = head + (rotated * (chars // max(1, len(rotated)) + 1))[:max(0, chars - len(head))]
            if len(self._blocks) < 65_536:  # a bounded cache; beyond it, blocks are rebuilt
                self._blocks[key] = text
        return text
