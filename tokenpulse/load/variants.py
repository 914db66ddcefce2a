"""What the command line changes in the configured workload: `--input-lengths` (the prefill sweep).

Why one function: every Locust process rebuilds the workload from the config text it was sent, so the
override must be applied the same way everywhere (plan time, master, each worker), from the options.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenpulse.config import Workload


def effective_workload(workload: Workload, input_lengths: Sequence[int] = ()) -> Workload:
    """The workload a run uses: `--input-lengths` makes it a `prefill` sweep over those lengths."""
    if not input_lengths:
        return workload
    return workload.model_copy(update={"kind": "prefill", "input_lengths": list(input_lengths)})
