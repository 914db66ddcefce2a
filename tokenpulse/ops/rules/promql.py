"""PromQL text pieces the rule generator needs: label matchers with exact escaping, and the cells an
objective splits the targets into.

Why cells: an objective may differ per model and per provider (`slo.models`, `slo.providers`), but a
rule evaluates over every target at once. Each field (the TTFT threshold, the TTFT share, availability)
splits the label space into disjoint selectors, one per distinct source of the value: a provider with an
override (any model), a model with an override (providers without one), and everything else. Because
the selectors are disjoint, the rules of one field can share a record name and never collide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tokenpulse.config import SLO, SLOOverride

#: RE2 metacharacters; everything else in a label value is literal in a regex.
_RE2_META = set(".+*?()|[]{}^$\\")


def string(value: str) -> str:
    """A PromQL string literal (Go escapes; json.dumps writes a compatible subset)."""
    return json.dumps(value, ensure_ascii=False)


def regex_alternatives(values: Iterable[str]) -> str:
    """An anchored RE2 alternation matching exactly these values, as a PromQL string literal."""
    escaped = ["".join("\\" + c if c in _RE2_META else c for c in v) for v in sorted(set(values))]
    return string("|".join(escaped))


@dataclass(frozen=True)
class Cell:
    """A disjoint slice of the targets and the value a field takes in it."""

    matchers: tuple[str, ...]
    value: float
    source: str  # "default", "model X", "provider Y": said in the rule's comment

    def selector(self, *extra: str) -> str:
        parts = [*extra, *self.matchers]
        return "{" + ", ".join(parts) + "}" if parts else ""


def cells(slo: SLO, field: str) -> list[Cell]:
    """The cells of one objective field (see the module docstring); the default cell comes first."""

    def overridden(overrides: Mapping[str, SLOOverride]) -> dict[str, float]:
        return {key: float(getattr(o, field)) for key, o in overrides.items() if getattr(o, field) is not None}

    by_provider = overridden(slo.providers)
    by_model = overridden(slo.models)
    not_providers = (f"provider!~{regex_alternatives(by_provider)}",) if by_provider else ()
    not_models = (f"model!~{regex_alternatives(by_model)}",) if by_model else ()
    out = [Cell((*not_models, *not_providers), float(getattr(slo, field)), "default")]
    out += [Cell((f"model={string(m)}", *not_providers), v, f"model {m}") for m, v in sorted(by_model.items())]
    out += [Cell((f"provider={string(p)}",), v, f"provider {p}") for p, v in sorted(by_provider.items())]
    return out


def go_float(value: float) -> str:
    """A bucket bound as prometheus-client writes it in the `le` label (2 -> "2.0", 0.5 -> "0.5")."""
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(value))


def number(value: float) -> str:
    """A float for an expression: shortest exact text (0.99, 14.4, 2)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
