"""The mock's own /metrics, in vLLM's names: what a self-hosted server would say about itself.

Why vLLM's names: `load.server_metrics: auto` against the mock then exercises the same vocabulary
(runfolder/servermetrics.py) and the same token cross-check as a real vLLM server, offline.

One page for the whole farm (the mock is one server process), one series per (model, provider) pool
for the request gauges and per provider for the counters, labelled `model_name` (as vLLM) and `provider`; a
reader that sums over label sets (as tokenpulse's vocabulary does) gets the farm's totals:
- `vllm:num_requests_running`: decode slots in use; `vllm:num_requests_waiting`: requests queued for one
- `vllm:kv_cache_usage_perc`: one series for the farm, all slots in use / all slots (0..1), the mock's
  stand-in for KV-cache pressure (per pool, the idle pools of other providers would dilute the mean a
  reader takes over label sets, as it must for a vLLM with several engines)
- `vllm:generation_tokens_total`: completion tokens put on the wire (counted when each response ends,
  cut-off streams included: what a client could have counted); `vllm:prompt_tokens_total`: prompt
  tokens of the responses that finished
"""

from __future__ import annotations

from tokenpulse.mock.state import FarmState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(state: FarmState) -> bytes:
    """The exposition text of the farm's current state."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, rows: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        sample = f"{name}_total" if kind == "counter" else name
        lines.extend(f"{sample}{{{labels}}} {value:g}" for labels, value in rows)

    pools = sorted(state.pools.items())

    def pool_labels(model_id: str, slug: str) -> str:
        return f'model_name="{_label(model_id)}",provider="{_label(slug)}"'

    family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
           [(pool_labels(m, s), p.active) for (m, s), p in pools])
    family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
           [(pool_labels(m, s), p.queued) for (m, s), p in pools])
    capacity = sum(p.capacity for _, p in pools)
    family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
           [('model_name="mock-farm"', sum(p.active for _, p in pools) / capacity if capacity else 0.0)])
    counters = sorted(state.counters.items())
    family("vllm:generation_tokens", "counter", "Number of generation tokens processed.",
           [(f'provider="{_label(slug)}"', c.tokens_sent) for slug, c in counters])
    family("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.",
           [(f'provider="{_label(slug)}"', c.prompt_tokens) for slug, c in counters])
    return ("\n".join(lines) + "\n").encode("utf-8")
