"""The server's own /metrics: the built-in vocabulary and the parse of one scrape (sans-IO).

Why a vocabulary: every inference server names the same few quantities differently, and a report that
explains *why* latency rose needs them side by side with the client's figures whatever the server:
requests running, requests waiting, KV-cache usage, tokens generated (the counter the client's token
count is checked against) and the prefix-cache hit rate where the server exports it. Names are taken
from each server's documentation (vLLM "Production Metrics", llama.cpp server README `--metrics`,
SGLang "Production Metrics", TGI "Metrics" reference); a list holds the names of one quantity in order
of preference (vLLM renamed `gpu_cache_usage_perc` to `kv_cache_usage_perc`, for instance).

A scrape is parsed with prometheus-client's text parser, after a pre-filter that keeps only the lines
of the vocabulary's names (a vLLM exposition is mostly histogram buckets no quantity reads; parsing
them every second would cost the generator's machine CPU for nothing). Values of one name are combined
over its label sets (engines, models, ranks): counts and counters add up, ratios average. A body
larger than `MAX_BODY_BYTES` is cut at its last whole line and the sample marked `truncated`.

`server-metrics.jsonl` (one line per scrape, written as they arrive by load/servermetrics.py):
    time       Unix seconds when the body was received (the clock of the records' `start_time`)
    t_s        seconds since the run start (records' `t_s`), when the run had started
    url        the /metrics URL (redacted)
    server     the vocabulary that matched (`vllm`, `llamacpp`, `sglang`, `tgi`) or null
    values     quantity -> number (only the quantities the server exported)
    bytes      body size read; `truncated` true when it passed the cap; `scrape_s` the request's time
    error      instead of server/values: why this scrape gave nothing (HTTP status, refused, not text)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

SERVER_METRICS_FILE = "server-metrics.jsonl"
#: The most of one /metrics body that is read and parsed (a vLLM exposition is ~100-300 kB).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: A difference between the tokens the client counted and the server's counter above this is a warning.
TOKEN_MISMATCH_RATIO = 0.01

GAUGE = "gauge"
COUNTER = "counter"


@dataclass(frozen=True, slots=True)
class Quantity:
    """A common quantity: how it is combined over label sets and what it means."""

    key: str
    kind: str  # GAUGE (mean/max per step) or COUNTER (rate per step)
    combine: str  # "sum" over label sets, or "mean" (ratios)
    label: str


QUANTITIES: tuple[Quantity, ...] = (
    Quantity("running", GAUGE, "sum", "requests running"),
    Quantity("waiting", GAUGE, "sum", "requests waiting / deferred"),
    Quantity("kv_cache_usage", GAUGE, "mean", "KV-cache usage (0..1)"),
    Quantity("prefix_cache_hit_rate", GAUGE, "mean", "prefix-cache hit rate (0..1)"),
    Quantity("generated_tokens", COUNTER, "sum", "tokens generated"),
    Quantity("prompt_tokens", COUNTER, "sum", "prompt tokens processed"),
    Quantity("prefix_cache_hits", COUNTER, "sum", "prefix-cache hits"),
    Quantity("prefix_cache_queries", COUNTER, "sum", "prefix-cache queries"),
)
QUANTITY = {q.key: q for q in QUANTITIES}

#: server -> quantity -> sample names, preferred first (the first one present is used).
VOCABULARY: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "running": ("vllm:num_requests_running",),
        "waiting": ("vllm:num_requests_waiting",),
        "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "prefix_cache_hit_rate": ("vllm:gpu_prefix_cache_hit_rate",),
        "generated_tokens": ("vllm:generation_tokens_total",),
        "prompt_tokens": ("vllm:prompt_tokens_total",),
        "prefix_cache_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
        "prefix_cache_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    },
    "llamacpp": {
        "running": ("llamacpp:requests_processing",),
        "waiting": ("llamacpp:requests_deferred",),
        "kv_cache_usage": ("llamacpp:kv_cache_usage_ratio",),
        "generated_tokens": ("llamacpp:tokens_predicted_total",),
        "prompt_tokens": ("llamacpp:prompt_tokens_total",),
    },
    "sglang": {
        "running": ("sglang:num_running_reqs",),
        "waiting": ("sglang:num_queue_reqs",),
        "kv_cache_usage": ("sglang:token_usage",),
        "prefix_cache_hit_rate": ("sglang:cache_hit_rate",),
        "generated_tokens": ("sglang:generation_tokens_total",),
        "prompt_tokens": ("sglang:prompt_tokens_total",),
    },
    "tgi": {
        "running": ("tgi_batch_current_size",),
        "waiting": ("tgi_queue_size",),
        # a histogram of generated tokens per request: its _sum is the tokens of finished requests
        "generated_tokens": ("tgi_request_generated_tokens_sum",),
        "prompt_tokens": ("tgi_request_input_length_sum",),
    },
}
_WANTED = frozenset(name for names in VOCABULARY.values() for ns in names.values() for name in ns)
#: family names as the parser sees them (counters lose `_total`, histograms their `_sum`)
_FAMILIES = frozenset(n.removesuffix("_total").removesuffix("_sum") for n in _WANTED) | _WANTED


class ExpositionError(ValueError):
    """The body is not Prometheus text the parser accepts; the message is for the user."""


def _wanted_line(line: str) -> bool:
    if line.startswith("#"):
        parts = line.split(None, 3)
        return len(parts) >= 3 and parts[1] in ("TYPE", "HELP") and parts[2] in _FAMILIES
    name = line.split("{", 1)[0].split(None, 1)[0] if line.strip() else ""
    return name in _WANTED


def filter_exposition(text: str) -> str:
    """Only the lines of the vocabulary's names (and their TYPE/HELP lines), in order."""
    return "".join(line + "\n" for line in text.splitlines() if _wanted_line(line))


