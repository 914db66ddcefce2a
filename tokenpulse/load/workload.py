"""What load-test users send: synthetic prompts of a target length, or conversations from a dataset.

Why it matters for the figures: TTFT grows with the prompt and E2E with the answer, so a load test must
control both lengths (mean and spread) and must not be flattered by prompt caching. So:

- Synthetic prompts are built to ~N tokens at 4 characters per token (the recorder's own estimate, so a
  server without `usage` and our targets agree), from one shared base text. With `unique_prefix` (the
  default) every request starts with a prefix unique to the run, user and request, which defeats prefix
  caching; without it all requests share the same start, so a cache *can* hit (measure both).
- Answer length: `max_tokens` drawn per request; `fixed_output` adds `min_tokens` and `ignore_eos`, which
  vLLM-style servers honour, so every answer has exactly `max_tokens` tokens.
- Datasets: JSONL (or a JSON array) of OpenAI `messages` lists, `{"messages": [...]}` objects, or
  ShareGPT records (`{"conversations": [{"from": "human", "value": ...}, ...]}`), read as they are (the
  import is the reader). A reference reply's length becomes `max_tokens`, as vLLM's benchmark does.
- Multi-turn: a conversation of `turns` requests; each turn resends the history with the model's own
  answers (so later turns have long prompts that share the conversation's prefix, as real chats do).

Everything random comes from `random.Random` seeded by the workload seed and the user key, so a run's
prompt lengths replay; only the unique prefix (which includes the run id) differs between runs.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpulse.config import Target, Workload
from tokenpulse.core.recorder import CHARS_PER_TOKEN_ESTIMATE, StreamResult
from tokenpulse.core.request import ChatRequest
from tokenpulse.load.calibration import PromptCalibration
from tokenpulse.load.conversation import assistant_message, can_continue
from tokenpulse.load.prompts import BuiltPrompt, ContextLimits, PromptBook
from tokenpulse.load.structured import STRUCTURED_KINDS, StructuredCheck, StructuredConversation, StructuredSpec
from tokenpulse.load.trace import MOONCAKE_BLOCK_TOKENS, TraceItem

CHARS_PER_TOKEN = int(CHARS_PER_TOKEN_ESTIMATE)
#: Synthetic prompts end with this, so a real model answers at length when ignore_eos is not honoured.
INSTRUCTION = "\nContinue the text above at length."
#: The shared base text is this long (in tokens); longer prompts repeat it.
_BASE_TOKENS = 8192

_VOCABULARY = ["the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his", "her", "this", "which", "are", "have", "an", "be", "not", "but", "they", "one", "all", "were", "had", "their", "there", "has", "been", "more", "when", "who", "will", "would", "no", "out", "so", "up", "said", "what", "its", "about", "into", "than", "them", "can", "only", "other", "new", "some", "could", "time", "these", "two", "may", "then", "first", "any", "like", "now", "my", "such", "make", "over", "our", "even", "most", "after", "also", "did", "many", "before", "must", "through", "back", "years", "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those", "people", "how", "too", "little", "state", "good", "very", "world", "still", "own", "see", "men", "work", "long", "here", "get", "both", "between", "life", "being", "under", "never", "day", "same", "another", "know", "while", "last", "might", "us", "great", "old", "year", "off", "come", "since", "against", "go", "came", "right", "used", "take", "three", "river", "mountain", "harbour", "signal", "engine", "garden", "letter", "window", "market", "summer", "winter", "lantern", "compass", "valley", "thunder", "meadow", "orchard"]  # noqa: E501 -- data, not code: the seeded filler vocabulary (its order fixes every prompt)

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant",
                   "bard": "assistant", "bing": "assistant", "assistant": "assistant", "model": "assistant",
                   "system": "system"}


class DatasetError(ValueError):
    """A dataset file that cannot be used; `str()` is `file:line: problem`."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One user turn and, when the dataset has it, the reference reply (its length sets max_tokens)."""

    user: Any  # str or a list of content parts, as OpenAI accepts
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class DatasetConversation:
    system: tuple[Mapping[str, Any], ...]
    exchanges: tuple[Exchange, ...]


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request a user is about to send, and what the workload asked for (recorded with it)."""

    chat: ChatRequest
    turn: int
    input_tokens_target: int
    output_tokens_target: int
    keep_text: bool
    #: `tools` / `json_schema`: how the answer is judged (load/structured.py); None otherwise.
    check: StructuredCheck | None = None


def sample_length(rng: random.Random, mean: int, stddev: int) -> int:
    """A token count from Normal(mean, stddev), at least 1 and at most mean + 4 stddev (no wild tails)."""
    if stddev <= 0:
        return max(1, mean)
    value = round(rng.gauss(mean, stddev))
    return max(1, min(value, mean + 4 * stddev))


def base_text(seed: int, tokens: int = _BASE_TOKENS) -> str:
    """Deterministic filler of `tokens * 4` characters (words of a small vocabulary)."""
    rng = random.Random(f"tokenpulse-base-{seed}")
    target = tokens * CHARS_PER_TOKEN
    words: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(_VOCABULARY)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:target]


def synthetic_prompt(base: str, tokens: int, prefix: str | None,
                     chars_per_token: float = CHARS_PER_TOKEN) -> str:
    """A prompt of ~`tokens` tokens (`chars_per_token` characters each, calibration.py): [prefix] +
    slice of the base text + instruction.

    The prefix and the instruction count towards the length; below their own size the prompt is just
    them (a floor of roughly 10 tokens)."""
    head = f"[{prefix}] " if prefix else ""
    want = round(tokens * chars_per_token) - len(head) - len(INSTRUCTION)
    body = ""
    if want > 0:
        repeats = want // len(base) + 1
        body = (base + " ") * repeats if repeats > 1 else base
        body = body[:want]
    return head + body + INSTRUCTION


# ------------------------------------------------------------------------------------------ datasets
def load_dataset(path: str | Path) -> list[DatasetConversation]:
    """Read a JSONL file or a JSON array of conversations in any of the accepted record formats."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{source}: cannot read: {exc.strerror or exc}") from None
    records: list[tuple[int, Any]]
    stripped = text.lstrip()
    whole: Any = None
    if stripped.startswith("["):
        try:
            whole = json.loads(text)
        except (ValueError, RecursionError):
            whole = None  # JSONL whose lines are bare message lists (or nesting too deep: reported by line)
    if isinstance(whole, list) and whole and all(isinstance(m, dict) and "role" in m for m in whole):
        records = [(1, whole)]  # a one-line JSONL file holding one bare message list
    elif isinstance(whole, list) and whole and all(isinstance(r, dict) for r in whole):
        records = [(i + 1, r) for i, r in enumerate(whole)]  # a JSON array: "line" is the record number
    else:
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((lineno, json.loads(line)))
            except (ValueError, RecursionError) as exc:
                # JSONDecodeError has a bare `msg`; a plain ValueError (an integer past Python's 4300-digit
                # limit) has only its text; RecursionError is nesting past the interpreter's limit.
                problem = (exc.msg if isinstance(exc, json.JSONDecodeError) else
                           "nested too deeply" if isinstance(exc, RecursionError) else str(exc))
                raise DatasetError(f"{source}:{lineno}: invalid JSON: {problem}") from None
    conversations = []
    for lineno, record in records:
        try:
            conversation = parse_record(record)
        except ValueError as exc:
            raise DatasetError(f"{source}:{lineno}: {exc}") from None
        if conversation is not None:
            conversations.append(conversation)
    if not conversations:
        raise DatasetError(f"{source}: no usable conversation (each needs at least one user message)")
    return conversations


