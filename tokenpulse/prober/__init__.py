"""The scheduled prober: config targets -> APScheduler jobs -> async driver -> metrics, state, history.

Modules, one job each:

- `targets`      config targets (plus discovered providers) turned into ready-to-send probes
- `discovery`    OpenRouter's per-model provider list (`discover: true`)
- `state`        the confirmed up / degraded / down state machine of one target, and `blind` over it
- `history`      bounded recent results per target (uptime 1 h / 1 d, bars, TTFT, tok/s, failures, changes)
- `store`        that history in SQLite (`probe.state_dir`), saved in batches, restored at start
- `runner`       one probe: driver -> metrics -> state -> history; never raises
- `scheduler`    APScheduler jobs, jitter on a fixed grid, in-flight cap, lag and misfire accounting
- `credits`      OpenRouter key credit (`/api/v1/key`) as gauges
- `status`       the status document shared by `/api/status` and the HTML page
- `status_page`  server-rendered HTML of that document
- `http`         a minimal asyncio HTTP server for `/metrics`, `/healthz`, `/readyz`, `/`, `/api/status`
- `exposition`   `/metrics` text, byte-identical to prometheus-client's and ~5x faster at scale
- `admission`    the in-flight cap: a probe holds a slot until it ends or passes the TTFT objective
- `fetch`        the one bounded GET (total timeout, byte cap) for discovery and credits
- `service`      wires the above together for `tokenpulse probe`
- `once`         `tokenpulse probe --once`: every target once, concurrently, bounded
"""

from tokenpulse.prober.service import Prober

__all__ = ["Prober"]
