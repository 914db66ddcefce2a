"""Seeded sampling of one generation: what is said (tokens, reasoning, finish) and when (TTFT, gaps).

Why a separate, pure module: everything random about a request is decided here, up front, from
`random.Random` instances derived from the farm seed, so a run is reproducible and the server only
executes a plan. Two independent streams keep the properties the tests rely on:

- the *text* stream (content words, natural length) depends only on the farm seed, the model and the
  request's `seed` (or the prompt when temperature is 0, or the request number otherwise), so the same
  seed gives the same answer on every provider, streamed or not;
- the *timing* stream (TTFT, speed, chunking, fault position) depends on the request number and the
  provider, so latencies vary per request but replay identically for the same request sequence.

Tokens are words of a small vocabulary, one token each, so the token counts in `usage` are exactly
what was sent.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, NamedTuple

from tokenpulse.mock.farm import ErrorMix, ModelSpec, ProviderSpec, StructuredProfile
from tokenpulse.mock.request import ChatRequest
from tokenpulse.mock.tools import answer_text, detail_spans, sign, split_tokens

ChunkKind = Literal["reasoning", "content", "tool"]

_Z99 = 2.3263478740408408  # standard normal quantile of 0.99

_WORDS: tuple[str, ...] = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim",
    "ad", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi",
    "aliquip", "ex", "ea", "commodo", "consequat", "duis", "aute", "irure", "in", "reprehenderit",
    "voluptate", "velit", "esse", "cillum", "fugiat", "nulla", "pariatur", "excepteur", "sint",
    "occaecat", "cupidatat", "non", "proident", "sunt", "culpa", "qui", "officia", "deserunt",
    "mollit", "anim", "id", "est", "laborum",
)
_THOUGHTS: tuple[str, ...] = (
    "the", "user", "asks", "about", "this", "so", "first", "consider", "what", "they", "need",
    "then", "check", "whether", "it", "holds", "maybe", "another", "angle", "is", "better", "because",
    "of", "constraints", "let", "me", "verify", "each", "step", "and", "summarize", "answer", "clearly",
)


def derive_rng(*parts: object) -> random.Random:
    """A Random seeded from the parts. String seeding hashes with SHA-512, so the stream is the same in
    every process (unlike hash(), which PYTHONHASHSEED salts)."""
    return random.Random("|".join(map(str, parts)))


def _words(rng: random.Random, vocab: tuple[str, ...], n: int) -> list[str]:
    """n tokens of text: capitalised sentences of 6-16 words. Each token is one word with its leading
    space (none for the very first), the way BPE tokenisers split English.

    Sentence lengths come from their own stream, so the words of n tokens are a prefix of the words
    of n+1 tokens: a shorter budget cuts the same text short.
    """
    shape = random.Random(rng.getrandbits(64))
    out = rng.choices(vocab, k=n)
    start = 0
    while start < n:
        out[start] = out[start].capitalize()
        end = start + shape.randint(6, 16)
        if end <= n:
            out[end - 1] += "."
        start = end
    return [w if i == 0 else " " + w for i, w in enumerate(out)]


class Chunk(NamedTuple):
    """One SSE chunk of tokens. `gap_s` is the time since the previous token at an empty batch (the
    server scales it by the live batch slowdown); the first visible chunk's gap is part of TTFT.
    A NamedTuple because a long answer has hundreds of them per request."""

    kind: ChunkKind
    text: str
    tokens: int
    gap_s: float
    visible: bool = True


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything about one generation, decided before the first byte is sent."""

    ttft_s: float
    chunks: tuple[Chunk, ...]
    reasoning_text: str
    content_text: str  # tool-call arguments when tool_name is set
    reasoning_tokens: int
    content_tokens: int
    finish_reason: str  # stop | length | tool_calls
    tool_name: str | None
    tool_call_id: str | None
    reasoning_visible: bool
    fault: str | None  # an in-stream fault kind, or None
    fault_at: int  # index into the visible chunks before which the fault strikes
    #: Prompt tokens served from the provider's prefix cache (usage.prompt_tokens_details.cached_tokens).
    cached_tokens: int = 0
    #: Every tool call of the answer, (id, name, arguments), and for each chunk after the reasoning
    #: ones the index of the call its text belongs to (tool chunks only).
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    chunk_call: tuple[int, ...] = ()
    #: For each reasoning chunk (they come first): (detail index, signature when the chunk ends its
    #: detail, else None); mock/tools.py signs them so that later turns can be checked.
    reasoning_marks: tuple[tuple[int, str | None], ...] = ()
    #: The structured answer (tool arguments or JSON content) was broken on purpose (invalid_rate).
    invalid: bool = False

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + self.content_tokens


