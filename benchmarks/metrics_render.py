"""/metrics rendering at prober scale: tokenpulse's FastExposition against prometheus-client's
`generate_latest`, on the same registry, side by side in one run.

Why: at 1,000 targets the prober exports ~215,000 samples per scrape, and the render is paid on every
scrape (tokenpulse/prober/exposition.py). This fills a `ProberMetrics` registry with `--targets` targets
(every histogram observed), renders it `--rounds` times each way, interleaved, and reports the median
CPU time per render, the ratio and the size; it also checks the two outputs are byte-identical.
Pure CPU, no network. Run: `.venv/bin/python benchmarks/metrics_render.py [--targets 1000]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import (
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)

from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import StreamResult
from tokenpulse.metrics import ProberMetrics
from tokenpulse.prober.exposition import FastExposition


def fake_result(rng: random.Random, ok: bool) -> StreamResult:
    ttft = rng.uniform(0.1, 2.0)
    times = [ttft + i * rng.uniform(0.005, 0.03) for i in range(32)]
    return StreamResult(
        outcome=Outcome.OK if ok else Outcome.ERROR, error_class=None if ok else ErrorClass.SERVER_ERROR,
        error_message=None if ok else "502", http_status=200 if ok else 502, t0_ns=0,
        ttfb_s=ttft / 3, ttft_s=ttft, ttfc_s=ttft, e2e_s=times[-1], tpot_s=0.02, output_tokens_per_s=50.0,
        prompt_tokens=40, output_tokens=32, reasoning_tokens=0, cached_tokens=0, cost_usd=1e-5,
        tokens_estimated=False, chunk_count=34, token_times_s=times, provider="P", generation_id="g",
        finish_reason="stop", retry_after_s=None, bytes_received=9000, keepalive_count=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=6, help="probes recorded per target (default 6)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    disable_created_metrics()  # as `tokenpulse probe` does
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry)
    rng = random.Random(1)
    for i in range(args.targets):
        labels = {"endpoint": "openrouter", "model": f"vendor/model-{i % 10}", "provider": f"provider-{i}"}
        metrics.requests.touch(labels)
        for p in range(args.probes):
            metrics.requests.observe(labels, fake_result(rng, ok=p % 20 != 0))
    fast = FastExposition(registry)
    if fast.render() != generate_latest(registry):
        raise SystemExit("outputs differ: FastExposition is not byte-identical to generate_latest")
    times: dict[str, list[float]] = {"fast": [], "generate_latest": []}
    size = 0
    for _ in range(args.rounds):
        for name, render in (("fast", fast.render), ("generate_latest", lambda: generate_latest(registry))):
            t = time.process_time()
            size = len(render())
            times[name].append(time.process_time() - t)
    f, g = statistics.median(times["fast"]), statistics.median(times["generate_latest"])
    print(f"{args.targets} targets, {size / 2**20:.1f} MiB per scrape, outputs byte-identical")
    print(f"generate_latest  {g * 1000:7.0f} ms CPU per render (median of {args.rounds})")
    print(f"FastExposition   {f * 1000:7.0f} ms CPU per render   {g / f:.1f}x faster")


if __name__ == "__main__":
    main()