def parse_record(record: Any) -> DatasetConversation | None:
    """One dataset record -> conversation; None when it has no user message (skipped, as vLLM does)."""
    if isinstance(record, list):
        messages = record
    elif isinstance(record, dict) and isinstance(record.get("messages"), list):
        messages = record["messages"]
    elif isinstance(record, dict) and isinstance(turns := record.get("conversations", record.get("conversation")),
                                                 list):
        messages = [_sharegpt_message(m) for m in turns]
    else:
        raise ValueError("expected a list of messages, {\"messages\": [...]} or a ShareGPT record "
                         "({\"conversations\": [{\"from\": ..., \"value\": ...}]})")
    system: list[Mapping[str, Any]] = []
    exchanges: list[Exchange] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise ValueError(f"message {i} needs a role")
        role, content = message["role"], message.get("content")
        if role == "system" and not exchanges:
            system.append({"role": "system", "content": content})
        elif role == "user":
            if content is None or content == "":
                continue
            exchanges.append(Exchange(user=content))
        elif role == "assistant" and exchanges and exchanges[-1].reply is None:
            reply = content if isinstance(content, str) else None
            exchanges[-1] = Exchange(user=exchanges[-1].user, reply=reply)
    if not exchanges:
        return None
    return DatasetConversation(system=tuple(system), exchanges=tuple(exchanges))


