"""Config targets turned into probes that are ready to send.

Why a separate step: a probe sends the same bytes every time, so the request is built and serialized
once per target (with the API key read once, in `read_api_key`, so the redactor knows it); the effective
schedule (`--interval` override, jitter bound) is decided here once too, not in each job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tokenpulse.config import Config, Endpoint, Target
from tokenpulse.core.keys import KeyRing
from tokenpulse.core.request import PreparedRequest, Timeouts, prepare

log = logging.getLogger(__name__)

#: Jitter is capped at this share of the interval. The scheduler keeps runs on a fixed grid and adds
#: the jitter to each grid point; a jitter below half the interval keeps consecutive runs in order and
#: lets misfire accounting tell grid slots apart.
MAX_JITTER_FRACTION = 0.25


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One scheduled probe: the config target, its effective schedule and its serialized request."""

    target: Target
    request: PreparedRequest
    interval_s: float
    jitter_s: float

    @property
    def key(self) -> str:
        return self.target.key

    @property
    def labels(self) -> dict[str, str]:
        return self.target.labels

    @property
    def timeouts(self) -> Timeouts:
        return self.target.timeouts

    @property
    def endpoint(self) -> str:
        return self.target.endpoint.name

    @property
    def model(self) -> str:
        return self.target.model.id

    @property
    def provider(self) -> str:
        return self.target.provider

    @property
    def profile(self) -> str:
        return self.target.profile_name

    def cost_usd(self, prompt_tokens: int | None, output_tokens: int | None) -> float | None:
        """The configured price applied to a result's tokens, for servers that send no `usage.cost`."""
        price = self.target.model.price
        return price.cost(prompt_tokens, output_tokens) if price else None


def effective_jitter(interval_s: float, jitter_s: float) -> float:
    return min(jitter_s, interval_s * MAX_JITTER_FRACTION)


def key_ring(endpoints: Iterable[Endpoint]) -> KeyRing:
    """The prober's keys: every endpoint's, read once; a named variable that is not set is logged."""
    endpoints = list(endpoints)
    keys = KeyRing(e.api_key_env for e in endpoints)
    for endpoint in endpoints:
        if endpoint.api_key_env in keys.missing:
            log.warning("environment variable %s is not set: probes of endpoint %s send no "
                        "Authorization header", endpoint.api_key_env, endpoint.name)
    return keys


def plan(targets: Iterable[Target], keys: KeyRing, *, interval_override: float | None = None,
         provider_names: Mapping[tuple[str, str, str], Sequence[str]] | None = None) -> list[ProbeTarget]:
    """Build the probes of `targets`; `interval_override` replaces every target's interval.
    `provider_names` maps (endpoint, model, provider tag) to the display names the endpoints listing
    gives that provider, for judging who served each probe (core/served.py): discovered providers
    have them; for the others the served name is compared with the slug."""
    planned: list[ProbeTarget] = []
    names = provider_names or {}
    for target in targets:
        interval = interval_override if interval_override is not None else target.interval_s
        endpoint = target.endpoint
        request = prepare(endpoint.base_url, target.chat_request(), api_key=keys.for_endpoint(endpoint),
                          extra_headers=endpoint.headers,
                          provider_names=names.get((endpoint.name, target.model.id, target.provider), ()))
        planned.append(ProbeTarget(target=target, request=request, interval_s=interval,
                                   jitter_s=effective_jitter(interval, target.jitter_s)))
    return planned


def discovered_targets(config: Config, endpoint: Endpoint, model_index: int,
                       providers: Iterable[str]) -> list[Target]:
    """Targets of a `discover: true` model once its providers are known (every profile each)."""
    model = endpoint.models[model_index]
    return [config.target(endpoint, model, provider, profile) for provider in providers
            for profile in model.profiles]


def discovery_models(config: Config) -> list[tuple[Endpoint, int]]:
    """(endpoint, model index) of every model whose providers must be discovered."""
    return [(endpoint, i) for endpoint in config.endpoints for i, model in enumerate(endpoint.models)
            if model.discover]

