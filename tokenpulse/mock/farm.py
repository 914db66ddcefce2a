"""The mock provider farm as data: models -> providers -> behaviour profile, validated by pydantic.

Why a declarative farm: the mock is the default target of tokenpulse (demo, tests, benchmarks), so its
latency, capacity, reasoning, price and fault behaviour must be reviewable and tweakable without reading
server code. Every model forbids unknown keys, so a typo in a YAML farm fails loudly with the field path
instead of silently running a different experiment.

YAML layout (see default_farm.yaml)::

    seed: 1
    models:
      <author>/<slug>:                 # the model id clients send
        providers:
          <provider-slug>:             # OpenRouter's `tag`, matched by provider.only/order/ignore
            name: Display Name
            profile: {ttft: ..., decode: ..., capacity: ..., errors: ..., outages: [...]}

YAML anchors (`&fast` / `*fast`) are the way to share a profile between models.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tokenpulse.mock.http import DEFAULT_IDLE_TIMEOUT_S
from tokenpulse.mock.request import MAX_OUTPUT_TOKENS
from tokenpulse.yamlfile import YamlReadError, read_yaml

__all__ = [
    "CacheProfile",
    "DecodeProfile",
    "ErrorMix",
    "FarmConfigError",
    "MockFarm",
    "ModelSpec",
    "OutageWindow",
    "OutputLength",
    "PrefillProfile",
    "Pricing",
    "Profile",
    "ProviderSpec",
    "ReasoningProfile",
    "StructuredProfile",
    "TtftProfile",
    "default_farm",
    "dump_farm",
    "load_farm",
]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._:-]*$")

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    """Base: unknown keys are errors, instances are immutable (a farm is shared by all requests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Pricing(_Strict):
    """USD per 1M tokens, the unit providers quote; the API reports USD per token as strings."""

    prompt: NonNegFloat
    completion: NonNegFloat


class TtftProfile(_Strict):
    """Time from slot acquisition to the first token, lognormal fitted to a median and a p99.

    A lognormal is the usual shape of service latencies (bounded below, long right tail); two
    quantiles are what people read off dashboards, so they are the knobs. Queueing for a slot comes on
    top of this.
    """

    median_ms: PositiveFloat
    p99_ms: PositiveFloat

    @model_validator(mode="after")
    def _p99_above_median(self) -> TtftProfile:
        if self.p99_ms < self.median_ms:
            raise ValueError("p99_ms must be >= median_ms")
        return self


def _int_to_range(v: Any) -> Any:
    """`tokens_per_chunk: 3` means [3, 3]."""
    return (v, v) if isinstance(v, int) and not isinstance(v, bool) else v


class DecodeProfile(_Strict):
    """Decode speed. `request_jitter` varies the speed between requests (relative sd of a lognormal
    factor), `chunk_jitter` varies each gap (relative sd, clipped), `batch_slowdown` is the extra
    slowdown at a full batch: speed / (1 + batch_slowdown * (active-1)/(capacity-1)), the way real
    batched decoders get slower per stream as the batch fills.
    """

    tokens_per_s: PositiveFloat
    request_jitter: Annotated[float, Field(ge=0, le=2)] = 0.1
    chunk_jitter: Annotated[float, Field(ge=0, le=2)] = 0.2
    #: tokens per SSE chunk: a number, or [min, max] drawn uniformly per chunk
    tokens_per_chunk: Annotated[tuple[int, int], BeforeValidator(_int_to_range)] = (1, 1)
    batch_slowdown: NonNegFloat = 0.0

    @field_validator("tokens_per_chunk")
    @classmethod
    def _chunk_range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 1 or v[1] < v[0]:
            raise ValueError("tokens_per_chunk must be >= 1, or [min, max] with 1 <= min <= max")
        return v


class ReasoningProfile(_Strict):
    """Mean reasoning tokens per effort level (before content), relative jitter, optional own speed.

    Only used for models with `reasoning: true`. A reasoning model reasons at `default_effort` when the
    request does not say otherwise, as OpenRouter's reasoning models do.
    """

    low: Annotated[int, Field(ge=0, le=MAX_OUTPUT_TOKENS)] = 40
    medium: Annotated[int, Field(ge=0, le=MAX_OUTPUT_TOKENS)] = 120
    high: Annotated[int, Field(ge=0, le=MAX_OUTPUT_TOKENS)] = 360
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.25
    tokens_per_s: PositiveFloat | None = None  # None: same as decode
    #: What a request's returned `reasoning_details` must be (mock/tools.py): `altered` refuses (400) a
    #: turn whose signed details were changed, reordered or moved; `required` also one that dropped
    #: them; `off` checks nothing.
    details_check: Literal["off", "altered", "required"] = "altered"


class StructuredProfile(_Strict):
    """Tool calls and `json_schema` answers (mock/tools.py). `invalid_rate`: share of tool calls and
    JSON answers that fail (half not JSON, half JSON that breaks the schema); `auto_call_rate`: share of
    `tool_choice: auto` requests (last message from the user) that call a tool rather than answer;
    `parallel_calls`: share of calling responses that call two tools at once."""

    invalid_rate: Probability = 0.0
    auto_call_rate: Probability = 0.9
    parallel_calls: Probability = 0.0


class ErrorMix(_Strict):
    """Per-request probabilities of each injected fault (at most one per attempt; sum <= 1).

    Pre-stream faults (http_*, rate_limit) come back as an HTTP error before any byte of a stream and
    let OpenRouter-style routing fall back; the others happen after the response started.
    """

    rate_limit: Probability = 0.0
    http_500: Probability = 0.0
    http_502: Probability = 0.0
    http_503: Probability = 0.0
    mid_stream: Probability = 0.0
    reset: Probability = 0.0
    hang_first_byte: Probability = 0.0
    hang_mid_stream: Probability = 0.0
    malformed_chunk: Probability = 0.0
    retry_after_s: Annotated[int, Field(ge=0)] = 2
    hang_max_s: PositiveFloat = 300.0

    @model_validator(mode="after")
    def _sum_at_most_one(self) -> ErrorMix:
        total = sum(self.probabilities().values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities sum to {total:.3f}, must be <= 1")
        return self

    def probabilities(self) -> dict[str, float]:
        """Fault kind -> probability, in a fixed order (the order of the sampling walk)."""
        return {k: getattr(self, k) for k in FAULT_KINDS}


#: Every injectable fault kind, in sampling order. Also the keys of the stats' `errors` maps.
FAULT_KINDS: tuple[str, ...] = (
    "rate_limit", "http_500", "http_502", "http_503", "mid_stream", "reset",
    "hang_first_byte", "hang_mid_stream", "malformed_chunk",
)
PRE_STREAM_FAULTS: frozenset[str] = frozenset({"rate_limit", "http_500", "http_502", "http_503"})


class OutageWindow(_Strict):
    """A scheduled outage, relative to server start: [start_s, start_s+duration_s), repeating every
    `every_s` when given. During it every request to the provider fails with `status` before streaming."""

    start_s: NonNegFloat
    duration_s: PositiveFloat
    every_s: PositiveFloat | None = None
    status: Annotated[int, Field(ge=400, le=599)] = 502

    @model_validator(mode="after")
    def _period_longer_than_window(self) -> OutageWindow:
        if self.every_s is not None and self.every_s <= self.duration_s:
            raise ValueError("every_s must be > duration_s (otherwise the outage never ends)")
        return self

    def active(self, t: float) -> bool:
        """True when `t` seconds after server start falls inside this window."""
        if t < self.start_s:
            return False
        into = t - self.start_s
        if self.every_s is not None:
            into = math.fmod(into, self.every_s)
        return into < self.duration_s


class PrefillProfile(_Strict):
    """Prompt processing speed: TTFT grows by (prompt tokens not served from the cache) / `tokens_per_s`
    on top of the `ttft` draw, the linear prefill cost a TTFT-vs-prompt-length fit recovers.
    `tokens_per_s: null` (the default) keeps TTFT independent of the prompt."""

    tokens_per_s: PositiveFloat | None = None


class CacheProfile(_Strict):
    """A prefix cache per (model, provider), in blocks of `block_tokens` (prompt text hashed in blocks
    of 4 characters per token, cache.py). A request whose leading blocks were seen before (at least
    `min_tokens` of them) hits with probability `hit_rate`, the chance that it lands on a replica that
    holds them; a hit reports those tokens as `usage.prompt_tokens_details.cached_tokens` and skips
    `ttft_saving` (0..1) of their prefill time. `hit_rate: 0` (the default) disables the cache."""

    hit_rate: Probability = 0.0
    ttft_saving: Probability = 1.0
    min_tokens: Annotated[int, Field(ge=1)] = 1024
    block_tokens: Annotated[int, Field(ge=1, le=65_536)] = 128
    max_blocks: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000


class Profile(_Strict):
    """How one provider serves one model: latency, speed, capacity, reasoning, faults, outages."""

    ttft: TtftProfile
    decode: DecodeProfile
    prefill: PrefillProfile = PrefillProfile()
    cache: CacheProfile = CacheProfile()
    capacity: Annotated[int, Field(ge=1)] = 64
    reasoning: ReasoningProfile = ReasoningProfile()
    keepalive_ms: Annotated[float, Field(ge=0)] = 1000.0  # 0 disables `: OPENROUTER PROCESSING`
    errors: ErrorMix = ErrorMix()
    outages: tuple[OutageWindow, ...] = ()
    structured: StructuredProfile = StructuredProfile()


class ProviderSpec(_Strict):
    """One provider endpoint of a model. `slug` is filled from the mapping key."""

    slug: str = ""
    name: str
    profile: Profile
    pricing: Pricing | None = None  # None: the model's base price
    weight: PositiveFloat = 1.0  # share of default (unordered) routing
    quantization: str = "fp8"
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_OUTPUT_TOKENS)] | None = None
    uptime_last_30m: Annotated[float, Field(ge=0, le=100)] = 99.5
    #: Share of requests *pinned* to this provider that the router serves with another provider anyway
    #: (seeded): what tokenpulse's `wrong_provider` class exists to catch (mock/routing.py).
    misroute: Probability = 0.0
    #: Where misrouted requests go (slugs of the same model's providers); empty: any other provider.
    misroute_to: tuple[str, ...] = ()
    #: Request parameters this provider does not support (`seed`, `tools`, ...): a request carrying one
    #: with `provider.require_parameters: true` is not routed here (OpenRouter's documented filter).
    unsupported_parameters: tuple[str, ...] = ()


