"""The wire record of one finished request, from a worker to the master (Locust's worker report).

Why a record of its own rather than the `StreamResult`: the master needs only the figures that
Prometheus and the web UI's token-latency table read (`metrics.MeasuredRequest`), not the series
(chunk gaps stay in the JSONL) nor the strings a server chose; and it must never trust that a worker
runs the same version. So a worker sends `to_dict()` (plain names and numbers, msgpack-friendly), and
the master takes `from_dict()`, which refuses what it cannot read (an unknown outcome or error class,
a target index out of range is the exporter's check) instead of inventing labels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tokenpulse.core.outcomes import ErrorClass, ErrorOrigin, Outcome
from tokenpulse.core.recorder import StreamResult

_NO_SERIES: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Observation:
    """One request as the master sees it: its target (index in the run's target list) and figures."""

    target: int
    outcome: Outcome
    error_class: ErrorClass | None
    ttfb_s: float | None
    ttft_s: float | None
    ttfc_s: float | None
    e2e_s: float | None
    tpot_s: float | None
    output_tokens_per_s: float | None
    prompt_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    tokens_estimated: bool
    cost_usd: float | None
    queue_wait_s: float | None
    connect_s: float | None = None
    tls_s: float | None = None
    #: The step whose measured window the request was sent in (None: warm-up, settle or no step);
    #: what the master's search tallies (load/search.py).
    step: int | None = None
    error_origin: ErrorOrigin | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def token_times_s(self) -> tuple[float, ...]:
        """Not carried (the master does not observe chunk gaps): `MeasuredRequest` reads it as empty."""
        return _NO_SERIES

    @classmethod
    def of(cls, target: int, result: StreamResult, cost_usd: float | None, queue_wait_s: float | None,
           step: int | None = None) -> Observation:
        """`cost_usd` is the load test's estimate (usage.cost, else usage x price), not only the server's."""
        return cls(target=target, outcome=result.outcome, error_class=result.error_class, ttfb_s=result.ttfb_s,
                   ttft_s=result.ttft_s, ttfc_s=result.ttfc_s, e2e_s=result.e2e_s, tpot_s=result.tpot_s,
                   output_tokens_per_s=result.output_tokens_per_s, prompt_tokens=result.prompt_tokens,
                   output_tokens=result.output_tokens, reasoning_tokens=result.reasoning_tokens,
                   tokens_estimated=result.tokens_estimated, cost_usd=cost_usd, queue_wait_s=queue_wait_s,
                   connect_s=result.connect_s, tls_s=result.tls_s, step=step,
                   error_origin=result.error_origin)

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _FIELDS}
        d["outcome"] = self.outcome.value
        d["error_class"] = self.error_class.value if self.error_class else None
        d["error_origin"] = self.error_origin.value if self.error_origin else None
        return d

    @classmethod
    def from_dict(cls, data: Any) -> Observation | None:
        """The record a worker sent, or None when it is not one this version can read."""
        if not isinstance(data, dict):
            return None
        try:
            values: dict[str, Any] = {name: data.get(name) for name in _FIELDS}
            values["target"] = int(data["target"])
            values["outcome"] = Outcome(data["outcome"])
            values["error_class"] = ErrorClass(data["error_class"]) if data.get("error_class") else None
            values["error_origin"] = ErrorOrigin(data["error_origin"]) if data.get("error_origin") else None
            values["tokens_estimated"] = bool(data.get("tokens_estimated"))
            if values["step"] is not None and type(values["step"]) is not int:
                return None
            for name in _NUMBERS:
                value = values[name]
                if value is not None and (type(value) not in (int, float)):
                    return None
        except (KeyError, ValueError, TypeError):
            return None
        return cls(**values)


_FIELDS = tuple(f.name for f in fields(Observation))
_NUMBERS = tuple(n for n in _FIELDS if n not in ("target", "outcome", "error_class", "tokens_estimated", "step",
                                                 "error_origin"))
