"""Load testing with Locust: workloads, users, shapes, per-request records, cost cap, live metrics.

Locust drives the load; tokenpulse makes the numbers right for streaming LLM APIs. Every request goes
through `SyncStreamDriver` and the recorder, so a load-test TTFT means exactly what a probe's TTFT
means (DESIGN.md §1-§2). Nothing here decides timing or token counts.

Modules, in the order a request meets them: `options` (the settings every Locust process shares),
`context` (the run as every process sees it: config, schedule, targets), `schedule` (what load when),
`workload` and `calibration` (what to send, prompt lengths in the server's tokens), `arrivals`
(open-loop arrival rate), `cost` (the spending cap), `user` (the Locust user), `records` (per-request
JSONL), `health` (the generator's own CPU and lag), `observation` (the typed worker -> master record),
`reporting` (the worker report payload), `exporter` (Prometheus on the master), `webui` (TTFT/TTFC tab),
`drain` (who has drained), `meta` (meta.json), `session` (one process's pieces and the Locust event
wiring), `shapes` (LoadTestShape adapters), `lifeline` (Locust stops when `tokenpulse load` dies) and
`runner` (`tokenpulse load`).
"""
