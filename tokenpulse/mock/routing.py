"""OpenRouter-style provider routing: which providers to try for a request, in which order.

Why it matters to a monitor: with fallbacks allowed, a provider's pre-stream failures are hidden by
the next provider in the chain; probes therefore pin one provider with `only` + `allow_fallbacks:
false` (DESIGN.md §3). The mock reproduces the semantics so that both behaviours can be tested:

- `only` keeps the listed providers, `ignore` removes some (slugs or display names, any case);
- `order` puts the listed providers first, in that order; with fallbacks the others follow;
- without `order`, providers are ranked by a seeded weighted shuffle of their `weight`s;
- `allow_fallbacks: false` tries only the ordered providers, or only the first pick without `order`.
"""

from __future__ import annotations

import random

from tokenpulse.mock.farm import ModelSpec, ProviderSpec
from tokenpulse.mock.request import ProviderPrefs


def _matches(provider: ProviderSpec, key: str) -> bool:
    k = key.strip().lower()
    return k in (provider.slug.lower(), provider.name.lower())


def weighted_shuffle(providers: list[ProviderSpec], rng: random.Random) -> list[ProviderSpec]:
    """Weighted random order without replacement (Efraimidis-Spirakis keys u^(1/w))."""
    keyed = [(rng.random() ** (1.0 / p.weight), i, p) for i, p in enumerate(providers)]
    keyed.sort(key=lambda t: (-t[0], t[1]))
    return [p for _, _, p in keyed]


def route(model: ModelSpec, prefs: ProviderPrefs, rng: random.Random) -> list[ProviderSpec]:
    """The providers to try, first choice first. Empty when nothing matches the preferences."""
    candidates = list(model.providers.values())
    if prefs.only is not None:
        candidates = [p for p in candidates if any(_matches(p, k) for k in prefs.only)]
    candidates = [p for p in candidates if not any(_matches(p, k) for k in prefs.ignore)]

    ordered: list[ProviderSpec] = []
    for key in prefs.order:
        for p in candidates:
            if _matches(p, key) and p not in ordered:
                ordered.append(p)
    rest = weighted_shuffle([p for p in candidates if p not in ordered], rng)

    if ordered:
        return ordered + rest if prefs.allow_fallbacks else ordered
    return rest if prefs.allow_fallbacks else rest[:1]
