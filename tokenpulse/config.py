"""The one validated configuration model, shared by the prober and the load tests.

Why one model: a provider probed by the prober and load-tested by Locust must be the same target with
the same request (pinned provider, same reasoning setting), and a typo must fail before anything starts.
Every model forbids unknown keys. `load_config` substitutes `${VAR}` / `${VAR:-default}` in string values
(after YAML parsing, so a value can never inject YAML) and turns every problem into a `ConfigError` that
names the file, the field path and the problem. Secrets are referenced by environment variable name only.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tokenpulse.core import request as request_defaults
from tokenpulse.core.keys import insecure_key_problem
from tokenpulse.core.redact import register_secret
from tokenpulse.core.request import ChatRequest, ReasoningEffort, Timeouts
from tokenpulse.core.schema_check import SchemaJudge, schema_problem
from tokenpulse.core.structured import response_format, tool_payload
from tokenpulse.yamlfile import YamlReadError, parse_yaml, read_yaml

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$"
#: A provider slug, optionally with OpenRouter's endpoint variant (`deepinfra/fp8`, as `tag` in the
#: model endpoints listing); `provider.only` accepts both forms.
PROVIDER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}(/[A-Za-z0-9][A-Za-z0-9._\-]{0,62})?$"
#: Provider label value for endpoints that have no provider routing (plain OpenAI-compatible servers).
NO_PROVIDER = "default"

#: A day: no timeout, objective or interval of a monitor needs more, and huge values overflow the
#: clock arithmetic (`total_s: 1e300` made every probe fail with OverflowError).
MAX_SECONDS = 86_400.0
#: The shortest probe interval (and the shortest `--interval`): below it a prober only burns money.
MIN_INTERVAL_S = 0.5

PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
IntervalSeconds = Annotated[float, Field(ge=MIN_INTERVAL_S, le=MAX_SECONDS, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
#: RFC 9110 field-name token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def field_error(path: str, message: str) -> PydanticCustomError:
    """A validator's error about a field below the model it validates: `_describe` appends `path` to the
    error's location, so the message reads `FILE: endpoints.0.base_url: problem`."""
    return PydanticCustomError("field_path", "{path}: {message}", {"path": path, "message": message})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsConfig(_Strict):
    """Per-request time limits in seconds. Each expiry is its own error class (docs/metrics.md)."""

    connect_s: PositiveSeconds = Field(default=request_defaults.DEFAULT_CONNECT_S,
                                       description="TCP and TLS connection set-up (`timeout_connect`).")
    ttft_s: PositiveSeconds = Field(default=request_defaults.DEFAULT_TTFT_S,
                                    description="from sending the request to the first token of any kind; "
                                    "keep-alive comments do not reset it (`timeout_ttft`).")
    idle_s: PositiveSeconds = Field(default=request_defaults.DEFAULT_IDLE_S,
                                    description="longest silence between two reads once the first token has "
                                    "arrived (`timeout_idle`).")
    total_s: PositiveSeconds = Field(default=request_defaults.DEFAULT_TOTAL_S,
                                     description="the whole request, from sending it to the end of the stream "
                                     "(`timeout_total`).")

    def to_timeouts(self) -> Timeouts:
        return Timeouts(connect=self.connect_s, ttft=self.ttft_s, idle=self.idle_s, total=self.total_s)