class OutputLength(_Strict):
    """Natural answer length in tokens (uniform), used when max_tokens does not cut it short."""

    min: Annotated[int, Field(ge=1, le=MAX_OUTPUT_TOKENS)] = 60
    max: Annotated[int, Field(ge=1, le=MAX_OUTPUT_TOKENS)] = 200

    @model_validator(mode="after")
    def _ordered(self) -> OutputLength:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class ModelSpec(_Strict):
    """A model and the providers serving it. `id` is filled from the mapping key."""

    id: str = ""
    name: str
    description: str = ""
    context_length: Annotated[int, Field(ge=1)]
    reasoning: bool = False
    default_effort: Literal["low", "medium", "high"] = "medium"
    pricing: Pricing
    output_tokens: OutputLength = OutputLength()
    created: int = 1_735_689_600  # 2025-01-01, a fixed value keeps responses deterministic
    providers: dict[str, ProviderSpec]

    @field_validator("providers")
    @classmethod
    def _providers(cls, v: dict[str, ProviderSpec]) -> dict[str, ProviderSpec]:
        if not v:
            raise ValueError("a model needs at least one provider")
        for slug, spec in v.items():
            if not _SLUG.match(slug):
                raise ValueError(f"provider slug {slug!r} must be lowercase [a-z0-9._-]")
            unknown = [t for t in spec.misroute_to if t not in v or t == slug]
            if unknown:
                raise ValueError(f"provider {slug!r}: misroute_to names {', '.join(unknown)}, not another "
                                 "provider of this model")
        return {slug: spec.model_copy(update={"slug": slug}) for slug, spec in v.items()}

    def price_of(self, provider: ProviderSpec) -> Pricing:
        return provider.pricing or self.pricing


