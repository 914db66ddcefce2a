"""What a run is, as every Locust process of it sees it: options, config, schedule, targets, folder.

Why apart from the session: it is built from the `--tp-*` options alone (no Locust object), the same
way in every process, and then does not change; tests build it from a config text. The session
rebuilds it when the master adds its values (run start, worker count) before the first spawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpulse.config import Config, ConfigError, Target, config_from_text
from tokenpulse.core.keys import KeyRing
from tokenpulse.load.options import LoadOptions
from tokenpulse.load.slo_flags import effective_slo
from tokenpulse.load.targets import LoadSetupError, display_names, select_targets
from tokenpulse.runfolder.schedule import Schedule

log = logging.getLogger("tokenpulse.load")


@dataclass(frozen=True, slots=True)
class LoadTarget:
    """A target of the load test: the config target, its index (metric labels, reports) and its name in
    Locust's statistics. Its identity is the config's (`Target.key`), as for the prober's targets."""

    index: int
    target: Target
    name: str
    api_key: str | None
    #: The endpoints listing's display names of the pinned provider (empty when unknown): they decide
    #: whether a served name is this provider (core/served.py).
    provider_names: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.target.key


@dataclass(frozen=True, slots=True)
class RunContext:
    opts: LoadOptions
    config: Config
    schedule: Schedule
    targets: tuple[LoadTarget, ...]
    out: Path

    @property
    def slo(self) -> dict[str, Any]:
        """The run's SLO: the config's with the `--slo` overrides (validated by `tokenpulse load`)."""
        return effective_slo(self.config.slo.model_dump(), self.opts.slo)

    @property
    def drain_s(self) -> float:
        """How long requests in flight may take to finish once the run stops sending (`load.drain_s`)."""
        return self.config.load.drain_window_s


def build_context(opts: LoadOptions, *, has_users: bool) -> RunContext:
    """Config, targets and schedule from the options. Raises LoadSetupError with the user's message.
    A process that runs users logs the API key variables it lacks (its requests go without a key)."""
    try:  # the same bounded reading as every config (tokenpulse.yamlfile)
        config = config_from_text(opts.config_text, source=opts.config_path or "<config>")
    except ConfigError as exc:  # it carries the file: field: problem text
        raise LoadSetupError(str(exc)) from None
    try:
        schedule = opts.schedule(config.load.warmup_s)
        effective_slo(config.slo.model_dump(), opts.slo)
    except ValueError as exc:
        raise LoadSetupError(str(exc)) from None
    targets = select_targets(config, opts.providers, opts.models)
    names = display_names(targets)
    keys = KeyRing(t.endpoint.api_key_env for t in targets)
    if has_users:
        for env_name in keys.missing:
            log.error("tokenpulse: environment variable %s is not set on this load generator; requests to "
                      "%s go without a key", env_name,
                      ", ".join(sorted({t.endpoint.name for t in targets if t.endpoint.api_key_env == env_name})))
    listed: dict[tuple[str, str, str], list[str]] = {}
    for endpoint, model, tag, provider_name in opts.provider_names:
        listed.setdefault((endpoint, model, tag), []).append(provider_name)
    return RunContext(opts=opts, config=config, schedule=schedule,
                      targets=tuple(LoadTarget(i, t, names[i], keys.for_endpoint(t.endpoint),
                                               tuple(listed.get((t.endpoint.name, t.model.id, t.provider), ())))
                                    for i, t in enumerate(targets)),
                      out=Path(opts.out))
