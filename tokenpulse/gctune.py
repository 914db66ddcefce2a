"""Cyclic garbage collector settings for long-running measuring processes (Locust users, the prober).

Why: both processes keep a large, long-lived heap (Locust's stats, gevent, the config; the prober's
~215 metric series per target and its histories) and allocate short-lived objects for every SSE event.
With the default thresholds the collector runs every 700 allocations and now and then walks the whole
heap: tens of milliseconds during which no token is stamped (the load test's client lag) and a few per
cent of the prober's CPU (benchmarks/prober_scale.py, py-spy showed `gc_collect_main` among the top
native frames). Everything alive once a process is set up is frozen out of collections, and young
collections run less often; reference counting still frees nearly everything at once.
"""

from __future__ import annotations

import gc

#: Allocations between young collections, and young (middle) collections per middle (full) one.
THRESHOLDS = (20_000, 50, 100)


def freeze_setup_heap() -> None:
    """Collect once, move every surviving object to the permanent generation, raise the thresholds.
    Call it when the process has built its long-lived state and before the measured work starts."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
