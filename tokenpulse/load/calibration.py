"""Prompt lengths in the server's tokens, not in characters / 4 (issue 12 §5).

Why: `input_tokens_mean: 512` used to mean 2,048 characters, which is 512 tokens only for a tokenizer
that averages 4 characters per token on the filler text; real tokenizers differ by tens of percent.
The server says how many tokens a prompt was (`usage.prompt_tokens`), so each process learns, per
model, how many characters of its prompts make one token, from its own successful requests, and
sizes the next synthetic prompts with it. The warm-up requests (excluded from the figures) do most of
the learning.

The estimate is characters sent / prompt tokens billed, smoothed over requests. With a chat template
that adds a fixed number of tokens, this is not the tokenizer's true ratio, but its fixed point is the
one that matters: sizing a prompt with `target x chars_sent / tokens_billed` makes the billed tokens
equal to the target. Records keep `input_tokens_target` beside the server's `prompt_tokens`.

Sans-IO and cheap: one division and one multiply-add per finished request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The starting assumption (and what a server without usage leaves in force).
DEFAULT_CHARS_PER_TOKEN = 4.0
#: Weight of each new request in the running estimate: converges in a handful of requests, and one
#: odd response cannot move it far.
SMOOTHING = 0.3
#: Ratios outside this range are not a tokenizer's (an empty usage, a cached or truncated prompt).
_MIN_RATIO, _MAX_RATIO = 0.5, 16.0


@dataclass(slots=True)
class PromptCalibration:
    default: float = DEFAULT_CHARS_PER_TOKEN
    _ratio: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)

    def chars_per_token(self, model: str) -> float:
        return self._ratio.get(model, self.default)

    def observe(self, model: str, prompt_chars: int, prompt_tokens: int | None) -> None:
        """One successful request's prompt: its characters and the server's token count."""
        if not prompt_tokens or prompt_chars <= 0:
            return
        ratio = prompt_chars / prompt_tokens
        if not _MIN_RATIO <= ratio <= _MAX_RATIO:
            return
        old = self._ratio.get(model)
        self._ratio[model] = ratio if old is None else old + SMOOTHING * (ratio - old)
        self.samples[model] = self.samples.get(model, 0) + 1
