"""Who served a request, compared with the provider it was pinned to (sans-IO).

Why its own module: a stream's `provider` field, `/generation`'s `provider_name` and an error's
`error.metadata.provider_name` are provider *names* ("DeepInfra", "Google Vertex"), while a pin is a
provider *slug* or endpoint tag ("deepinfra", "google-vertex", "deepinfra/fp8"). A request served by
another provider than its pin must never be counted as a sample of the pinned one (it becomes
`wrong_provider`), so the comparison is made once, here, and every caller (the recorder, the
/generation join) asks the same function.

The rule, conservative on purpose (a false `wrong_provider` would hide real samples of a provider):

- the names an endpoints listing gives the pin (`provider_name` of the entries whose `tag` is the pin)
  decide when they are known: the served name matches one of them, or it is another provider;
- otherwise both sides are normalized (lowercase, only letters and digits; a tag's variant after `/` is
  dropped): equal, or one contained in the other ("nebius" and "Nebius AI Studio"), is a match;
- anything else is another provider. An absent or empty served name says nothing (`None`).

Nothing here is ever a metric label: the served name stays in the record, labels keep the pin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Served names longer than this are not provider names (a hostile server); compared after cutting.
MAX_NAME_CHARS = 256


def normalize_provider(text: str) -> str:
    """`DeepInfra`, `deepinfra`, `deep-infra` and `deepinfra/fp8` all give `deepinfra`."""
    base = text[:MAX_NAME_CHARS].split("/", 1)[0]
    return "".join(c for c in base.lower() if c.isascii() and c.isalnum())


@dataclass(frozen=True, slots=True)
class ProviderPin:
    """The provider a request is pinned to: its slug or tag, and the display names an endpoints
    listing gives it (empty when unknown: the normalized comparison decides)."""

    slug: str
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, slug: str, names: Iterable[str] = ()) -> ProviderPin:
        return cls(slug=slug, names=tuple(n for n in names if isinstance(n, str) and n))


def listed_name(entry: Mapping[str, object]) -> str | None:
    """The display name (`provider_name`) of one endpoints-listing entry, when it is a usable one: what
    the pin of that entry's `tag` takes as its names. The prober's parsed listing, a load run's listing
    and the run folder's saved copy all read it here."""
    name = entry.get("provider_name")
    return name if isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS else None


def served_matches_pin(pin: ProviderPin | str, served_name: object) -> bool | None:
    """True when `served_name` (a stream's `provider`, `/generation`'s `provider_name`) is the pinned
    provider, False when it is evidently another one, None when there is no usable name to judge by.
    Never raises, whatever `served_name` holds."""
    if not isinstance(served_name, str):
        return None
    served = normalize_provider(served_name)
    if not served:
        return None
    if isinstance(pin, str):
        pin = ProviderPin(pin)
    if pin.names:
        return any(normalize_provider(name) == served for name in pin.names)
    slug = normalize_provider(pin.slug)
    if not slug:
        return None
    return slug in served or served in slug
