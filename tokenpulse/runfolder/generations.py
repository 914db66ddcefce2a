"""What OpenRouter measured, in the run folder: `generations-<process>.jsonl` and the endpoints listings
a load run read at its start, and their join to the request records.

Why beside records.py and not in it: the lookups finish seconds after their requests (OpenRouter writes
a generation a while after the stream ends), and a record is written the moment its request ends and
never held back. So the lookups go to their own file, one line per generation as its answer arrives,
and the report joins them to the records by generation id.

A line: `{"generation_id", "status"` (core.generation: found, not_found, failed), `"attempts"`,
`"target_provider"`, and when found the `or_*` fields (GenerationStats.to_fields)}; at the end of a
process one line `{"summary": true, "skipped", "dropped", "abandoned"}` counts the requests it did not
look up (above the lookup rate, a full queue, still waiting at exit): never silently.

Billed failures: a request that failed mid-stream has no `usage.cost`; when its generation says what
it cost (`total_cost`), the join makes that its `estimated_cost_usd`, so the report's spend counts it
(as `--max-cost` did during the run: load/cost.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenpulse.core.generation import valid_generation_id
from tokenpulse.core.served import listed_name
from tokenpulse.core.usage import INVALID, cost_usd, token_count
from tokenpulse.runfolder.records import iter_jsonl

GENERATIONS_GLOB = "generations-*.jsonl"
LISTING_GLOB = "listing-*.json"

#: The `or_*` fields the report keeps on a joined record (numbers in seconds, USD, tokens).
_NUMBERS = ("or_latency_s", "or_generation_time_s", "or_moderation_latency_s")
_TOKENS = ("or_native_prompt_tokens", "or_native_completion_tokens", "or_native_reasoning_tokens",
           "or_completion_tokens")
_TEXTS = ("or_provider_name", "or_finish_reason", "or_native_finish_reason")
_MAX_S = 86_400.0


def generations_file(out: Path, tag: str) -> Path:
    return out / f"generations-{tag}.jsonl"


def listing_file(out: Path, endpoint: str, model: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{endpoint}-{model}")
    return out / f"listing-{safe}.json"


def read_listings(folder: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(endpoint, model) -> the entries of its saved endpoints listing (load/listing.py writes them);
    an unreadable file is left out, as a listing never read."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in sorted(folder.glob(LISTING_GLOB)):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("endpoints"), list):
            entries = [e for e in doc["endpoints"] if isinstance(e, dict)]
            out[(str(doc.get("endpoint")), str(doc.get("model")))] = entries
    return out


def listed_names(entries: list[dict[str, Any]], tag: str) -> tuple[str, ...]:
    """The display names (`provider_name`) a saved listing gives the provider `tag`: a pin's names."""
    return tuple(name for e in entries if e.get("tag") == tag and (name := listed_name(e)))


@dataclass(slots=True)
class GenerationTally:
    """How the lookups of a run went: by status, and the requests never looked up."""

    statuses: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    dropped: int = 0
    abandoned: int = 0
    joined: int = 0
    #: Failed requests whose cost came from /generation (billed although they failed).
    billed_failures: int = 0
    billed_failures_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"statuses": dict(self.statuses), "skipped": self.skipped, "dropped": self.dropped,
                "abandoned": self.abandoned, "joined": self.joined, "billed_failures": self.billed_failures,
                "billed_failures_usd": self.billed_failures_usd}


def _clean(line: dict[str, Any]) -> dict[str, Any]:
    """The usable `or_*` fields of one found line (another writer's file is hostile input too)."""
    out: dict[str, Any] = {}
    for key in _NUMBERS:
        v = line.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= _MAX_S:
            out[key] = float(v)
    for key in _TOKENS:
        v = token_count(line.get(key))
        if v is not None and v is not INVALID:
            out[key] = v
    for key in _TEXTS:
        v = line.get(key)
        if type(v) is str and len(v) <= 200:
            out[key] = v
    cost = cost_usd(line.get("or_total_cost_usd"))
    if cost is not None and cost is not INVALID:
        out["or_total_cost_usd"] = cost
    if type(line.get("or_cancelled")) is bool:
        out["or_cancelled"] = line["or_cancelled"]
    return out


def read_generations(folder: Path) -> tuple[dict[str, dict[str, Any]], GenerationTally]:
    """Found generations by id (the `or_*` fields), and the tally of every lookup line."""
    found: dict[str, dict[str, Any]] = {}
    tally = GenerationTally()
    for path in sorted(folder.glob(GENERATIONS_GLOB)):
        for line in iter_jsonl(path):
            if line.get("summary") is True:
                for key in ("skipped", "dropped", "abandoned"):
                    v = line.get(key)
                    if type(v) is int and v >= 0:
                        setattr(tally, key, getattr(tally, key) + v)
                continue
            status, gen_id = line.get("status"), line.get("generation_id")
            if not isinstance(status, str) or len(status) > 20 or not isinstance(gen_id, str) \
                    or not valid_generation_id(gen_id):
                continue
            tally.statuses[status] += 1
            if status == "found":
                found[gen_id] = _clean(line)
    return found, tally


def join_generations(folder: Path, records: list[dict[str, Any]]) -> GenerationTally:
    """Put each found generation's `or_*` fields on its record (in place), matched by
    `generation_id`. A failed request without `usage.cost` that OpenRouter billed gets `total_cost` as
    its `estimated_cost_usd`."""
    found, tally = read_generations(folder)
    if not found:
        return tally
    for record in records:
        gen_id = record.get("generation_id")
        fields = found.get(gen_id) if type(gen_id) is str else None
        if fields is None:
            continue
        record.update(fields)
        tally.joined += 1
        billed = fields.get("or_total_cost_usd")
        if record.get("outcome") != "ok" and record.get("cost_usd") is None and billed:
            record["estimated_cost_usd"] = billed
            tally.billed_failures += 1
            tally.billed_failures_usd += billed
    return tally
