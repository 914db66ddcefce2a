"""CPU per probe of the prober's driver alone (transport, framing, SSE, recorder), in-process against the
mock (a subprocess, so its CPU is not counted), and of the whole `ProbeRunner.probe` (plus metrics,
state and history), side by side, interleaved over rounds.

Why: benchmarks/prober_scale.py shows the 1,000-target prober at ~10.5 % of a core; this splits that
cost between reading a response and recording it. Farm and probe as in prober_scale.py (max_tokens 32,
1-2 tokens per chunk), `/generation` lookups off. Loopback only. Run:
`.venv/bin/python benchmarks/driver_cost.py [--probes 1000] [--concurrency 16] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop  # noqa: E402
from prober_scale import config_yaml, farm_yaml  # noqa: E402

from tokenpulse.config import load_config  # noqa: E402
from tokenpulse.mock import MockServerProcess  # noqa: E402
from tokenpulse.prober.service import Prober  # noqa: E402
from tokenpulse.prober.targets import ProbeTarget, plan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=1000, help="probes per way per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokenpulse-driver-cost-"))
    (tmp / "farm.yaml").write_text(farm_yaml(2, 20), encoding="utf-8")
    with MockServerProcess(config_path=tmp / "farm.yaml") as mock:
        (tmp / "config.yaml").write_text(config_yaml(mock.base_url, 2, 20, 30, 64, lookup_rate=0), encoding="utf-8")
        config = load_config(tmp / "config.yaml")

        async def run() -> None:
            prober = Prober(config, listen=None)
            probes = plan(config.targets(), prober.keys)
            runner, driver = prober.runner, prober.runner._driver
            for p in probes:
                runner.track(p)

            async def driver_only(p: ProbeTarget) -> None:
                await driver.run(p.request, p.timeouts)

            async def whole(p: ProbeTarget) -> None:
                await runner.probe(p)

            async def way(fn: Callable[[ProbeTarget], Awaitable[None]]) -> float:
                gate = asyncio.Semaphore(args.concurrency)

                async def one(i: int) -> None:
                    async with gate:
                        await fn(probes[i % len(probes)])

                t = time.process_time()
                await asyncio.gather(*(one(i) for i in range(args.probes)))
                return (time.process_time() - t) / args.probes

            times: dict[str, list[float]] = {"driver.run": [], "ProbeRunner.probe": []}
            for _ in range(args.rounds):
                times["driver.run"].append(await way(driver_only))
                times["ProbeRunner.probe"].append(await way(whole))
            print(f"{args.probes} probes per way and round, {args.concurrency} at a time, {args.rounds} rounds "
                  f"(medians); the mock runs in its own process")
            for name, values in times.items():
                print(f"{name:18} {statistics.median(values) * 1e6:6.0f} µs CPU per probe")

        uvloop.run(run())


if __name__ == "__main__":
    main()
