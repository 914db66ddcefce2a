"""Load testing with Locust: workloads, users, shapes, per-request records, cost cap, live metrics.

Locust drives the load; tokenpulse makes the numbers right for streaming LLM APIs. Every request goes
through `SyncStreamDriver` and the recorder, so a load-test TTFT means exactly what a probe's TTFT
means (DESIGN.md §1-§2). Nothing here decides timing or token counts.

Modules, in the order a request meets them: `options` (the settings every Locust process shares),
`schedule` (what load when), `workload` (what to send), `arrivals` (open-loop arrival rate), `cost`
(the spending cap), `user` (the Locust user), `records` (per-request JSONL), `health` (the
generator's own CPU and lag), `exporter` (Prometheus on the master), `session` (one process's state and
the Locust event wiring), `shapes` (LoadTestShape adapters) and `runner` (`tokenpulse load`).
"""
