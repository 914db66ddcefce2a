"""Plan-time checks of the traffic options: `--input-lengths`, `--burstiness`, `--trace`/`--speed`,
`--max-requests`, and the context lengths that cap long prompts.

Why before Locust starts: a bad trace line, a prefill length no model can take or an option that does
not apply must stop the run with exit 2 and a precise message, not fail inside a worker after the
run folder exists. The results travel to every Locust process as `--tp-*` options (options.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenpulse.config import Config, Target
from tokenpulse.load.context_limits import context_lengths
from tokenpulse.load.prompts import ContextLimits
from tokenpulse.load.trace import TRACE_FORMATS, load_trace, trace_span_s
from tokenpulse.load.variants import effective_workload

#: `--run-time` when not given: the default run, or (with --max-requests) an upper bound that lets the
#: count end the run.
DEFAULT_RUN_TIME_S = 30.0
MAX_REQUESTS_RUN_TIME_S = 3600.0
#: After a trace's last arrival, this long for its requests to be sent (they may wait for a user).
TRACE_TAIL_S = 1.0
LONG_PROMPT_KINDS = ("prefill", "shared_prefix")


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    run_time_s: float
    locust_args: list[str]
    notes: tuple[str, ...]


def plan_traffic(args: Any, config: Config, targets: list[Target]) -> TrafficPlan:
    """Validate the traffic options against the config; raise ValueError with the user's message."""
    input_lengths: list[int] = list(getattr(args, "input_lengths", None) or [])
    burstiness: float | None = getattr(args, "burstiness", None)
    trace: str | None = getattr(args, "trace", None)
    trace_format: str | None = getattr(args, "trace_format", None)
    speed: float | None = getattr(args, "speed", None)
    max_requests: int | None = getattr(args, "max_requests", None)
    out: list[str] = []
    notes: list[str] = []
    if burstiness is not None and getattr(args, "arrival", None) == "constant":
        raise ValueError("--burstiness sets gamma-distributed gaps; it does not combine with --arrival constant")
    if (speed is not None or trace_format is not None) and not trace:
        raise ValueError("--speed and --trace-format apply to a trace replay (--trace FILE)")
    kind = config.load.workload.kind
    if input_lengths and kind not in ("synthetic", "prefill"):
        raise ValueError(f"--input-lengths makes the workload a prefill sweep; the config's load.workload.kind "
                         f"is {kind}")
    if trace and kind not in ("synthetic",):
        raise ValueError(f"--trace sets every request's lengths from the trace; the config's load.workload.kind "
                         f"is {kind} (use synthetic)")
    workload = effective_workload(config.load.workload, input_lengths)
    run_time = getattr(args, "run_time", None)
    if trace:
        items = load_trace(trace, trace_format)  # type: ignore[arg-type]  # argparse choices
        span = trace_span_s(items, speed or 1.0)
        run_time = run_time if run_time is not None else span + TRACE_TAIL_S
        if span > run_time:
            notes.append(f"the trace lasts {span:.1f} s at speed {speed or 1.0:g}; --run-time {run_time:g}s "
                         "replays only its start")
        out += ["--tp-trace", str(Path(trace).resolve()), "--tp-speed", f"{speed or 1.0:g}"]
        if trace_format:
            out += ["--tp-trace-format", trace_format]
        notes.append(f"trace: {len(items)} requests over {span:.1f} s (speed {speed or 1.0:g})")
    if run_time is None:
        run_time = MAX_REQUESTS_RUN_TIME_S if max_requests else DEFAULT_RUN_TIME_S
    if workload.kind in LONG_PROMPT_KINDS or trace:
        limits, found_notes = context_lengths(targets)
        notes += found_notes
        if limits:
            out += ["--tp-context", json.dumps(limits, sort_keys=True)]
        if workload.kind == "prefill":
            notes += _check_prefill(workload.input_lengths, workload.output_tokens_mean, targets, ContextLimits(limits))
        elif workload.kind == "shared_prefix":
            length = workload.shared_prefix_tokens + workload.input_tokens_mean + 4 * workload.input_tokens_stddev
            for model in sorted({t.model.id for t in targets}):
                if not ContextLimits(limits).fits(model, length, workload.output_tokens_mean):
                    raise ValueError(f"shared_prefix: {length} prompt tokens and {workload.output_tokens_mean} "
                                     f"output tokens do not fit {model}'s context of {limits[model]} tokens")
    if input_lengths:
        out += ["--tp-input-lengths", ",".join(str(n) for n in input_lengths)]
    if burstiness is not None:
        out += ["--tp-burstiness", f"{burstiness:g}"]
    if max_requests:
        out += ["--tp-max-requests", str(max_requests)]
    return TrafficPlan(run_time_s=float(run_time), locust_args=out, notes=tuple(notes))


def _check_prefill(lengths: list[int], output_tokens: int, targets: list[Target], limits: ContextLimits) -> list[str]:
    notes = []
    for model in sorted({t.model.id for t in targets}):
        fitting = limits.lengths_for(model, lengths, output_tokens)
        if not fitting:
            raise ValueError(f"prefill: no input length fits {model}'s context of {limits.get(model)} tokens "
                             f"with {output_tokens} output tokens (lengths {', '.join(map(str, lengths))})")
        skipped = [n for n in lengths if n not in fitting]
        if skipped:
            notes.append(f"prefill: {model} skips input lengths {', '.join(map(str, skipped))} (context "
                         f"{limits.get(model)} tokens)")
    return notes


__all__ = ["TRACE_FORMATS", "TrafficPlan", "plan_traffic"]
