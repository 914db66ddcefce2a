"""Helpers for the prober tests: a fast test farm on the mock, config files, a prober runner.

Everything runs on loopback. Timing is never asserted in absolute terms: counts are compared with the
schedule that the same run's own clock says should have happened.
"""

from __future__ import annotations

import asyncio
import copy
import re
import selectors
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from tokenpulse.config import Config, parse_config
from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import StreamResult
from tokenpulse.mock.farm import MockFarm, farm_from_data
from tokenpulse.prober.service import Prober

#: Fast and steady: a probe takes a few tens of milliseconds, far below any test interval.
FAST: dict[str, Any] = {
    "ttft": {"median_ms": 15, "p99_ms": 30},
    "decode": {"tokens_per_s": 800, "request_jitter": 0.0, "chunk_jitter": 0.0},
    "capacity": 512,
    "keepalive_ms": 0,
}
#: Slow decode, for the total timeout.
SLOW: dict[str, Any] = {**FAST, "decode": {"tokens_per_s": 5, "request_jitter": 0.0, "chunk_jitter": 0.0}}


def faulty(**errors: float) -> dict[str, Any]:
    """FAST with injected faults; hangs give up after 30 s on the server side (the client gives up first)."""
    return {**FAST, "errors": {**errors, "hang_max_s": 30}}


#: Provider slug -> profile of the test model. One provider per fault kind, each fault certain.
TEST_PROVIDERS: dict[str, dict[str, Any]] = {
    "fast-a": FAST,
    "fast-b": FAST,
    "fast-c": FAST,
    "hang": faulty(hang_first_byte=1.0),
    "hangmid": faulty(hang_mid_stream=1.0),
    "ratelimit": faulty(rate_limit=1.0),
    "err500": faulty(http_500=1.0),
    "err502": faulty(http_502=1.0),
    "err503": faulty(http_503=1.0),
    "midstream": faulty(mid_stream=1.0),
    "reset": faulty(reset=1.0),
    "malformed": faulty(malformed_chunk=1.0),
    "slow": SLOW,
}
TEST_MODEL = "test/chat"
REASONING_MODEL = "test/reasoner"


def farm_data() -> dict[str, Any]:
    return {
        "seed": 11,
        "models": {
            TEST_MODEL: {
                "name": "Test chat model", "context_length": 8192, "reasoning": False,
                "pricing": {"prompt": 0.1, "completion": 0.2}, "output_tokens": {"min": 20, "max": 30},
                "providers": {**{slug: {"name": slug.title(), "profile": copy.deepcopy(profile)}
                                 for slug, profile in TEST_PROVIDERS.items()},
                              # every request pinned to it is served by fast-a (`wrong_provider`)
                              "misrouted": {"name": "Misrouted", "profile": copy.deepcopy(FAST),
                                            "misroute": 1.0, "misroute_to": ["fast-a"]}},
            },
            REASONING_MODEL: {
                "name": "Test reasoning model", "context_length": 8192, "reasoning": True,
                "pricing": {"prompt": 0.1, "completion": 0.2}, "output_tokens": {"min": 20, "max": 30},
                "providers": {"thinker": {"name": "Thinker", "profile": copy.deepcopy(FAST)}},
            },
        },
    }


def make_farm(data: dict[str, Any]) -> MockFarm:
    return farm_from_data(data, "test farm")


def probe_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "interval_s": 0.5, "jitter_s": 0.0, "max_in_flight": 64,
        "timeouts": {"connect_s": 2.0, "ttft_s": 2.0, "idle_s": 1.0, "total_s": 10.0},
        "confirm": {"failures_before_down": 2, "successes_before_up": 2},
    }
    settings.update(overrides)
    return settings


def config_data(base_url: str, providers: list[str], *, model: str = TEST_MODEL, **probe: Any) -> dict[str, Any]:
    return {
        "endpoints": [{"name": "mock", "base_url": base_url, "kind": "openrouter",
                       "models": [{"id": model, "providers": providers}]}],
        "profiles": {"default": {"prompt": "Say something short.", "max_tokens": 16}},
        "probe": probe_settings(**probe),
        "slo": {"ttft_s": 2.0},
    }


def make_config(data: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    return parse_config(data, source="test config", env=env or {})


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_prober(config: Config, seconds: float, *, interval: float | None = None,
                     during: Callable[[Prober], Awaitable[None]] | None = None,
                     grace_s: float = 10.0) -> tuple[Prober, float]:
    """Run a prober (HTTP on an ephemeral loopback port) for `seconds`, call `during` near the end,
    stop it, and return it with the measured run time (start of scheduling to the stop request)."""
    prober = Prober(config, interval_override=interval, listen=("127.0.0.1", 0), shutdown_grace_s=grace_s)
    await prober.start()
    started = time.monotonic()
    try:
        await asyncio.sleep(seconds)
        if during is not None:
            await during(prober)
    finally:
        elapsed = time.monotonic() - started
        await prober.stop()
    return prober, elapsed


def sample(prober: Prober, name: str, **labels: str) -> float:
    value = prober.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def read_listen_port(proc: subprocess.Popen[str], deadline_s: float = 30.0) -> int:
    """The prober logs `probing N target(s) on http://HOST:PORT` once it serves."""
    assert proc.stderr is not None
    end = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < end:
            if not sel.select(max(0.0, end - time.monotonic())):
                break
            line = proc.stderr.readline()
            if not line:
                break
            match = re.search(r"probing \d+ target\(s\) on http://127\.0\.0\.1:(\d+)", line)
            if match:
                return int(match.group(1))
    raise AssertionError("the prober did not report its address")


def result(ok: bool = True, error_class: ErrorClass | None = None, ttft: float | None = 0.2,
           speed: float | None = 50.0, message: str | None = None) -> StreamResult:
    """A finished probe's result with chosen figures, for tests below the driver (history, metrics)."""
    return StreamResult(
        outcome=Outcome.OK if ok else Outcome.ERROR, error_class=error_class, error_message=message,
        http_status=200, t0_ns=0, ttfb_s=0.05, ttft_s=ttft, ttfc_s=ttft, e2e_s=1.0, tpot_s=0.02,
        output_tokens_per_s=speed, prompt_tokens=10, output_tokens=20, reasoning_tokens=0, cached_tokens=0,
        cost_usd=None, tokens_estimated=False, chunk_count=20, token_times_s=[], provider=None,
        generation_id=None, finish_reason="stop", retry_after_s=None, bytes_received=100, keepalive_count=0,
    )


def plan_one(config: Config) -> Any:
    """The one probe of a one-target config."""
    from tokenpulse.prober.targets import key_ring, plan

    (probe,) = plan(config.targets(), key_ring(config.endpoints))
    return probe


#: A few results of every kind, for history tests.
T0_RESULTS = [result(), result(False, ErrorClass.SERVER_ERROR, ttft=None, message="HTTP 502"),
              result(False, ErrorClass.RATE_LIMITED, ttft=None, message="HTTP 429"), result()]