class Reasoning(_Strict):
    """OpenRouter's `reasoning` request object, sent as it is. Probes pin it: never compare providers run
    with different reasoning settings (DESIGN.md §3). Set either `effort` or `max_tokens`, not both."""

    effort: ReasoningEffort | None = Field(
        default=None, description="reasoning effort level (OpenRouter maps it onto each provider's setting).")
    max_tokens: int | None = Field(default=None, ge=0, description="reasoning token budget, for models that "
                                   "take a budget rather than an effort level.")
    exclude: bool | None = Field(default=None, description="true: the model still reasons (and bills the "
                                 "tokens) but the reasoning text is not streamed, so TTFT equals TTFC.")
    enabled: bool | None = Field(default=None, description="turn reasoning on or off with the model's "
                                 "default effort.")

    @model_validator(mode="after")
    def _one_budget(self) -> Reasoning:
        if self.effort is not None and self.max_tokens is not None:
            raise ValueError("set either effort or max_tokens, not both")
        return self

    def to_request(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ToolSpec(_Strict):
    """One tool of the `tools` workload or a probe (OpenAI's `function`): its arguments are judged
    against `parameters` (core/schema_check.py)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the function name (OpenAI's rule: "
                      "letters, digits, _ and -, at most 64).")
    description: str = Field(default="", max_length=1024, description="what the tool does, for the model.")
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"},
                                       description="JSON Schema of the arguments.")

    @field_validator("parameters")
    @classmethod
    def _usable_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = schema_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def as_tuple(self) -> tuple[str, str, dict[str, Any]]:
        return (self.name, self.description, self.parameters)


def _usable_response_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    problem = None if value is None else schema_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class ProbeProfile(_Strict):
    """What a probe asks. Deterministic by default (temperature 0, fixed seed) so runs compare."""

    prompt: str = Field(default="Reply with a short paragraph about the sea.", min_length=1,
                        description="the user message.")
    system: str | None = Field(default=None, description="an optional system message, sent first.")
    max_tokens: int = Field(default=64, ge=1, le=1_000_000, description="output token limit; on OpenRouter it "
                            "bounds reasoning and answer tokens together.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="sampling temperature; 0 keeps answers "
                               "(and their lengths) comparable from probe to probe.")
    seed: int | None = Field(default=1234, description="sampling seed sent with the request (null: none); "
                             "providers may ignore it.")
    reasoning: Reasoning | None = Field(default=None, description="the pinned reasoning setting (null: send "
                                        "none, so the model's default applies).")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="fields added to the request body "
                                       "as they are, last, so they can override any field tokenpulse sets.")

    # structured probes (docs/prober.md, "Tool calls and JSON answers")
    tools: list[ToolSpec] | None = Field(default=None, description="tool definitions sent with every probe; "
                                         "the arguments of each call are judged against their schema "
                                         "(`tokenpulse_structured_answers_total`). Write a `prompt` that "
                                         "calls them.")
    tool_choice: Literal["auto", "required"] = Field(default="required", description="with `tools`: a "
                                                     "response without a call is `missing` when required.")
    response_schema: dict[str, Any] | None = Field(default=None, description="a JSON Schema sent as strict "
                                                   "`response_format`; every answer is judged against it.")

    @field_validator("response_schema")
    @classmethod
    def _usable_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _usable_response_schema(value)

    @model_validator(mode="after")
    def _one_structure(self) -> ProbeProfile:
        if self.tools and self.response_schema is not None:
            raise ValueError("set either tools or response_schema, not both")
        return self

    @property
    def structured_kind(self) -> str | None:
        """`tools` or `json_schema` when probes are judged (core/schema_check.py), else None."""
        return "tools" if self.tools else "json_schema" if self.response_schema is not None else None

    def judge(self) -> SchemaJudge | None:
        if self.tools:
            return SchemaJudge(tool_schemas={t.name: t.parameters for t in self.tools})
        if self.response_schema is not None:
            return SchemaJudge(answer_schema=self.response_schema)
        return None

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": self.prompt})
        return messages


class Price(_Strict):
    """USD per million tokens; used when the server does not report `usage.cost`."""

    prompt_per_mtok: float = Field(ge=0, allow_inf_nan=False, description="USD per million prompt tokens.")
    completion_per_mtok: float = Field(ge=0, allow_inf_nan=False, description="USD per million output "
                                       "tokens (reasoning tokens included).")

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        return ((prompt_tokens or 0) * self.prompt_per_mtok + (completion_tokens or 0) * self.completion_per_mtok) / 1e6


class ConfirmThresholds(_Strict):
    """Flap damping for the confirmed state, as uptime monitors do: N failures in a row before
    `down`, M successes in a row before `up` again."""

    failures_before_down: int = Field(default=3, ge=1, le=100, description="provider-side failures in a row "
                                      "before a target is confirmed `down` (429 and other caller-side errors "
                                      "neither count nor reset the streak).")
    successes_before_up: int = Field(default=2, ge=1, le=100, description="successes in a row before a `down` "
                                     "target is `up` again.")


class SLOOverride(_Strict):
    """Objectives of one model or one provider that differ from the defaults; unset fields inherit."""

    ttft_s: PositiveSeconds | None = Field(default=None, description="TTFT threshold of this model / provider "
                                           "(must be a bucket bound of `tokenpulse_ttft_seconds`).")
    ttft_share: float | None = Field(default=None, gt=0, lt=1, description="share of probes that must reach "
                                     "the first token within `ttft_s`.")
    availability: float | None = Field(default=None, gt=0, lt=1, description="availability objective.")


class Objectives(BaseModel):
    """The objectives in force for one target (defaults, then the model's override, then the provider's)."""

    model_config = ConfigDict(frozen=True)
    ttft_s: float
    ttft_share: float
    availability: float


class SLO(_Strict):
    """Objectives for goodput, status and alerts. `tokenpulse rules` writes the Prometheus recording and
    alert rules from them (docs/observability.md, "Changing the SLOs"). Overrides apply field by field;
    a provider's override wins over its model's."""

    ttft_s: PositiveSeconds = Field(default=2.0, description="TTFT objective: the prober's `up` vs `degraded` "
                                    "(median of the last 3 probes), load-test goodput and the TTFT burn-rate "
                                    "alerts (a bucket bound of `tokenpulse_ttft_seconds`).")
    tpot_s: PositiveSeconds = Field(default=0.05, description="TPOT objective, for load-test goodput.")
    e2e_s: PositiveSeconds | None = Field(default=None, description="E2E objective (whole request, from the "
                                          "scheduled arrival under a rate), for load-test goodput; unset: "
                                          "not judged.")
    error_rate: float | None = Field(default=None, ge=0, lt=1, description="highest error share a load step "
                                     "may have (`--shape search` judges each step against it); unset: not "
                                     "judged.")
    percentiles: dict[Annotated[str, Field(pattern=r"^(ttft|tpot|e2e)_p\d{1,2}(\.\d+)?$")], PositiveSeconds] = Field(
        default_factory=dict, description="percentile objectives of a load step, e.g. `{ttft_p95: 1.0, tpot_p50: "
        "0.05}` (seconds): `--shape search` passes a level only when each holds (the pNN within the "
        "threshold, judged with its interval).")
    availability: float = Field(default=0.99, gt=0, lt=1, description="availability objective (share of "
                                "eligible requests that succeed): the availability burn-rate alerts.")
    ttft_share: float = Field(default=0.95, gt=0, lt=1, description="share of probes that must reach the "
                              "first token within `ttft_s` (the TTFT SLO's objective).")
    models: dict[str, SLOOverride] = Field(default_factory=dict, description="per-model overrides, by model "
                                           "id (a reasoning model's TTFT is not a chat model's).")
    providers: dict[Annotated[str, Field(pattern=PROVIDER_PATTERN)], SLOOverride] = Field(
        default_factory=dict, description="per-provider overrides, by provider label (win over `models`).")
    min_probes: int = Field(default=20, ge=1, le=100_000, description="a burn-rate alert needs at least this "
                            "many eligible probes in its long window: at a 300 s interval two failed probes "
                            "in an hour are not a significant burn.")
    third_party_burns: Literal["ticket", "page"] = Field(
        default="ticket", description="severity of per-provider burn-rate alerts on `kind: openrouter` "
        "endpoints (providers you do not run); `openai` endpoints' burns always page.")
    credits_days_left: float = Field(default=3.0, gt=0, le=365, allow_inf_nan=False, description="ticket when "
                                     "the OpenRouter credit left lasts fewer days than this at the spend "
                                     "rate of the last 6 hours.")

    def objectives(self, model: str, provider: str) -> Objectives:
        """The objectives of one target: defaults, overridden by the model's, then by the provider's."""
        values = {"ttft_s": self.ttft_s, "ttft_share": self.ttft_share, "availability": self.availability}
        for override in (self.models.get(model), self.providers.get(provider)):
            if override is not None:
                values.update({k: v for k, v in override.model_dump().items() if v is not None})
        return Objectives(**values)


#: Router-choice label values start with this, so they can never be a provider slug (PROVIDER_PATTERN).
ROUTE_PREFIX = "~"
#: `provider.quantizations` values (OpenRouter's documented levels), for router-choice targets.
RouteQuantization = Literal["int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown"]


class MaxPrice(_Strict):
    """OpenRouter's `provider.max_price`: the most a request may cost, USD per million tokens."""

    prompt: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False, description="USD per "
                                 "million prompt tokens.")
    completion: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False, description="USD per "
                                     "million output tokens.")