class MockFarm(_Strict):
    """The whole farm. `seed` makes every sampled latency, fault and text reproducible."""

    seed: int = 1
    credit_limit_usd: PositiveFloat | None = 100.0  # GET /key's limit; spending past it gives 402
    #: A connection without a complete request in progress is closed after this long (http.py).
    idle_timeout_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = DEFAULT_IDLE_TIMEOUT_S
    #: GET /generation answers 404 for a seeded time in [lo, hi] seconds after a generation ends, as the
    #: real endpoint can (mock/generations.py); [0, 0] makes it readable at once.
    generation_ready_s: tuple[Annotated[float, Field(ge=0, le=600, allow_inf_nan=False)],
                              Annotated[float, Field(ge=0, le=600, allow_inf_nan=False)]] = (0.5, 2.0)
    #: Share of chat requests OpenRouter itself refuses with a 429 (its own request limits, before any
    #: routing: `X-RateLimit-*` headers, no provider in the metadata), seeded.
    openrouter_rate_limit: Probability = 0.0
    models: dict[str, ModelSpec]

    @field_validator("models")
    @classmethod
    def _models(cls, v: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if not v:
            raise ValueError("a farm needs at least one model")
        for model_id in v:
            if not _MODEL_ID.match(model_id):
                raise ValueError(f"model id {model_id!r} must look like author/slug")
        return {mid: spec.model_copy(update={"id": mid}) for mid, spec in v.items()}

    @model_validator(mode="after")
    def _one_name_per_slug(self) -> MockFarm:
        names: dict[str, str] = {}
        for model in self.models.values():
            for slug, prov in model.providers.items():
                if names.setdefault(slug, prov.name) != prov.name:
                    raise ValueError(
                        f"provider {slug!r} has two display names ({names[slug]!r}, {prov.name!r})")
        return self

    def provider_slugs(self) -> list[str]:
        """All provider slugs, in first-appearance order."""
        seen: dict[str, None] = {}
        for model in self.models.values():
            for slug in model.providers:
                seen.setdefault(slug)
        return list(seen)


class FarmConfigError(ValueError):
    """A farm file that cannot be used. `problems` holds (field path, message) pairs; str() gives one
    `<file>: <field path>: <problem>` line per problem."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {path}: {msg}" for path, msg in problems))


def _loc_path(loc: tuple[int | str, ...]) -> str:
    """pydantic loc -> `models.author/slug.providers.fast.profile.ttft.p99_ms` (indices as [i])."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _clean_message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def farm_from_data(data: Any, source: str) -> MockFarm:
    """Validate already-parsed data; raise FarmConfigError naming each bad field path."""
    if not isinstance(data, dict):
        raise FarmConfigError(source, [("(top level)", "expected a mapping with `models:`")])
    try:
        return MockFarm.model_validate(data)
    except ValidationError as exc:
        problems = [(_loc_path(e["loc"]), _clean_message(e["msg"])) for e in exc.errors()]
        raise FarmConfigError(source, problems) from None


def load_farm(path: str | Path) -> MockFarm:
    """Read and validate a farm YAML file."""
    source = str(path)
    try:
        data = read_yaml(path)
    except YamlReadError as exc:
        if exc.unreadable:
            raise FarmConfigError(source, [("(file)", exc.problem)]) from None
        where = f"line {exc.line} column {exc.column}" if exc.line else "(yaml)"
        raise FarmConfigError(source, [(where, f"invalid YAML: {exc.problem}")]) from None
    return farm_from_data(data, source)


def default_farm() -> MockFarm:
    """The farm shipped as package data (default_farm.yaml): the product's default target."""
    res = resources.files(__package__).joinpath("default_farm.yaml")
    data = yaml.safe_load(res.read_text(encoding="utf-8"))
    return farm_from_data(data, "default_farm.yaml")


def dump_farm(farm: MockFarm) -> str:
    """YAML text that load_farm() reads back into an equal farm (benchmarks write farms this way); fields at
    their defaults are left out, so that a farm of 1,000 providers stays under the config size limit."""
    data = farm.model_dump(mode="json", exclude_defaults=True)
    for model in data["models"].values():
        model.pop("id", None)
        for prov in model["providers"].values():
            prov.pop("slug", None)
    text: str = yaml.safe_dump(data, sort_keys=False)
    return text