def lognormal_from_quantiles(rng: random.Random, median: float, p99: float) -> float:
    """A lognormal draw with the given median and 99th percentile, capped at 3x p99 so one unlucky
    draw cannot stall a short test or demo."""
    sigma = math.log(p99 / median) / _Z99 if p99 > median else 0.0
    return min(rng.lognormvariate(math.log(median), sigma), 3.0 * p99)


def sample_fault(errors: ErrorMix, rng: random.Random) -> str | None:
    """At most one fault kind per attempt, by walking the cumulative probabilities."""
    u = rng.random()
    acc = 0.0
    for kind, p in errors.probabilities().items():
        acc += p
        if p > 0 and u < acc:
            return kind
    return None


def _text_rng(farm_seed: int, model: ModelSpec, req: ChatRequest, request_no: int) -> random.Random:
    if req.seed is not None:
        return derive_rng(farm_seed, "text", model.id, "seed", req.seed)
    if req.temperature == 0:
        return derive_rng(farm_seed, "text", model.id, "prompt", req.prompt_digest)
    return derive_rng(farm_seed, "text", model.id, "request", request_no)


def _reasoning_count(model: ModelSpec, provider: ProviderSpec, req: ChatRequest,
                     rng: random.Random) -> int:
    """Reasoning tokens: none for non-reasoning models or when disabled; the request's budget when it
    gives reasoning.max_tokens; else the profile's mean for the effort with relative jitter."""
    r = req.reasoning
    if not model.reasoning or r.enabled is False:
        return 0
    if r.max_tokens is not None:
        return r.max_tokens
    prof = provider.profile.reasoning
    mean: int = getattr(prof, r.effort or model.default_effort)
    draw = mean * (1.0 + rng.gauss(0.0, prof.jitter))
    return max(0, min(round(draw), 3 * mean))


def _split(rng: random.Random, words: list[str], kind: ChunkKind, chunk_range: tuple[int, int],
           speed: float, jitter: float, visible: bool) -> list[Chunk]:
    chunks: list[Chunk] = []
    i, n = 0, len(words)
    lo, hi = chunk_range
    while i < n:
        k = min(lo if lo == hi else rng.randint(lo, hi), n - i)
        gap = k / speed
        if jitter > 0:
            gap *= max(0.05, 1.0 + rng.gauss(0.0, jitter))
        chunks.append(Chunk(kind, words[i] if k == 1 else "".join(words[i:i + k]), k, gap, visible))
        i += k
    return chunks


def _apply_stop(words: list[str], stops: tuple[str, ...]) -> tuple[list[str], bool]:
    """Cut the words before the earliest stop sequence (the stop text itself is not returned)."""
    if not stops:
        return words, False
    text = "".join(words)
    cut = min((p for p in (text.find(s) for s in stops) if p >= 0), default=-1)
    if cut < 0:
        return words, False
    kept: list[str] = []
    pos = 0
    for w in words:
        if pos + len(w) > cut:
            break
        kept.append(w)
        pos += len(w)
    return kept, True


def prefill_s(provider: ProviderSpec, prompt_tokens: int, cached_tokens: int = 0) -> float:
    """Time to process the prompt before the first token: the tokens not served from the cache (and
    the unsaved share of those that were) at the profile's prefill rate; 0 without a rate."""
    rate = provider.profile.prefill.tokens_per_s
    if rate is None:
        return 0.0
    saved = cached_tokens * provider.profile.cache.ttft_saving
    return max(0.0, prompt_tokens - saved) / rate