def cut_body(body: bytes, cap: int = MAX_BODY_BYTES) -> tuple[bytes, bool]:
    """The body cut at its last whole line within `cap` bytes, and whether it was cut."""
    if len(body) <= cap:
        return body, False
    head = body[:cap]
    end = head.rfind(b"\n")
    return (head[:end + 1] if end >= 0 else b""), True


def sample_sums(text: str) -> dict[str, list[float]]:
    """Finite sample values of each wanted name, over its label sets. Raises ExpositionError."""
    values: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families(filter_exposition(text)):
            for sample in family.samples:
                if sample.name in _WANTED and isinstance(sample.value, (int, float)) and math.isfinite(sample.value):
                    values.setdefault(sample.name, []).append(float(sample.value))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ExpositionError(f"not Prometheus text: {str(exc)[:120]}") from None
    return values


def map_quantities(values: dict[str, list[float]]) -> tuple[str | None, dict[str, float]]:
    """The server whose vocabulary matches most names, and its quantities (combined over label sets)."""
    best: tuple[str | None, dict[str, float]] = (None, {})
    for server, names in VOCABULARY.items():
        found: dict[str, float] = {}
        for key, candidates in names.items():
            name = next((n for n in candidates if n in values), None)
            if name is None:
                continue
            vs = values[name]
            found[key] = math.fsum(vs) if QUANTITY[key].combine == "sum" else math.fsum(vs) / len(vs)
        if len(found) > len(best[1]):
            best = (server, found)
    return best


def parse_scrape(body: bytes, cap: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """One scrape's body -> {"server", "values", "bytes", "truncated"}. Raises ExpositionError for a
    body that is not UTF-8 Prometheus text, or that holds none of the vocabulary's names."""
    kept, truncated = cut_body(body, cap)
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError:
        raise ExpositionError("not UTF-8 text") from None
    server, values = map_quantities(sample_sums(text))
    if server is None:
        raise ExpositionError("none of the known server metrics (vLLM, llama.cpp, SGLang, TGI) found")
    out: dict[str, Any] = {"server": server, "values": values, "bytes": len(body)}
    if truncated:
        out["truncated"] = True
    return out


def counter_increase(points: Iterable[float]) -> float:
    """The increase of a counter over successive values, a reset (a drop) counting from zero, as
    Prometheus' increase() does."""
    total = 0.0
    prev: float | None = None
    for v in points:
        if prev is not None:
            total += v - prev if v >= prev else v
        prev = v
    return total