class RouteChoice(_Strict):
    """One *router's choice* target: the model unpinned, as a user who does not pin gets it, with an
    optional routing preference (docs/getting-started-openrouter.md, "The router's own choice"). Its
    `provider` label is `~` and the routing (`~default`, `~sort:throughput`, `~nitro`, `~floor`, ...,
    or `~<name>`), from the config only; each record keeps the provider that served it."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+\-]{0,62}$", description="the "
                             "label after `~` (default: made from the fields, e.g. `sort:price`).")
    sort: Literal["price", "throughput", "latency"] | None = Field(default=None, description="`provider.sort`: "
                                                                   "try providers cheapest, fastest-decoding "
                                                                   "or lowest-latency first.")
    variant: Literal["nitro", "floor"] | None = Field(default=None, description="model suffix `:nitro` "
                                                      "(throughput sort) or `:floor` (price sort).")
    max_price: MaxPrice | None = Field(default=None, description="`provider.max_price`: only providers at most "
                                       "this expensive.")
    quantizations: list[RouteQuantization] | None = Field(default=None, min_length=1, description="`provider."
                                                          "quantizations`: only providers serving one of these.")

    @model_validator(mode="after")
    def _one_sort(self) -> RouteChoice:
        if self.sort is not None and self.variant is not None:
            raise ValueError("set either sort or variant (:nitro is the throughput sort, :floor the price "
                             "sort), not both")
        return self

    @property
    def label(self) -> str:
        """The target's `provider` label: bounded, made from the config alone."""
        if self.name:
            return ROUTE_PREFIX + self.name
        parts: list[str] = [f"sort:{self.sort}"] if self.sort else [self.variant] if self.variant else []
        if self.max_price is not None:
            parts.append("max_price")
        if self.quantizations:
            parts.append("q:" + "+".join(self.quantizations))
        return ROUTE_PREFIX + (",".join(parts) or "default")

    def routing(self) -> dict[str, Any]:
        """The `provider` object of the request (fallbacks left on: that is the router's choice)."""
        routing: dict[str, Any] = {}
        if self.sort:
            routing["sort"] = self.sort
        if self.max_price is not None:
            routing["max_price"] = self.max_price.model_dump(exclude_none=True)
        if self.quantizations:
            routing["quantizations"] = list(self.quantizations)
        return routing

    def model_id(self, model: str) -> str:
        return f"{model}:{self.variant}" if self.variant else model