def plan_generation(model: ModelSpec, provider: ProviderSpec, req: ChatRequest, *, farm_seed: int,
                    request_no: int, fault: str | None = None, cached_tokens: int = 0) -> Plan:
    """Decide the whole generation for one request served by `provider`.

    TTFT: the profile's lognormal draw plus the prefill time of the prompt (`prefill_s`), so TTFT grows
    linearly with the uncached prompt tokens, as on a real server once queueing is excluded.

    Token budget: max_tokens (or the provider's max_completion_tokens) bounds reasoning + content, as
    reasoning models bill and count both as completion tokens; reasoning comes first and may use it
    all. ignore_eos fills the budget exactly; min_tokens raises the natural length.
    """
    prof = provider.profile
    text_rng = _text_rng(farm_seed, model, req, request_no)
    reason_rng = derive_rng(farm_seed, "reasoning", provider.slug, text_rng.random())
    timing = derive_rng(farm_seed, "timing", request_no, provider.slug)

    budget = req.max_tokens or provider.max_completion_tokens
    natural = text_rng.randint(model.output_tokens.min, model.output_tokens.max)
    reasoning_n = _reasoning_count(model, provider, req, reason_rng)
    if budget is not None:
        reasoning_n = min(reasoning_n, budget)
    remaining = budget - reasoning_n if budget is not None else None
    want = (remaining if req.ignore_eos and remaining is not None else max(natural, req.min_tokens))
    content_n = want if remaining is None else min(want, remaining)
    hit_budget = remaining is not None and (req.ignore_eos or want > remaining)

    content_words = _words(text_rng, _WORDS, content_n)
    content_words, stopped = _apply_stop(content_words, req.stop)
    reasoning_words = _words(reason_rng, _THOUGHTS, reasoning_n)

    if content_words and not hit_budget and not stopped and not content_words[-1].endswith("."):
        content_words[-1] += "."  # a natural end closes its sentence (the token count is unchanged)

    kind: ChunkKind = "content"
    structured = _structured(req, prof.structured, farm_seed, request_no, provider.slug)
    calls: tuple[tuple[str, str, str], ...] = ()
    chunk_call: tuple[int, ...] = ()
    invalid = False
    if structured is not None and remaining != 0:
        kind = "tool" if structured.calls else "content"
        calls, pieces, chunk_call, invalid = structured.calls, structured.pieces, structured.chunk_call, \
            structured.invalid
        content_words, hit_budget = _within_budget(pieces, remaining)
        chunk_call = chunk_call[:len(content_words)]
        calls = calls[:max(chunk_call) + 1] if chunk_call else ()  # calls the budget cut off entirely
        stopped = False
    finish = ("length" if hit_budget and not stopped else
              "tool_calls" if kind == "tool" else "stop")

    speed = prof.decode.tokens_per_s * timing.lognormvariate(0.0, prof.decode.request_jitter)
    reasoning_speed = (prof.reasoning.tokens_per_s or prof.decode.tokens_per_s) * (
        speed / prof.decode.tokens_per_s)
    ttft = (lognormal_from_quantiles(timing, prof.ttft.median_ms, prof.ttft.p99_ms) / 1000.0
            + prefill_s(provider, req.prompt_tokens, cached_tokens))
    visible_reasoning = not req.reasoning.exclude
    chunks = _split(timing, reasoning_words, "reasoning", prof.decode.tokens_per_chunk, reasoning_speed,
                    prof.decode.chunk_jitter, visible_reasoning)
    n_reasoning = len(chunks)
    spans = detail_spans(n_reasoning)
    if structured is not None and content_words:  # one chunk per piece: a piece is one delta
        chunks += _pieces(timing, content_words, kind, speed, prof.decode.chunk_jitter)
    else:
        chunks += _split(timing, content_words, kind, prof.decode.tokens_per_chunk, speed,
                         prof.decode.chunk_jitter, True)
    if chunks:  # the first token's time is the TTFT itself
        chunks[0] = chunks[0]._replace(gap_s=0.0)
    n_visible = sum(1 for c in chunks if c.visible)
    fault_at = timing.randint(1, n_visible) if n_visible else 0
    return Plan(
        ttft_s=ttft,
        chunks=tuple(chunks),
        reasoning_text="".join(reasoning_words),
        content_text="".join(content_words),
        reasoning_tokens=len(reasoning_words),
        content_tokens=sum(c.tokens for c in chunks[n_reasoning:]),
        finish_reason=finish,
        tool_name=calls[0][1] if calls else None,
        tool_call_id=calls[0][0] if calls else None,
        reasoning_visible=visible_reasoning,
        fault=fault,
        fault_at=fault_at,
        cached_tokens=min(cached_tokens, req.prompt_tokens),
        tool_calls=calls,
        chunk_call=chunk_call,
        reasoning_marks=_reasoning_marks(farm_seed, [c.text for c in chunks[:n_reasoning]], spans),
        invalid=invalid,
    )


