"""OpenRouter-style provider routing: which providers to try for a request, in which order.

Why it matters to a monitor: with fallbacks allowed, a provider's pre-stream failures are hidden by
the next provider in the chain; probes therefore pin one provider with `only` + `allow_fallbacks:
false` (DESIGN.md §3). The mock reproduces the semantics so that both behaviours can be tested:

- `only` keeps the listed providers, `ignore` removes some (slugs or display names, any case);
- `quantizations` keeps providers serving one of them; `max_price` (USD per million tokens) keeps
  providers at most that expensive; `require_parameters` drops providers that do not support a
  parameter the request carries (`unsupported_parameters` in the farm);
- `order` puts the listed providers first, in that order; with fallbacks the others follow;
- `sort` (or the model suffixes `:nitro` = throughput, `:floor` = price) ranks the others by the farm's
  own figures: price (prompt + completion per million tokens, cheapest first), throughput (decode
  tokens/s, fastest first) or latency (median TTFT, lowest first), ties by slug;
- without `order` or `sort`, providers are ranked by a seeded weighted shuffle of their `weight`s;
- `allow_fallbacks: false` tries only the ordered providers, or only the first pick without `order`.

And the router's faults that tokenpulse must tell apart from a provider's: a pinned request served by
another provider anyway (`misroute`, seeded), and OpenRouter's own 429s (`openrouter_rate_limit`: with
`X-RateLimit-*` headers and no provider in the metadata).
"""

from __future__ import annotations

import random
import time

from tokenpulse.mock.farm import ModelSpec, ProviderSpec
from tokenpulse.mock.request import ProviderPrefs

#: Model id suffixes OpenRouter reads as a sort (`openai/gpt-4o:nitro`).
VARIANT_SORTS = {"nitro": "throughput", "floor": "price"}
#: The request limit the mock's OpenRouter 429s announce (requests per `RATE_LIMIT_WINDOW_S`).
RATE_LIMIT_REQUESTS = 200
RATE_LIMIT_WINDOW_S = 10


def _matches(provider: ProviderSpec, key: str) -> bool:
    k = key.strip().lower()
    return k in (provider.slug.lower(), provider.name.lower())


def split_variant(model_id: str) -> tuple[str, str | None]:
    """(base model id, the sort its `:nitro` / `:floor` suffix asks for); other ids unchanged."""
    base, sep, variant = model_id.rpartition(":")
    if sep and base and variant in VARIANT_SORTS:
        return base, VARIANT_SORTS[variant]
    return model_id, None


def weighted_shuffle(providers: list[ProviderSpec], rng: random.Random) -> list[ProviderSpec]:
    """Weighted random order without replacement (Efraimidis-Spirakis keys u^(1/w))."""
    keyed = [(rng.random() ** (1.0 / p.weight), i, p) for i, p in enumerate(providers)]
    keyed.sort(key=lambda t: (-t[0], t[1]))
    return [p for _, _, p in keyed]


def sort_key(model: ModelSpec, provider: ProviderSpec, sort: str) -> float:
    """The figure `sort` ranks by, smaller first."""
    if sort == "price":
        price = model.price_of(provider)
        return price.prompt + price.completion
    if sort == "throughput":
        return -provider.profile.decode.tokens_per_s
    return provider.profile.ttft.median_ms  # latency


def _eligible(model: ModelSpec, provider: ProviderSpec, prefs: ProviderPrefs, params: frozenset[str]) -> bool:
    if prefs.quantizations is not None and provider.quantization.lower() not in {
            q.lower() for q in prefs.quantizations}:
        return False
    if prefs.max_price is not None:
        price = model.price_of(provider)
        max_prompt, max_completion = prefs.max_price
        if (max_prompt is not None and price.prompt > max_prompt) or (
                max_completion is not None and price.completion > max_completion):
            return False
    return not (prefs.require_parameters and params & set(provider.unsupported_parameters))


def route(model: ModelSpec, prefs: ProviderPrefs, rng: random.Random, *, sort: str | None = None,
          params: frozenset[str] = frozenset()) -> list[ProviderSpec]:
    """The providers to try, first choice first. Empty when nothing matches the preferences. `sort`
    is the model suffix's (`split_variant`); the request's `provider.sort` wins over it."""
    candidates = list(model.providers.values())
    if prefs.only is not None:
        candidates = [p for p in candidates if any(_matches(p, k) for k in prefs.only)]
    candidates = [p for p in candidates if not any(_matches(p, k) for k in prefs.ignore)
                  and _eligible(model, p, prefs, params)]

    ordered: list[ProviderSpec] = []
    for key in prefs.order:
        for p in candidates:
            if _matches(p, key) and p not in ordered:
                ordered.append(p)
    others = [p for p in candidates if p not in ordered]
    by = prefs.sort or sort
    if by is not None:
        rest = sorted(others, key=lambda p: (sort_key(model, p, by), p.slug))
    else:
        rest = weighted_shuffle(others, rng)

    if ordered:
        return ordered + rest if prefs.allow_fallbacks else ordered
    return rest if prefs.allow_fallbacks else rest[:1]


def misroute(model: ModelSpec, prefs: ProviderPrefs, chain: list[ProviderSpec],
             rng: random.Random) -> list[ProviderSpec]:
    """The chain after the router's own mistakes: a request pinned to a provider with `misroute` > 0
    goes, with that probability, to another provider (`misroute_to`, else any other of the model)."""
    if not prefs.pinned or not chain or chain[0].misroute <= 0 or rng.random() >= chain[0].misroute:
        return chain
    pinned = chain[0]
    others = ([model.providers[s] for s in pinned.misroute_to] if pinned.misroute_to
              else [p for p in model.providers.values() if p.slug != pinned.slug])
    return weighted_shuffle(others, rng)[:1] or chain


def openrouter_limited(share: float, rng: random.Random) -> bool:
    """Whether OpenRouter itself refuses this request with a 429 (the farm's `openrouter_rate_limit`)."""
    return share > 0 and rng.random() < share


def openrouter_rate_limit_headers(now_s: float | None = None) -> list[tuple[str, str]]:
    """The headers of OpenRouter's own 429: the limit, nothing remaining, the window's reset (Unix ms)
    and Retry-After until then."""
    now = time.time() if now_s is None else now_s
    reset_s = (int(now) // RATE_LIMIT_WINDOW_S + 1) * RATE_LIMIT_WINDOW_S
    return [("X-RateLimit-Limit", str(RATE_LIMIT_REQUESTS)), ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", str(reset_s * 1000)), ("Retry-After", str(max(1, reset_s - int(now))))]


#: OpenRouter's `error.metadata.error_type` of a provider's pre-stream error, by HTTP status.
_ERROR_TYPES = {429: "rate_limit", 500: "server_error", 502: "bad_gateway", 503: "overloaded"}


def provider_error_details(status: int, provider: ProviderSpec
                           ) -> tuple[dict[str, object], dict[str, object] | None]:
    """(error.metadata, error.availability) of an error the provider behind OpenRouter returned: the
    provider named (how a provider's 429 differs from OpenRouter's own), its code, and for an
    overloaded provider the availability OpenRouter reports for exhausted capacity."""
    metadata: dict[str, object] = {"provider_name": provider.name, "provider_code": status,
                                   "error_type": _ERROR_TYPES.get(status, "provider_error")}
    availability = {"code": "capacity_exhausted", "retryable": True} if status == 503 else None
    return metadata, availability