class ModelTarget(_Strict):
    """One model of an endpoint, and the providers to measure it on. Set either `providers` or
    `discover: true`, not both; each provider at most once."""

    id: str = Field(min_length=1, max_length=200, description="the model id sent in requests and used as "
                    "the `model` label, e.g. `nvidia/nemotron-3-super-120b-a12b`.")
    providers: list[Annotated[str, Field(pattern=PROVIDER_PATTERN)]] = Field(
        default_factory=list, description="OpenRouter provider slugs or endpoint tags (`deepinfra/fp8`); each "
        "is its own target, pinned with `provider.only` and `allow_fallbacks: false`. Empty: one unpinned "
        "target with provider label `default`.")
    discover: bool = Field(default=False, description="read the provider list from the model's endpoints "
                           "listing at start and every `probe.discovery_interval_s` (prober only; load tests "
                           "need an explicit list).")
    profiles: list[str] = Field(default_factory=lambda: ["default"], min_length=1, description="names of "
                                "`profiles` entries to probe with; each is its own target.")
    interval_s: IntervalSeconds | None = Field(default=None, description="overrides `probe.interval_s` for "
                                               "this model.")
    jitter_s: Seconds | None = Field(default=None, description="overrides "
                                   "`probe.jitter_s` for this model.")
    timeouts: TimeoutsConfig | None = Field(default=None, description="overrides `probe.timeouts` for this "
                                            "model's probes.")
    price: Price | None = Field(default=None, description="turns usage into cost when the server sends no "
                                "`usage.cost`; also lets `--max-cost` bound a request before it is sent.")
    context_length: int | None = Field(default=None, ge=1, le=100_000_000, description="the model's context "
                                       "in tokens, when the API's models listing does not give "
                                       "`context_length`; long load-test prompts never exceed it.")
    routes: list[RouteChoice] = Field(default_factory=list, max_length=16, description="router's-choice "
                                      "targets besides the pinned providers: each entry is the model unpinned "
                                      "(optionally sorted, `:nitro`/`:floor`, `max_price`, `quantizations`), "
                                      "its own target with provider label `~...`. With routes and no "
                                      "`providers`, there is no `default` target.")
    require_parameters: bool = Field(default=True, description="pinned requests send `provider."
                                     "require_parameters: true`, so a provider that would ignore a parameter "
                                     "of the request (reasoning, tools, response_format, seed) is refused "
                                     "(an error) instead of silently used; a profile's `extra_body.provider` "
                                     "may still set it.")

    @field_validator("providers")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({p for p in value if value.count(p) > 1})
        if dupes:
            raise ValueError(f"duplicate providers: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _discover_xor_list(self) -> ModelTarget:
        if self.discover and self.providers:
            raise ValueError("set either providers or discover: true, not both")
        labels = [r.label for r in self.routes]
        dupes = sorted({label for label in labels if labels.count(label) > 1})
        if dupes:
            raise ValueError(f"routes: two entries make the same target {', '.join(dupes)}; give them "
                             "distinct `name`s")
        return self

    def pinned_labels(self) -> list[str]:
        """The provider labels of the pinned (or plain unpinned) targets of this model: its providers,
        else `default` unless router's-choice `routes` stand in for it (discovery: none here)."""
        if self.discover:
            return []
        return list(self.providers) or ([] if self.routes else [NO_PROVIDER])

    def route(self, label: str) -> RouteChoice | None:
        return next((r for r in self.routes if r.label == label), None)


class Endpoint(_Strict):
    """One API. `base_url` is the API root (`…/api/v1`, `…/v1`), not the `/chat/completions` URL;
    `headers` may not hold `Authorization`; `providers` and `discover` need `kind: openrouter`."""

    name: str = Field(pattern=NAME_PATTERN, description="the `endpoint` label; unique in the file.")
    base_url: str = Field(description="API root as written for the openai SDK, e.g. "
                          "`https://openrouter.ai/api/v1` or `http://gpu-box:8000/v1`.")
    kind: Literal["openrouter", "openai"] = Field(default="openrouter", description="`openrouter`: provider "
                                                  "pinning, discovery and key credits; `openai`: any "
                                                  "OpenAI-compatible server, one target per model.")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="name of "
                                    "the environment variable holding the API key (sent as a bearer token; "
                                    "never logged). Unset variable: requests go without a key, with a warning.")
    allow_insecure_key: bool = Field(default=False, description="allow sending the key in `api_key_env` over "
                                     "plain http to a host that is not a loopback address (anyone on the path "
                                     "can read it); without it such an endpoint is a config error whenever "
                                     "the variable is set.")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers, e.g. "
                                    "OpenRouter's `X-Title`; names are HTTP tokens, values may not hold CR, "
                                    "LF or NUL.")
    models: list[ModelTarget] = Field(min_length=1, description="the models to measure on this endpoint.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError(f"must be an http(s) URL such as https://openrouter.ai/api/v1, got {value!r}")
        if value.rstrip("/").endswith("/chat/completions"):
            raise ValueError("give the API root (…/v1), not the /chat/completions URL")
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _no_auth_header(cls, value: dict[str, str]) -> dict[str, str]:
        if any(k.lower() == "authorization" for k in value):
            raise ValueError("do not put credentials in headers; name the variable in api_key_env")
        for name, text in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            bad = next((c for c in text if c in "\r\n\x00"), None)
            if bad is not None:
                # A CR or LF would end the header and inject another one into every request.
                raise ValueError(f"header {name}: value holds {bad!r}; CR, LF and NUL are not allowed")
        return value

    @model_validator(mode="after")
    def _providers_need_openrouter(self) -> Endpoint:
        if self.kind == "openai":
            for i, model in enumerate(self.models):
                if model.providers or model.discover or model.routes:
                    raise field_error(f"models.{i}", "providers/discover/routes need kind: openrouter "
                                     "(plain OpenAI-compatible servers have no provider routing)")
        return self


class GenerationLookups(_Strict):
    """Looking up what OpenRouter measured (`GET /generation?id=`) after each request of a `kind:
    openrouter` endpoint: off the request's path, bounded, retried while it answers 404
    (docs/getting-started-openrouter.md, "What OpenRouter measured")."""

    max_rate_per_s: float = Field(default=5.0, ge=0, le=1000, allow_inf_nan=False, description="lookups per "
                                  "second at most, over the whole run (a load test's processes share it); "
                                  "requests above this rate are not looked up and counted as `skipped` in "
                                  "the report, so a fast run does not double its traffic to OpenRouter. 0 "
                                  "turns lookups off.")
    in_flight: int = Field(default=4, ge=1, le=64, description="lookups running at once per process.")
    queue: int = Field(default=1000, ge=1, le=100_000, description="requests waiting for a lookup per "
                       "process; past it, one is `dropped` (counted in the report, never silently).")
    deadline_s: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False, description="give up on a "
                              "generation this long after its stream ended (still 404: `not_found`).")
    first_delay_s: float = Field(default=0.5, ge=0, le=60, allow_inf_nan=False, description="the first ask "
                                 "this long after the stream ended (then backing off while it is 404): "
                                 "OpenRouter writes a generation a moment after the stream, so asking "
                                 "later costs fewer requests per lookup and only delays the figures.")


#: The prober's lookups: figures for dashboards, where a few seconds' delay costs nothing and each saved
#: request counts (at 1,000 targets every 30 s, lookups at 5/s asking at 0.5 s cost 1.4 % of a core;
#: docs/benchmarks.md): fewer per second, asked later.
def _probe_generation_lookups() -> GenerationLookups:
    return GenerationLookups(max_rate_per_s=2.0, first_delay_s=2.0)