@dataclass(frozen=True, slots=True)
class _Structured:
    """A structured answer before budgeting: the calls (or none: a JSON answer), its token pieces."""

    calls: tuple[tuple[str, str, str], ...]
    pieces: list[str]
    chunk_call: tuple[int, ...]
    invalid: bool


def response_invalid(farm_seed: int, request_no: int, provider_slug: str, rate: float) -> bool:
    """Whether request `request_no` served by the provider gets a broken structured answer: the first
    draw of its own stream, so a test can count the expected broken answers of a run."""
    return _structured_rng(farm_seed, request_no, provider_slug).random() < rate


def _structured_rng(farm_seed: int, request_no: int, provider_slug: str) -> random.Random:
    return derive_rng(farm_seed, "structured", request_no, provider_slug)


def _structured(req: ChatRequest, prof: StructuredProfile, farm_seed: int, request_no: int,
                provider_slug: str) -> _Structured | None:
    """The tool calls or JSON answer the request asks for, or None for plain text."""
    rng = _structured_rng(farm_seed, request_no, provider_slug)
    invalid = rng.random() < prof.invalid_rate  # first draw: response_invalid() repeats it
    schemas = dict(req.tools)
    chosen: list[tuple[str, object]] = []
    if req.tools and req.tool_choice != "none":
        if req.tool_choice == "named" and req.tool_name is not None:
            chosen = [(req.tool_name, schemas.get(req.tool_name, {"type": "object"}))]
        elif req.tool_choice == "required" or (not req.after_tool_result and rng.random() < prof.auto_call_rate):
            count = 2 if len(req.tools) > 1 and rng.random() < prof.parallel_calls else 1
            chosen = [req.tools[i] for i in sorted(rng.sample(range(len(req.tools)), count))]
    if chosen:
        calls, pieces, owner = [], [], []
        for i, (name, schema) in enumerate(chosen):
            arguments = answer_text(schema, rng, invalid and i == 0)
            call_id = f"call_{derive_rng(farm_seed, 'call', request_no, i).getrandbits(64):016x}"
            calls.append((call_id, name, arguments))
            split = split_tokens(arguments, rng, (1, 3))
            pieces += split
            owner += [i] * len(split)
        return _Structured(tuple(calls), pieces, tuple(owner), invalid)
    if req.answer_schema is not None and not req.tools:
        text = answer_text(req.answer_schema, rng, invalid)
        return _Structured((), split_tokens(text, rng, (1, 3)), (), invalid)
    return None


def _within_budget(pieces: list[str], remaining: int | None) -> tuple[list[str], bool]:
    """The pieces (~4 characters a token) that fit the token budget, and whether it cut them."""
    if remaining is None:
        return pieces, False
    kept: list[str] = []
    used = 0
    for piece in pieces:
        tokens = max(1, math.ceil(len(piece) / 4))
        if used + tokens > remaining:
            return kept, True
        kept.append(piece)
        used += tokens
    return kept, False


def _pieces(rng: random.Random, pieces: list[str], kind: ChunkKind, speed: float, jitter: float) -> list[Chunk]:
    chunks = []
    for piece in pieces:
        tokens = max(1, math.ceil(len(piece) / 4))
        gap = tokens / speed
        if jitter > 0:
            gap *= max(0.05, 1.0 + rng.gauss(0.0, jitter))
        chunks.append(Chunk(kind, piece, tokens, gap, True))
    return chunks


def _reasoning_marks(farm_seed: int, texts: list[str], spans: list[int]) -> tuple[tuple[int, str | None], ...]:
    marks: list[tuple[int, str | None]] = []
    for i, index in enumerate(spans):
        last = i + 1 == len(spans) or spans[i + 1] != index
        text = "".join(t for t, s in zip(texts, spans, strict=True) if s == index) if last else ""
        marks.append((index, sign(farm_seed, index, text) if last else None))
    return tuple(marks)


def batch_factor(active: int, capacity: int, batch_slowdown: float) -> float:
    """How much slower each stream decodes with `active` streams in the batch (1.0 when alone)."""
    if batch_slowdown <= 0 or capacity <= 1 or active <= 1:
        return 1.0
    return 1.0 + batch_slowdown * min(1.0, (active - 1) / (capacity - 1))
