"""Which targets a load test hits, and their names in Locust's tables (no Locust import: the CLI
validates a run with these before it starts Locust)."""

from __future__ import annotations

from tokenpulse.config import NO_PROVIDER, Config, Target


class LoadSetupError(Exception):
    """Options or config that cannot run; the message is for the user."""


def select_targets(config: Config, providers: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> list[Target]:
    """One target per (endpoint, model, provider) of the config, optionally only some providers and
    some models (`--provider`, `--model`: both filters apply).

    Raises LoadSetupError for models with `discover: true` (the load test needs an explicit list) and for
    a provider filter that matches nothing."""
    seen: dict[tuple[str, str, str], Target] = {}
    for endpoint in config.endpoints:
        for model in endpoint.models:
            if model.discover:
                raise LoadSetupError(f"endpoint {endpoint.name}, model {model.id}: discover: true is not supported "
                                     "by load tests; list the providers to load-test")
    for target in config.targets():
        seen.setdefault((target.endpoint.name, target.model.id, target.provider), target)
    targets = list(seen.values())
    if providers:
        unknown = [p for p in providers if p not in {t.provider for t in targets}]
        if unknown:
            known = ", ".join(sorted({t.provider for t in targets}))
            raise LoadSetupError(f"--provider {', '.join(unknown)}: not in the config (known: {known})")
        targets = [t for t in targets if t.provider in providers]
    if models:
        unknown = [m for m in models if m not in {t.model.id for t in config.targets()}]
        if unknown:
            known = ", ".join(sorted({t.model.id for t in config.targets()}))
            raise LoadSetupError(f"--model {', '.join(unknown)}: not in the config (known: {known})")
        targets = [t for t in targets if t.model.id in models]
    if not targets:
        raise LoadSetupError("no target to load-test" + (" with these --provider and --model" if providers or models
                                                         else " in the config"))
    return targets


def display_names(targets: list[Target]) -> list[str]:
    """Shortest unique name per target for Locust's table: provider, else model/provider, else all three."""
    for parts in ((lambda t: [t.provider]), (lambda t: [t.model.id, t.provider]),
                  (lambda t: [t.endpoint.name, t.model.id, t.provider])):
        names = ["/".join(p for p in parts(t) if p != NO_PROVIDER) or t.model.id for t in targets]
        if len(set(names)) == len(names):
            return names
    return [f"{i}:{t.endpoint.name}/{t.model.id}/{t.provider}" for i, t in enumerate(targets)]