def _sharegpt_message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise ValueError("ShareGPT turns must be objects with from/value")
    speaker = str(message.get("from", "")).lower()
    role = _SHAREGPT_ROLES.get(speaker)
    if role is None:
        raise ValueError(f"unknown ShareGPT speaker {message.get('from')!r}")
    return {"role": role, "content": message.get("value")}


# ------------------------------------------------------------------------------------------ generator
class WorkloadGenerator:
    """Per-process: holds the base text and the dataset; hands each user its own seeded stream."""

    def __init__(self, workload: Workload, *, run_id: str, dataset: Sequence[DatasetConversation] | None = None,
                 dataset_base_dir: Path | None = None, context: Mapping[str, int] | None = None) -> None:
        self.workload = workload
        self.run_id = run_id
        self.base = base_text(workload.seed)
        if workload.kind == "dataset" and dataset is None:
            path = Path(workload.dataset or "")
            if not path.is_absolute() and dataset_base_dir is not None:
                path = dataset_base_dir / path
            dataset = load_dataset(path)
        self.dataset = list(dataset) if dataset is not None else None
        #: Synthetic prompts are sized in the server's tokens once it has told us some (calibration.py).
        self.calibration = PromptCalibration()
        #: Long prompts (prefill, shared_prefix, trace replay): shared filler, context limits (prompts.py).
        self.prompts = PromptBook(self.base, INSTRUCTION, run_id=run_id, limits=ContextLimits(context))
        self.structured = StructuredSpec(workload) if workload.kind in STRUCTURED_KINDS else None

    def for_user(self, user_key: str) -> UserWorkload:
        return UserWorkload(self, user_key)


@dataclass(slots=True)
class _Conversation:
    messages: list[dict[str, Any]] = field(default_factory=list)
    turn: int = 0
    exchanges: tuple[Exchange, ...] = ()  # dataset conversations only
    turns: int = 1


