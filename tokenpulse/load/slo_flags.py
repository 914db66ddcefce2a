"""`--slo ttft_p95=1s,tpot_p50=50ms,e2e_p95=20s,error_rate=1%`: the load run's SLO, overriding the config's.

Why a parser of its own: the same text is read by `tokenpulse load` (to refuse a bad value with exit 2
before anything starts) and by every Locust process (it travels as `--tp-slo`, so workers on other
machines judge with the same objectives). The keys:
- `ttft`, `tpot`, `e2e`: per-request thresholds (`slo.ttft_s`, `slo.tpot_s`, `slo.e2e_s`): a request
  counts toward goodput only when it met every one;
- `ttft_pNN`, `tpot_pNN`, `e2e_pNN`: percentile objectives of a step (`slo.percentiles`);
- `error_rate`: the highest error share of a step (`slo.error_rate`), as `1%` or `0.01`.
Durations take `ms`, `s`, `m` (`50ms`, `1.5s`); a bare number is seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tokenpulse.core.search import PERCENTILE_KEY
from tokenpulse.load.timespan import parse_duration

THRESHOLDS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s"}


def _share(key: str, text: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"{key}={text}: not a share (use e.g. 1% or 0.01)") from None
    if not math.isfinite(value) or not 0 <= value < 1:
        raise ValueError(f"{key}={text}: must be at least 0 and below 100%")
    return value


def _seconds(key: str, text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError:
        raise ValueError(f"{key}={text}: not a duration (use e.g. 500ms, 2s)") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{key}={text}: must be > 0")
    return value


def parse_slo(text: str) -> dict[str, Any]:
    """The overrides in `text` as SLO fields (`ttft_s`, ..., `percentiles`). Raises ValueError naming
    the item and the problem."""
    out: dict[str, Any] = {}
    percentiles: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            raise ValueError(f"{item!r}: expected KEY=VALUE (e.g. ttft_p95=1s)")
        if key in THRESHOLDS:
            out[THRESHOLDS[key]] = _seconds(key, value)
        elif key == "error_rate":
            out["error_rate"] = _share(key, value)
        elif (match := PERCENTILE_KEY.match(key)) is not None:
            if not 0 < float(match.group(2)) < 100:
                raise ValueError(f"{key}: the percentile must be between 0 and 100")
            percentiles[key] = _seconds(key, value)
        else:
            raise ValueError(f"{key!r}: unknown objective (ttft, tpot, e2e, ttft_pNN, tpot_pNN, e2e_pNN, "
                             "error_rate)")
    if not out and not percentiles:
        raise ValueError("empty (e.g. --slo ttft_p95=1s,error_rate=1%)")
    if percentiles:
        out["percentiles"] = percentiles
    return out


def effective_slo(config_slo: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The config's SLO (a `model_dump()`), with the `--slo` overrides applied: thresholds replace the
    config's, percentile objectives are added to (or replace) the config's of the same name."""
    slo = dict(config_slo)
    if not text:
        return slo
    overrides = parse_slo(text)
    percentiles = {**(slo.get("percentiles") or {}), **overrides.pop("percentiles", {})}
    slo.update(overrides)
    slo["percentiles"] = percentiles
    return slo
