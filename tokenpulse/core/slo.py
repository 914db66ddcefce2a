"""Whether one request met the SLO: the single definition that goodput, the search and the master's
per-step verdicts all use.

Why in the core: the load test's master judges each step of a search from the wire records its
workers send (load/), and the report judges the same steps again from the JSONL records (report/);
two copies of the rule would drift, so both call this. Input is a plain mapping with the record's
names (`outcome`, `ttft_s`, `tpot_s`, `e2e_s`, `queue_wait_s`), which both kinds of record have.

The objectives (DESIGN.md §2, goodput): TTFT <= `ttft_s`, TPOT <= `tpot_s` and, when set, E2E <=
`e2e_s`. Under an arrival rate the wait for a free user counts (TTFT and E2E from the scheduled
arrival), because the user who arrived on schedule waited it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _limit(slo: Mapping[str, Any], key: str) -> float:
    value = slo.get(key)
    return math.inf if value is None else float(value)


def meets_slo(record: Mapping[str, Any], slo: Mapping[str, Any]) -> bool:
    """Succeeded and met every objective that is set (TPOT absent: a one-token answer, not judged)."""
    if record.get("outcome") != "ok":
        return False
    wait = record.get("queue_wait_s") or 0.0
    ttft = record.get("ttft_s")
    if ttft is None or ttft + wait > _limit(slo, "ttft_s"):
        return False
    e2e = record.get("e2e_s")
    if e2e is not None and e2e + wait > _limit(slo, "e2e_s"):
        return False
    tpot = record.get("tpot_s")
    return tpot is None or tpot <= _limit(slo, "tpot_s")


def cancelled_broke_slo(record: Mapping[str, Any], slo: Mapping[str, Any]) -> bool:
    """A cancelled request counts against goodput only when what it reached already broke the SLO: it
    waited past the TTFT objective (queue wait + TTFT, or + its elapsed time when no token came), ran
    past the E2E objective, or its TPOT did."""
    wait = record.get("queue_wait_s") or 0.0
    ttft = record.get("ttft_s")
    elapsed = record.get("e2e_s") or 0.0
    reached = ttft if ttft is not None else elapsed
    if wait + reached > _limit(slo, "ttft_s") or wait + elapsed > _limit(slo, "e2e_s"):
        return True
    tpot = record.get("tpot_s")
    return tpot is not None and tpot > _limit(slo, "tpot_s")
