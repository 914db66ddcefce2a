"""What a run's generator-health lines mean to their readers: the thresholds past which the load
generator's own CPU or lag, not the target, may have shaped a step's figures (DESIGN.md §2, §6).

Here, not in load/health.py (which samples them under gevent), because the report judges the same lines
and must not import the load-test process."""

from __future__ import annotations

#: A process above this share of one core is close to where its lag jumps (docs/benchmarks.md).
CPU_WARN_RATIO = 0.75
#: Client lag p99 above this, and the figures carry the generator's delay.
LAG_WARN_P99_S = 0.005
