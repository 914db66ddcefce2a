"""Structured answers of the mock: tool-call arguments and `json_schema` answers, made from the request's
schemas, broken at a configured rate; and signed `reasoning_details` that later turns must return intact.

Why in the mock: tokenpulse measures how often a provider's tool calls and JSON answers are valid, so
the mock must produce both kinds at a known rate (`StructuredProfile.invalid_rate`), and a test can
then check that the measured rate matches. Everything is drawn from the `random.Random` the planner
hands in (behaviour.py), so a farm seed replays the same answers and the same broken ones.

The generator covers what tool and response schemas use in practice: object (properties, required),
string (enum, const, minLength/maxLength), integer and number (minimum/maximum), boolean, null, array
(items, minItems/maxItems), `type` lists and anyOf/oneOf (the first branch). Anything else becomes a
string. It is bounded (depth, items, length), so a hostile schema cannot make it run away.

Reasoning signatures: each `reasoning.text` detail carries `signature = H(farm seed, index, text)`;
`check_reasoning_history` recomputes it for every assistant message a request sends back, so a detail
whose text, index or position was changed is caught (and, in `required` mode, one that was dropped).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from typing import Any

#: Generator bounds: nesting depth, array length, words per string.
MAX_DEPTH = 6
MAX_ITEMS = 5
MAX_WORDS = 8
_WORDS = ("alpha", "harbour", "lantern", "river", "signal", "summer", "valley", "meadow", "copper", "ember")
_dumps = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=False).encode


def generate(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value that validates against `schema` (within the subset above)."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return _text(rng, 1, 3)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[rng.randrange(len(enum))]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            return generate(branches[0], rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        kind = next((k for k in kinds if k != "null"), kinds[0] if kinds else None)
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        return _object(schema, rng, depth)
    if kind == "array":
        low = _int(schema.get("minItems"), 0)
        high = max(low, min(_int(schema.get("maxItems"), 3), low + MAX_ITEMS))
        count = rng.randint(max(low, 1 if high else 0), high)
        return [generate(schema.get("items"), rng, depth + 1) for _ in range(count)]
    if kind == "integer":
        lo, hi = _bounds(schema, 0, 100)
        return rng.randint(math.ceil(lo), max(math.ceil(lo), math.floor(hi)))
    if kind == "number":
        lo, hi = _bounds(schema, 0.0, 100.0)
        return min(max(round(rng.uniform(lo, hi), 2), lo), hi)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    low = _int(schema.get("minLength"), 0)
    high = _int(schema.get("maxLength"), 10_000)
    text = _text(rng, 1, MAX_WORDS)
    if len(text) < low:
        text = (text + " ") * (low // max(len(text), 1) + 1)
    return text[:max(high, low)]


def _object(schema: dict[str, Any], rng: random.Random, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return {"query": _text(rng, 2, MAX_WORDS)}  # a free-form object: one argument, as a search tool has
    required = schema.get("required")
    required = {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
    out = {}
    for name, sub in properties.items():
        if name in required or rng.random() < 0.5:
            out[name] = generate(sub, rng, depth + 1)
    return out


def _int(value: Any, default: int) -> int:
    return value if type(value) is int and 0 <= value <= 10_000 else default


def _bounds(schema: dict[str, Any], low: float, high: float) -> tuple[float, float]:
    """[minimum, maximum] of a numeric schema, defaults filling what is not given."""
    lo, hi = _number(schema.get("minimum")), _number(schema.get("maximum"))
    if lo is None:
        lo = low if hi is None or hi >= low else hi - (high - low)
    if hi is None:
        hi = max(high, lo)
    return (lo, hi) if lo <= hi else (lo, lo)


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e15
    return float(value) if ok else None


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def answer_text(schema: Any, rng: random.Random, invalid: bool) -> str:
    """The JSON text of an answer for `schema`; when `invalid`, one that fails: half of the time not
    JSON at all (cut short, as a model that stopped mid-object), else JSON that breaks the schema."""
    value = generate(schema, rng)
    text = _dumps(value)
    if not invalid:
        return text
    if rng.random() < 0.5 or not isinstance(value, dict):
        return text[: max(1, len(text) // 2)]  # not JSON: a cut-off object (or an unclosed string)
    return _dumps(_break(value, schema))


def _break(value: dict[str, Any], schema: Any) -> Any:
    """JSON that fails `schema`: a required property removed, else one of the wrong type, else the
    object replaced by an array (no object schema takes one)."""
    required = schema.get("required") if isinstance(schema, dict) else None
    if isinstance(required, list):
        for name in required:
            if name in value:
                return {k: v for k, v in value.items() if k != name}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict):
        for name, sub in properties.items():
            if isinstance(sub, dict) and sub.get("type") in ("integer", "number", "boolean", "array", "object"):
                return {**value, name: "not a " + str(sub["type"])}
    return [value]


def split_tokens(text: str, rng: random.Random, chunk_range: tuple[int, int]) -> list[str]:
    """Token pieces of a JSON text (~4 characters each), grouped into chunk texts of `chunk_range`
    tokens: the argument deltas of a streamed tool call, or the content deltas of a JSON answer."""
    tokens = [text[i:i + 4] for i in range(0, len(text), 4)] or [""]
    out: list[str] = []
    lo, hi = chunk_range
    i = 0
    while i < len(tokens):
        k = lo if lo == hi else rng.randint(lo, hi)
        out.append("".join(tokens[i:i + k]))
        i += k
    return out


# --------------------------------------------------------------------------- reasoning signatures
def sign(farm_seed: int, index: int, text: str) -> str:
    """The signature of one reasoning detail: binds its text to its index (and so to its position)."""
    digest = hashlib.blake2b(f"{farm_seed}|{index}|{text}".encode(), digest_size=16)
    return "sig_" + digest.hexdigest()


def detail_spans(n_chunks: int) -> list[int]:
    """The detail index of each of `n_chunks` reasoning chunks: two details when there are at least
    two chunks (so order matters), one otherwise."""
    half = (n_chunks + 1) // 2
    return [0 if i < half or n_chunks < 2 else 1 for i in range(n_chunks)]


def merged_details(farm_seed: int, texts: Sequence[str]) -> list[dict[str, Any]]:
    """The reasoning_details of a whole answer whose reasoning chunks are `texts`, as a client that
    merges the streamed pieces (or a non-streamed response) holds them."""
    spans = detail_spans(len(texts))
    out: list[dict[str, Any]] = []
    for index, text in zip(spans, texts, strict=True):
        if out and out[-1]["index"] == index:
            out[-1]["text"] += text
        else:
            out.append({"type": "reasoning.text", "text": text, "index": index, "format": "unknown"})
    for detail in out:
        detail["signature"] = sign(farm_seed, detail["index"], detail["text"])
    return out


def check_reasoning_history(messages: Sequence[Any], farm_seed: int, mode: str) -> str | None:
    """Why the request's returned reasoning details are not intact (None when they are, or mode off).

    `altered`: every `reasoning.text` detail with a signature must carry its own text, at its own
    index, in order (index i at position i). `required` also refuses an assistant message that comes
    back without any reasoning_details."""
    if mode == "off":
        return None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        details = message.get("reasoning_details")
        if details is None or details == []:
            if mode == "required":
                return f"messages[{i}]: reasoning_details of an earlier turn were not sent back"
            continue
        if not isinstance(details, list):
            return f"messages[{i}].reasoning_details must be an array"
        for position, detail in enumerate(details):
            if not isinstance(detail, dict):
                return f"messages[{i}].reasoning_details[{position}] must be an object"
            signature = detail.get("signature")
            if detail.get("type") != "reasoning.text" or signature is None:
                continue
            index, text = detail.get("index"), detail.get("text")
            if index != position or not isinstance(text, str) or not isinstance(index, int) \
                    or signature != sign(farm_seed, index, text):
                return (f"messages[{i}].reasoning_details[{position}]: the signature does not match "
                        "(reasoning details must be sent back unmodified and in order)")
    return None