class ProbeSettings(_Strict):
    """The prober's schedule and defaults (docs/prober.md)."""

    interval_s: IntervalSeconds = Field(default=60.0, description="time between two probes of a target.")
    jitter_s: Seconds = Field(default=5.0, description="random delay added to each "
                            "scheduled probe, capped at a quarter of the interval.")
    max_in_flight: int = Field(default=32, ge=1, le=10_000, description="probes running at once, over all "
                               "targets, each counted for its first `slo.ttft_s` (a probe past it runs on "
                               "uncounted until its timeouts end it); waiting for a slot shows as scheduler "
                               "lag.")
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig, description="per-probe time limits.")
    confirm: ConfirmThresholds = Field(default_factory=ConfirmThresholds, description="flap damping of the "
                                       "confirmed up/down state.")
    credits_interval_s: IntervalSeconds = Field(default=300.0, description="how often OpenRouter key credits "
                                                "are read (`GET /key`).")
    #: How often `discover: true` models re-read their provider list (new providers are added; a
    #: failed discovery is retried every minute until it succeeds).
    discovery_interval_s: IntervalSeconds = Field(default=3600.0, description="how often `discover: true` "
                                                  "models re-read their provider list (a failed discovery "
                                                  "is retried every minute).")
    discovery_max_targets: int = Field(default=64, ge=1, le=1000, description="providers of one `discover: "
                                       "true` model probed at once, counted across refreshes: a provider "
                                       "new in a later listing joins only while fewer are probed (retired "
                                       "ones free their place).")
    retire_after_s: Seconds = Field(default=3600.0, description="a discovered provider missing from every "
                                    "successful listing for this long is retired: no longer probed, its "
                                    "series removed from /metrics (0: at the first listing without it).")
    blind_after_intervals: int = Field(default=3, ge=1, le=1000, description="a target with no successful probe "
                                       "for this many probe intervals, and no provider-side failure since "
                                       "its last success, is `blind` (reason `no_success`); caller-side "
                                       "errors (401, 402, 403, 429) make it blind after "
                                       "`confirm.failures_before_down` in a row.")
    state_dir: str | None = Field(default=None, min_length=1, max_length=4096, description="directory of "
                                  "the prober's SQLite history store (`history.sqlite3`, bounded: "
                                  "docs/prober.md), so the status page's history and incidents survive a "
                                  "restart; created if missing. null: history in memory only.")
    generations: GenerationLookups = Field(default_factory=_probe_generation_lookups, description="after each probe "
                                           "of a `kind: openrouter` endpoint, look up what OpenRouter "
                                           "measured (histograms of its latency and generation time); "
                                           "defaults here: `max_rate_per_s: 2`, `first_delay_s: 2`.")


class Workload(_Strict):
    """What load-test users send (docs/load-testing.md, "Workloads"). `kind: dataset` needs `dataset`."""

    kind: Literal["synthetic", "dataset", "prefill", "shared_prefix", "tools", "json_schema"] = Field(
        default="synthetic", description="`synthetic` prompts of a target length, records from `dataset`, "
        "`prefill` (prompts of each `input_lengths` in turn, for TTFT against prompt length), "
        "`shared_prefix` (a `shared_prefix_tokens` prefix on `shared_prefix_share` of the requests, for "
        "prompt caching), `tools` (prompts that call the tools, then the tool's result sent back) or "
        "`json_schema` (strict structured output); docs/load-testing.md.")
    input_tokens_mean: int = Field(default=256, ge=1, le=1_000_000, description="synthetic prompt length in "
                                   "tokens (built at 4 characters per token).")
    input_tokens_stddev: int = Field(default=0, ge=0, description="normal spread of the prompt length, clipped "
                                     "to [1, mean + 4 sd].")
    output_tokens_mean: int = Field(default=128, ge=1, le=1_000_000, description="`max_tokens` of each "
                                    "request.")
    output_tokens_stddev: int = Field(default=0, ge=0, description="normal spread of `max_tokens`.")
    fixed_output: bool = Field(default=False, description="send min_tokens/ignore_eos so every answer has max_tokens")
    unique_prefix: bool = Field(default=True, description="a unique prefix per request defeats prompt caching")
    dataset: str | None = Field(default=None, description="JSONL of OpenAI `messages` lists or ShareGPT records")
    turns: int = Field(default=1, ge=1, le=50, description="multi-turn conversations: turns per conversation")
    reasoning: Reasoning | None = Field(default=None, description="pinned for every request (null: send "
                                        "none).")
    temperature: float | None = Field(default=None, ge=0, le=2, description="sampling temperature (null: the "
                                      "server's default).")
    seed: int = Field(default=42, description="seeds prompt lengths and dataset picks, so a run can be "
                      "replayed.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="fields added to every request body "
                                       "as they are, e.g. `{top_p: 0.9}`.")

    input_lengths: list[Annotated[int, Field(ge=1, le=10_000_000)]] = Field(
        default_factory=lambda: [100, 1000, 10000, 100000], min_length=1, max_length=64,
        description="`kind: prefill`: the prompt lengths in tokens, sent in turn by every user (each "
        "length over the model's context less `max_tokens` is skipped for that model).")
    shared_prefix_tokens: int = Field(default=2048, ge=1, le=10_000_000, description="`kind: shared_prefix`: "
                                      "length in tokens of the prefix the sharing requests have in common.")
    shared_prefix_share: float = Field(default=0.8, ge=0, le=1, description="`kind: shared_prefix`: share of "
                                       "requests that start with the shared prefix; the rest are unique.")
    # kind: tools / json_schema (docs/load-testing.md, "Tool calling", "Structured output")
    tool_choice: Literal["auto", "required"] = Field(
        default="required", description="`tools`: the first turn's `tool_choice`; `required` makes a call "
        "mandatory, so a response without one counts as `missing`.")
    tools: list[ToolSpec] | None = Field(default=None, description="`tools`: the tool definitions (null: the "
                                         "built-in get_weather and search_flights, core/structured.py).")
    tool_prompts: list[str] | None = Field(default=None, description="`tools`: user prompts that call the "
                                           "tools, one picked per conversation (null: built-in ones).")
    tool_result_turn: bool = Field(default=True, description="`tools`: after a tool call, a second turn "
                                   "sends the tool's result back and measures the answer.")
    response_schema: dict[str, Any] | None = Field(default=None, description="`json_schema`: the JSON Schema "
                                                   "of the answer, sent strict (null: a built-in book schema).")
    schema_prompts: list[str] | None = Field(default=None, description="`json_schema`: user prompts (null: "
                                             "built-in ones).")

    @field_validator("response_schema")
    @classmethod
    def _usable_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _usable_response_schema(value)

    @model_validator(mode="after")
    def _dataset_needs_path(self) -> Workload:
        if self.kind == "dataset" and not self.dataset:
            raise ValueError("kind: dataset needs dataset: <path to a JSONL file>")
        return self


