"""Per target: the prompt length that was asked for beside the one the server counted, and the requests
that spent their whole output budget on reasoning.

Why: `input_tokens_mean` is calibrated against the server's tokenizer (load/calibration.py), and a
miscalibrated prompt (a tokenize endpoint that counts differently, a model that was swapped) silently
changes the workload every comparison rests on; setting `input_tokens_target` beside the server's
`prompt_tokens` makes it visible. Requests whose `max_tokens` went to reasoning only measured no TTFC
and their speed is the reasoning's, so they are counted here (runfolder.records.reasoning_exhausted)
rather than mixed into the figures unremarked.

Both over the requests the target's overall figures count (started in a measured window). The prompt
comparison pairs the two numbers per request (only requests that have both), so a request without
usage does not pull one side of the ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tokenpulse.report.reading import EXHAUSTED
from tokenpulse.runfolder.records import reasoning_exhausted

#: A target whose server counted prompts further than this from the target gets a warning.
PROMPT_WARN_RATIO = 0.05

TargetKey = tuple[str, str, str]


class _Tally:
    __slots__ = ("requests", "paired", "target_sum", "counted_sum", "ok", "exhausted")

    def __init__(self) -> None:
        self.requests = self.paired = self.target_sum = self.counted_sum = self.ok = self.exhausted = 0

    def figures(self) -> dict[str, Any]:
        n = self.paired
        return {
            "requests": self.requests,
            "input_tokens": {
                "n": n,
                "target_mean": self.target_sum / n if n else None,
                "prompt_tokens_mean": self.counted_sum / n if n else None,
                "ratio": self.counted_sum / self.target_sum if self.target_sum else None,
            },
            "reasoning_exhausted": {"requests": self.exhausted, "of_ok": self.ok},
        }


def prompt_figures(records: Iterable[dict[str, Any]], counts: Callable[[dict[str, Any]], bool],
                   key_of: Callable[[dict[str, Any]], TargetKey], names: dict[TargetKey, str],
                   flagged: bool) -> dict[str, Any]:
    """`{"targets": {name: figures}, "all": figures}` over the records `counts` accepts; `flagged`: the
    records were read by report/run.py, which judged reasoning exhaustion with the budget fields it then
    dropped (reading.EXHAUSTED), else each record is judged here."""
    per: dict[TargetKey, _Tally] = {}
    total = _Tally()
    for r in records:
        if not counts(r):
            continue
        key = key_of(r)
        t = per.get(key)
        if t is None:
            t = per[key] = _Tally()
        for acc in (t, total):
            acc.requests += 1
        target, counted = r.get("input_tokens_target"), r.get("prompt_tokens")
        if target is not None and counted is not None:
            for acc in (t, total):
                acc.paired += 1
                acc.target_sum += target
                acc.counted_sum += counted
        if r.get("outcome") == "ok":
            exhausted = bool(r.get(EXHAUSTED)) if flagged else reasoning_exhausted(r)
            for acc in (t, total):
                acc.ok += 1
                acc.exhausted += exhausted
    return {"targets": {name: per.get(key, _Tally()).figures() for key, name in names.items()},
            "all": total.figures()}


def prompt_warnings(prompts: dict[str, Any]) -> list[str]:
    """Plain sentences for report warnings: prompts off their target, requests exhausted by reasoning."""
    out = []
    for name, f in prompts["targets"].items():
        tokens = f["input_tokens"]
        ratio = tokens["ratio"]
        if ratio is not None and abs(ratio - 1.0) > PROMPT_WARN_RATIO:
            out.append(f"{name}: the server counted {tokens['prompt_tokens_mean']:.0f} prompt tokens per request "
                       f"for a target of {tokens['target_mean']:.0f} ({(ratio - 1) * 100:+.0f}%, n={tokens['n']}): "
                       "the prompt length is miscalibrated for this model (docs/load-testing.md, calibration)")
    exhausted = prompts["all"]["reasoning_exhausted"]
    if exhausted["requests"]:
        out.append(f"{exhausted['requests']} of {exhausted['of_ok']} successful requests spent all their max_tokens "
                   "on reasoning and gave no answer (no TTFC; their speed is the reasoning's): raise max_tokens or "
                   "lower load.workload.reasoning")
    return out