class UserWorkload:
    """One user's request stream. Call `next_request`, send it, then `on_result` (multi-turn needs it)."""

    def __init__(self, generator: WorkloadGenerator, user_key: str) -> None:
        self.gen = generator
        self.user_key = user_key
        self.rng = random.Random(f"{generator.workload.seed}:{user_key}")
        self.sent = 0
        self.conv: _Conversation | None = None
        #: (model, characters) of the last request when its prompt can calibrate (a synthetic first turn).
        self._calibrating: tuple[str, int] | None = None
        self._structured = (None if generator.structured is None else
                            StructuredConversation(generator.structured, self.rng))
        self._last_structured: tuple[list[dict[str, Any]], int] | None = None

    def _prefix(self) -> str | None:
        if not self.gen.workload.unique_prefix:
            return None
        return f"{self.gen.run_id}-{self.user_key}-{self.sent}-{self.rng.getrandbits(32):08x}"

    def next_request(self, target: Target) -> PlannedRequest:
        if self._structured is not None:
            return self._next_structured(target)
        w = self.gen.workload
        if w.kind in ("prefill", "shared_prefix"):
            return self._long_prompt(target)
        if self.conv is None or self.conv.turn >= self.conv.turns:
            self.conv = self._new_conversation()
        conv = self.conv
        conv.turn += 1
        out_tokens = sample_length(self.rng, w.output_tokens_mean, w.output_tokens_stddev)
        if conv.exchanges:
            exchange = conv.exchanges[conv.turn - 1]
            user_content = exchange.user
            if conv.turn == 1 and w.unique_prefix:
                conv.messages, user_content = _prefixed(conv.messages, user_content, self._prefix())
            in_tokens = math.ceil(_content_chars(user_content) / CHARS_PER_TOKEN)
            if exchange.reply:
                out_tokens = max(1, math.ceil(len(exchange.reply) / CHARS_PER_TOKEN))
        else:
            in_tokens = sample_length(self.rng, w.input_tokens_mean, w.input_tokens_stddev)
            prefix = self._prefix() if conv.turn == 1 else None
            model = target.model.id
            user_content = synthetic_prompt(self.gen.base, in_tokens, prefix,
                                            self.gen.calibration.chars_per_token(model))
            # Only a lone first turn says how the server counts our characters (later turns carry history).
            self._calibrating = (model, len(user_content)) if conv.turn == 1 and not conv.messages else None
        conv.messages.append({"role": "user", "content": user_content})
        self.sent += 1
        return PlannedRequest(chat=self._chat(target, list(conv.messages), out_tokens), turn=conv.turn,
                              input_tokens_target=in_tokens, output_tokens_target=out_tokens,
                              keep_text=conv.turns > 1)

    def _chat(self, target: Target, messages: list[dict[str, Any]], out_tokens: int) -> ChatRequest:
        w = self.gen.workload
        # The pin, require_parameters and a route's preference merge with the workload's own
        # `extra_body.provider` in one place (config.split_pinned_routing), never replaced by it.
        routing, extra_body = target.routing(w.extra_body)
        return ChatRequest(
            model=target.request_model,
            messages=messages,
            max_tokens=out_tokens,
            temperature=w.temperature,
            reasoning=w.reasoning.to_request() if w.reasoning else None,
            provider=target.pinned_provider,
            provider_routing=routing,
            min_tokens=out_tokens if w.fixed_output else None,
            ignore_eos=True if w.fixed_output else None,
            extra_body=extra_body,
        )

    def _long_prompt(self, target: Target) -> PlannedRequest:
        """`prefill` or `shared_prefix` (prompts.py): one-turn requests, each prompt unique where it
        must be; the conversation is not kept (a 100k-token prompt is not held between requests)."""
        w = self.gen.workload
        model = target.model.id
        book = self.gen.prompts
        out_tokens = sample_length(self.rng, w.output_tokens_mean, w.output_tokens_stddev)
        ratio = self.gen.calibration.chars_per_token(model)
        tag = f"{self.gen.run_id}-{self.user_key}-{self.sent}-{self.rng.getrandbits(32):08x}"
        if w.kind == "prefill":
            lengths = book.limits.lengths_for(model, w.input_lengths, w.output_tokens_mean) or [min(w.input_lengths)]
            start = self.rng_offset(len(lengths))
            built = book.prefill(tag, lengths[(start + self.sent) % len(lengths)], ratio)
        else:
            shared = self.rng.random() < w.shared_prefix_share
            built = book.shared_prefix(tag, shared, w.shared_prefix_tokens,
                                       sample_length(self.rng, w.input_tokens_mean, w.input_tokens_stddev), ratio)
        return self._one_turn(target, built, out_tokens)

    def rng_offset(self, n: int) -> int:
        """Where this user starts in a list of n (fixed per user), so users spread over the list."""
        return random.Random(f"offset:{self.user_key}").randrange(1 << 30) % n

    def replay(self, target: Target, item: TraceItem) -> PlannedRequest:
        """One request of a replayed trace (trace.py): its messages as they are, or a prompt of its length."""
        ratio = self.gen.calibration.chars_per_token(target.model.id)
        tag = f"{self.gen.run_id}-{self.user_key}-{self.sent}-{self.rng.getrandbits(32):08x}"
        if item.messages is not None:
            messages = [dict(m) for m in item.messages]
            built = BuiltPrompt(messages, item.input_tokens, sum(_content_chars(m.get("content")) for m in messages))
        else:
            built = self.gen.prompts.trace_item(tag, item.input_tokens, item.hash_ids, MOONCAKE_BLOCK_TOKENS, ratio)
        return self._one_turn(target, built, item.output_tokens, calibrate=item.messages is None)

    def _one_turn(self, target: Target, built: BuiltPrompt, out_tokens: int, *,
                  calibrate: bool = True) -> PlannedRequest:
        self.conv = None
        self._calibrating = (target.model.id, built.chars) if calibrate else None
        self.sent += 1
        return PlannedRequest(chat=self._chat(target, built.messages, out_tokens), turn=1,
                              input_tokens_target=built.input_tokens, output_tokens_target=out_tokens,
                              keep_text=False)

    def _next_structured(self, target: Target) -> PlannedRequest:
        """A `tools` or `json_schema` turn (load/structured.py)."""
        assert self._structured is not None
        w = self.gen.workload
        turn = self._structured.next_turn(self._prefix())
        out_tokens = sample_length(self.rng, w.output_tokens_mean, w.output_tokens_stddev)
        self.sent += 1
        self._last_structured = (turn.messages, turn.turn)
        chat = ChatRequest(
            model=target.model.id, messages=list(turn.messages), max_tokens=out_tokens, temperature=w.temperature,
            reasoning=w.reasoning.to_request() if w.reasoning else None, provider=target.pinned_provider,
            extra_body=dict(w.extra_body), tools=turn.tools, tool_choice=turn.tool_choice,
            response_format=turn.response_format,
        )
        in_tokens = math.ceil(chat.prompt_chars() / CHARS_PER_TOKEN)
        return PlannedRequest(chat=chat, turn=turn.turn, input_tokens_target=in_tokens,
                              output_tokens_target=out_tokens, keep_text=True, check=turn.check)

    def on_result(self, result: StreamResult) -> None:
        """Learn the prompt's length in tokens; continue the conversation with the model's own answer
        (its reasoning_details unmodified: load/conversation.py), or end it when the turn failed."""
        calibrating, self._calibrating = self._calibrating, None
        if calibrating is not None and result.ok and not result.tokens_estimated:
            self.gen.calibration.observe(calibrating[0], calibrating[1], result.prompt_tokens)
        if self._structured is not None and self._last_structured is not None:
            sent, turn = self._last_structured
            self._structured.on_result(sent, turn, result)
            return
        conv = self.conv
        if conv is None or conv.turns <= 1:
            return
        if not can_continue(result) or not result.text:
            self.conv = None  # a broken conversation restarts; its history would be meaningless
            return
        conv.messages.append(assistant_message(result))

    def _new_conversation(self) -> _Conversation:
        w = self.gen.workload
        if self.gen.dataset is not None:
            record = self.gen.dataset[self.rng.randrange(len(self.gen.dataset))]
            turns = min(w.turns, len(record.exchanges))
            return _Conversation(messages=[dict(m) for m in record.system], exchanges=record.exchanges,
                                 turns=turns)
        return _Conversation(turns=w.turns)


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(str(p.get("text", ""))) for p in content if isinstance(p, Mapping))
    return 0


def _prefixed(messages: list[dict[str, Any]], user_content: Any,
              prefix: str | None) -> tuple[list[dict[str, Any]], Any]:
    """Put the unique prefix at the very start of the prompt (system message if any, else the user's)."""
    if not prefix:
        return messages, user_content
    tag = f"[{prefix}] "
    if messages:
        first = dict(messages[0])
        first["content"] = _prepend(first.get("content"), tag)
        return [first, *messages[1:]], user_content
    return messages, _prepend(user_content, tag)


def _prepend(content: Any, tag: str) -> Any:
    if isinstance(content, list):
        return [{"type": "text", "text": tag}, *content]
    return tag + (content or "")