class LoadSettings(_Strict):
    """Settings of `tokenpulse load` (docs/load-testing.md)."""

    workload: Workload = Field(default_factory=Workload, description="what each request asks.")
    timeouts: TimeoutsConfig = Field(default_factory=lambda: TimeoutsConfig(ttft_s=120.0, idle_s=60.0, total_s=600.0),
                                     description="per-request time limits; longer than the prober's, as "
                                     "queues grow under load.")
    warmup_s: Seconds = Field(default=0.0, description="excluded from the figures "
                            "at the start of each step (`--warmup` overrides it).")
    drain_s: Seconds | None = Field(
        default=None,
        description="when a step lowers its users, the run ends or `--max-cost` stops it, requests in flight "
                    "get this long to finish; those still running are then recorded as `cancelled` with the "
                    "timings they reached (never dropped). Null: 60 s. Capped by `timeouts.total_s`, as no "
                    "request lives longer; 0 cancels at once.")
    seed: int | None = Field(
        default=None,
        description="seed of the Poisson arrivals of `--shape rate` (null: a fresh seed per run, recorded in "
                    "meta.json so the run can be replayed).")
    error_backoff_s: float = Field(
        default=1.0, ge=0, le=60, allow_inf_nan=False,
        description="closed-loop shapes: after a failed request a user pauses this long (or the server's "
                    "Retry-After, up to 60 s) before its next one, so a provider that fails fast (an outage, "
                    "429s) is not hammered in a tight loop that swamps the run with errors; 0 disables. "
                    "Open-loop (rate) arrivals are never delayed by it.")
    start_stagger_s: float = Field(
        default=1.0, ge=0, le=60, allow_inf_nan=False,
        description="closed-loop shapes: each user waits a random time up to this long before its first "
                    "request. Locust starts users in batches once a second; against a server that answers "
                    "in a steady time, a batch would otherwise send, finish and resend its requests in the "
                    "same millisecond for the whole run, a herd that loads the server and the generator in "
                    "bursts. 0 sends at once.")
    server_metrics: Literal["auto"] | list[str] = Field(
        default_factory=list, max_length=32,
        description="the servers' own Prometheus /metrics, scraped once a second during the run into "
                    "server-metrics.jsonl and summarized per step beside the client's figures (vLLM, llama.cpp, "
                    "SGLang and TGI names are understood; docs/self-hosted.md): a list of URLs, or `auto` for "
                    "each endpoint's server root + /metrics (`http://gpu-box:8000/v1` -> "
                    "`http://gpu-box:8000/metrics`). A server without /metrics is a warning, never a failed run.")
    generations: GenerationLookups = Field(default_factory=GenerationLookups, description="after each request "
                                           "to a `kind: openrouter` endpoint, look up what OpenRouter "
                                           "measured (`generations-*.jsonl` in the run folder).")

    @field_validator("server_metrics", mode="before")
    @classmethod
    def _metrics_urls(cls, value: Any) -> Any:
        """One message for every wrong shape (not one per member of the union)."""
        if value == "auto":
            return value
        for url in value if isinstance(value, list) else [value]:
            if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
                raise ValueError(f"must be `auto` or a list of http(s) URLs such as http://gpu-box:8000/metrics, "
                                 f"got {url!r}")
        return value

    @property
    def drain_window_s(self) -> float:
        """The drain in force: `drain_s` (default 60 s), never longer than a request may last."""
        return min(DEFAULT_DRAIN_S if self.drain_s is None else self.drain_s, self.timeouts.total_s)


#: `load.drain_s` when unset: long enough for a typical answer (hundreds of tokens at tens per second,
#: after a queue), short enough that a run's end is not held for minutes by a request that hangs.
DEFAULT_DRAIN_S = 60.0


class Config(_Strict):
    """The whole file. Endpoint names are unique, and every profile a model names is defined."""

    endpoints: list[Endpoint] = Field(min_length=1, description="the APIs to measure.")
    profiles: dict[str, ProbeProfile] = Field(default_factory=lambda: {"default": ProbeProfile()},
                                              description="named probe requests; models refer to them by "
                                              "name. Defining `profiles` replaces the built-in `default`.")
    probe: ProbeSettings = Field(default_factory=ProbeSettings, description="the prober's schedule and "
                                 "defaults.")
    slo: SLO = Field(default_factory=SLO, description="objectives for goodput, state and alerts.")
    load: LoadSettings = Field(default_factory=LoadSettings, description="load-test workload, timeouts and "
                               "warm-up.")

    @model_validator(mode="after")
    def _references(self) -> Config:
        names = [e.name for e in self.endpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise field_error("endpoints", f"duplicate names: {', '.join(dupes)}")
        seen: dict[tuple[str, str, str, str], str] = {}
        for ei, endpoint in enumerate(self.endpoints):
            for mi, model in enumerate(endpoint.models):
                for pi, profile in enumerate(model.profiles):
                    if profile not in self.profiles:
                        known = ", ".join(sorted(self.profiles)) or "none"
                        raise field_error(f"endpoints.{ei}.models.{mi}.profiles.{pi}", "unknown profile "
                                         f"{profile!r} (defined: {known})")
                    # Two entries that make the same target would be probed twice under one label set
                    # (double counts, a state that flips between them); discovery counts as one entry.
                    for provider in ((["(discover)"] if model.discover else model.pinned_labels())
                                     + [r.label for r in model.routes]):
                        key = (endpoint.name, model.id, provider, profile)
                        where = f"endpoints.{ei}.models.{mi}"
                        if key in seen:
                            raise field_error(where, f"duplicate target {'/'.join(key)} (also {seen[key]}); "
                                             "list each model once per endpoint, each profile once")
                        seen[key] = where
                    problem = _pin_conflict(self.profiles[profile].extra_body, model)
                    if problem:
                        raise field_error(f"profiles.{profile}.extra_body.provider", f"{problem} (used by "
                                          f"endpoints.{ei}.models.{mi}, which pins each provider)")
                problem = _pin_conflict(self.load.workload.extra_body, model)
                if problem:
                    raise field_error("load.workload.extra_body.provider", f"{problem} (load tests of "
                                      f"endpoints.{ei}.models.{mi} pin each provider)")
        return self

    def targets(self) -> Iterator[Target]:
        """Every (endpoint, model, provider, profile) with an explicit provider list (or no routing).
        Models with `discover: true` are resolved by the caller (it needs the network)."""
        for endpoint in self.endpoints:
            for model in endpoint.models:
                for provider in model.pinned_labels() + [r.label for r in model.routes]:
                    for profile in model.profiles:
                        yield self.target(endpoint, model, provider, profile)

    def target(self, endpoint: Endpoint, model: ModelTarget, provider: str, profile: str) -> Target:
        return Target(
            endpoint=endpoint,
            model=model,
            provider=provider,
            profile_name=profile,
            profile=self.profiles[profile],
            interval_s=model.interval_s or self.probe.interval_s,
            jitter_s=model.jitter_s if model.jitter_s is not None else self.probe.jitter_s,
            timeouts=(model.timeouts or self.probe.timeouts).to_timeouts(),
            route=model.route(provider),
        )


def split_pinned_routing(extra_body: Mapping[str, Any], provider: str | None, *,
                         require_parameters: bool = False, route: RouteChoice | None = None,
                         ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(routing, the rest of extra_body): the one place a request's `provider` object is built.

    Pinned to `provider`: `require_parameters` (the model's setting), then extra_body's `provider`
    object, then the pin (`only: [provider]`, `allow_fallbacks: false`) over both, so that extra_body's
    routing fields merge with the pin instead of replacing it. A router's-choice `route`: its routing
    (sort, max_price, quantizations) under extra_body's. Unpinned without a route, or with an extra_body
    `provider` that is not a mapping (the config refuses that for a pin), extra_body goes as it is."""
    routing = extra_body.get("provider")
    if routing is not None and not isinstance(routing, Mapping):
        return None, dict(extra_body)
    rest = {k: v for k, v in extra_body.items() if k != "provider"}
    if provider is not None:
        base = {"require_parameters": True} if require_parameters else {}
        return {**base, **(routing or {}), "only": [provider], "allow_fallbacks": False}, rest
    if route is not None:
        merged = {**route.routing(), **(routing or {})}
        return merged or None, rest
    return None, dict(extra_body)


def _pin_conflict(extra_body: Mapping[str, Any], model: ModelTarget) -> str | None:
    """Why `extra_body.provider` (a profile's or the load workload's) would undo the pin of `model`'s
    providers, or None. Only pinned targets (a provider list or discovery) are checked; an unpinned
    target sends it as it is."""
    if not (model.providers or model.discover) or "provider" not in extra_body:
        return None
    routing = extra_body["provider"]
    if not isinstance(routing, dict):
        return "must be a mapping of OpenRouter routing fields to merge with the provider pin"
    only = routing.get("only")
    if only is not None:
        pinned = ["(each discovered provider)"] if model.discover else model.providers
        if not (isinstance(only, list) and len(pinned) == 1 and only == pinned):
            return (f"only: {only!r} conflicts with the pinned provider ({', '.join(pinned)}); remove it, "
                    "the pin sets provider.only itself")
    if routing.get("allow_fallbacks") not in (None, False):
        return "allow_fallbacks must stay false for a pinned provider (fallbacks hide its failures)"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """One target (endpoint, model, provider, profile): its labels and everything needed to build its request;
    the prober schedules it, a load test sends it traffic."""

    endpoint: Endpoint
    model: ModelTarget
    provider: str
    profile_name: str
    profile: ProbeProfile
    interval_s: float
    jitter_s: float
    timeouts: Timeouts
    #: A router's-choice target (provider label `~...`): the model unpinned with this routing.
    route: RouteChoice | None = None

    @property
    def key(self) -> str:
        return f"{self.endpoint.name}/{self.model.id}/{self.provider}/{self.profile_name}"

    @property
    def labels(self) -> dict[str, str]:
        return {"endpoint": self.endpoint.name, "model": self.model.id, "provider": self.provider}

    @property
    def pinned_provider(self) -> str | None:
        return None if self.provider == NO_PROVIDER or self.route is not None else self.provider

    @property
    def request_model(self) -> str:
        """The model id sent: the configured one, with a route's `:nitro` / `:floor` suffix."""
        return self.route.model_id(self.model.id) if self.route is not None else self.model.id

    def routing(self, extra_body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(provider routing, the rest of `extra_body`) of this target's requests (split_pinned_routing)."""
        return split_pinned_routing(extra_body, self.pinned_provider,
                                    require_parameters=self.model.require_parameters, route=self.route)

    def chat_request(self) -> ChatRequest:
        """The request of this target. A pinned provider's `provider.only` and `allow_fallbacks: false`
        survive any `extra_body`: its `provider` object is merged under the pin, not put over it (the
        config rejects a `provider.only` or `allow_fallbacks: true` that would undo the pin)."""
        p = self.profile
        routing, extra_body = self.routing(p.extra_body)
        return ChatRequest(
            model=self.request_model,
            messages=p.messages(),
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            seed=p.seed,
            reasoning=p.reasoning.to_request() if p.reasoning else None,
            provider=self.pinned_provider,
            provider_routing=routing,
            extra_body=extra_body,
            tools=tool_payload([t.as_tuple() for t in p.tools]) if p.tools else None,
            tool_choice=p.tool_choice if p.tools else None,
            response_format=None if p.response_schema is None else response_format(p.response_schema),
        )


# --------------------------------------------------------------------------------------- loading
class ConfigError(Exception):
    """A config problem: `str()` is `FILE: FIELD.PATH: problem` lines, ready for stderr."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {path + ': ' if path else ''}{msg}" for path, msg in problems))


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; `$${` escapes a literal `${`. A value put into
    a header from the environment is registered with the redactor."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                if ".headers." in f".{path}.":
                    # A header filled from the environment is how servers with their own auth header
                    # (`api-key`, `X-API-Key`) get a key: treat it as one, so it is redacted like one.
                    register_secret(env[name])
                return env[name]
            if default is not None:
                return default
            raise ConfigError("", [(path, f"environment variable {name} is not set (use ${{{name}:-default}})")])
        text = value.replace("$${", "\x00")
        return _VAR.sub(repl, text).replace("\x00", "${")
    if isinstance(value, dict):
        return {k: substitute_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, env, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
    return value


def parse_config(data: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(source, [("", "the file must hold a mapping with an `endpoints` list")])
    _register_named_keys(data, os.environ if env is None else env)
    try:
        data = substitute_env(data, os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(source, exc.problems) from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err) for err in exc.errors()]) from None
    problems = _keys_in_clear(config, os.environ if env is None else env)
    if problems:
        raise ConfigError(source, problems)
    return config


def _keys_in_clear(config: Config, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Endpoints that would send a key (their `api_key_env` is set) over plain http to a host that is
    not loopback, without `allow_insecure_key`. Checked against the environment, not the file alone, so
    a key-less server on the LAN (`api_key_env` named but unset) stays usable."""
    problems = []
    for i, endpoint in enumerate(config.endpoints):
        if endpoint.api_key_env and env.get(endpoint.api_key_env) and not endpoint.allow_insecure_key:
            problem = insecure_key_problem(endpoint.base_url, endpoint.api_key_env)
            if problem:
                problems.append((f"endpoints.{i}.base_url", f"{problem}, or set allow_insecure_key: true"))
    return problems


def _register_named_keys(data: dict[Any, Any], env: Mapping[str, str]) -> None:
    """Register the keys in every variable the file names as `api_key_env` before validating, so even
    an error message about this file (which may quote a value) can be redacted."""
    endpoints = data.get("endpoints")
    for endpoint in endpoints if isinstance(endpoints, list) else ():
        name = endpoint.get("api_key_env") if isinstance(endpoint, dict) else None
        if isinstance(name, str) and env.get(name):
            register_secret(env[name])


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file (bounded: tokenpulse.yamlfile); ConfigError on any problem."""
    source = str(path)
    try:
        data = read_yaml(path)
    except YamlReadError as exc:
        raise _yaml_error(source, exc) from None
    return parse_config(data, source=source, env=env)


def config_from_text(text: str, *, source: str, env: Mapping[str, str] | None = None) -> Config:
    """The same, from a config's text (Locust workers receive the text from their master)."""
    try:
        data = parse_yaml(text)
    except YamlReadError as exc:
        raise _yaml_error(source, exc) from None
    return parse_config(data, source=source, env=env)


def _yaml_error(source: str, exc: YamlReadError) -> ConfigError:
    if exc.unreadable:
        return ConfigError(source, [("", exc.problem)])
    where = f"line {exc.line}, column {exc.column}: " if exc.line else ""
    if exc.path is not None:
        return ConfigError(source, [(exc.path, f"{where}{exc.problem}")])
    return ConfigError(source, [("", f"invalid YAML: {where}{exc.problem}")])


def _describe(err: Mapping[str, Any]) -> tuple[str, str]:
    loc = [str(part) for part in err.get("loc", ())]
    # pydantic puts the failing union member / validator name in loc for some errors; drop those parts.
    loc = [part for part in loc if not part.startswith(("function-", "literal[", "union["))]
    kind = err.get("type", "")
    if kind == "field_path":
        ctx = err.get("ctx") or {}
        return ".".join([*loc, str(ctx.get("path", ""))]).strip("."), str(ctx.get("message", ""))
    if kind == "extra_forbidden":
        field = loc.pop() if loc else ""
        return ".".join(loc), f"unknown key {field!r}"
    message = str(err.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if kind == "missing":
        message = "required field is missing"
    value = err.get("input")
    if kind not in ("missing", "model_type") and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        if not (isinstance(value, float) and not math.isfinite(value)) and repr(value) not in message:
            message = f"{message} (got {value!r})"
    return ".".join(loc), message
