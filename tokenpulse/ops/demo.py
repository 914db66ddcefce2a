"""`tokenpulse demo`: the whole product on the embedded mock farm, with no API key, Docker or network.

It starts the mock farm and the prober as child processes (the same `tokenpulse mock` / `tokenpulse
probe` a user runs), runs a short `tokenpulse load` concurrency sweep against every provider of the
farm's first model, then prints one comparison per provider: availability and state from the prober,
latency, decode speed, errors by class and cost from the load test's own records, and the saturation
knee found by the sweep. Everything it starts is stopped on exit, on Ctrl-C and on SIGTERM.

Why child processes and not threads: the mock, the prober and the Locust run each get a core's worth of
scheduling of their own, as they would in production, and the demo exercises the real commands.
With `--stack` it runs the native observability stack instead (`tokenpulse.ops.stack.bring_up`: Prometheus,
Alertmanager, Grafana when installed) around the same mock and prober.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from tokenpulse.core.format import fmt_number, fmt_seconds, render_table
from tokenpulse.mock import MockFarm, default_farm
from tokenpulse.ops.stack import (
    Service,
    Stack,
    StackError,
    free_port,
    port_free,
    python_module,
    url_host,
)

STATUS_PORT = 9464


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What one demo run does. `quick` is the test mode: two short steps, a 1 s probe interval."""

    out: Path
    quick: bool = False
    levels: tuple[int, ...] = (8, 32, 64, 96)
    step_s: float = 12.0
    warmup_s: float = 2.0
    probe_interval_s: float = 5.0
    status_port: int = STATUS_PORT
    stack: bool = False
    wait: bool = False

    @classmethod
    def quick_mode(cls, out: Path, **overrides: Any) -> DemoOptions:
        values: dict[str, Any] = {"quick": True, "levels": (4, 8), "step_s": 3.0, "warmup_s": 0.5,
                                  "probe_interval_s": 1.0}
        values.update(overrides)
        return cls(out=out, **values)


# ---------------------------------------------------------------------------------------- configs
def demo_probe_config(farm: MockFarm, mock_url: str, *, quick: bool) -> dict[str, Any]:
    """A prober config for every model and provider of the farm, reasoning pinned low."""
    models = [{"id": model_id, "providers": list(spec.providers),
               "price": {"prompt_per_mtok": spec.pricing.prompt, "completion_per_mtok": spec.pricing.completion}}
              for model_id, spec in farm.models.items()]
    return {
        "endpoints": [{"name": "mock", "base_url": mock_url, "kind": "openrouter", "models": models}],
        "profiles": {"default": {"prompt": "Reply with a short paragraph about the sea.", "max_tokens": 256,
                                 "temperature": 0, "seed": 1234, "reasoning": {"effort": "low"}}},
        "probe": {"interval_s": 30, "jitter_s": 0.2 if quick else 1.0, "max_in_flight": 16,
                  "timeouts": {"connect_s": 5, "ttft_s": 10 if quick else 20, "idle_s": 10, "total_s": 60},
                  "confirm": {"failures_before_down": 3, "successes_before_up": 2}, "credits_interval_s": 30},
        "slo": {"ttft_s": 2.0, "tpot_s": 0.05, "availability": 0.99},
    }


def demo_load_config(farm: MockFarm, model_id: str, mock_url: str, *, warmup_s: float) -> dict[str, Any]:
    """A load-test config for one model, all its providers side by side."""
    spec = farm.models[model_id]
    return {
        "endpoints": [{"name": "mock", "base_url": mock_url, "kind": "openrouter", "models": [
            {"id": model_id, "providers": list(spec.providers),
             "price": {"prompt_per_mtok": spec.pricing.prompt, "completion_per_mtok": spec.pricing.completion}}]}],
        "slo": {"ttft_s": 2.0, "tpot_s": 0.05, "availability": 0.99},
        "load": {"workload": {"input_tokens_mean": 200, "input_tokens_stddev": 50, "output_tokens_mean": 120,
                              "output_tokens_stddev": 40, "reasoning": {"effort": "low"}},
                 "timeouts": {"connect_s": 5, "ttft_s": 30, "idle_s": 15, "total_s": 90},
                 "warmup_s": warmup_s},
    }


def write_yaml(path: Path, data: Mapping[str, Any], header: str) -> Path:
    path.write_text(f"# {header}\n" + yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- comparison
@dataclass(frozen=True, slots=True)
class ProviderRow:
    """One provider's figures, joined from the prober's status and the load test's summary."""

    provider: str
    state: str | None
    availability: float | None
    probes: int | None
    requests: int
    errors: int
    error_classes: Mapping[str, int]
    ttft_p50: float | None
    ttft_p95: float | None
    ttfc_p50: float | None
    ttfc_p95: float | None
    tpot_p50: float | None
    tokens_per_s_p50: float | None
    usd_per_mtok: float | None
    knee: float | None
    knee_reason: str


def comparison(summary: Mapping[str, Any], status: Mapping[str, Any] | None, model_id: str) -> list[ProviderRow]:
    """Rows in the load test's target order. Availability is the prober's (provider-side failures only,
    DESIGN §4); latency and speed come from the load test's own records."""
    probed: dict[str, Mapping[str, Any]] = {}
    for group in (status or {}).get("groups", []):
        if group.get("model") == model_id:
            for target in group.get("targets", []):
                probed[target["provider"]] = target
    knees = summary.get("knee", {}).get("targets", {})
    rows = []
    for target in summary.get("targets", []):
        overall = target["overall"]
        provider = target["provider"]
        probe = probed.get(provider, {})
        tokens = overall.get("tokens") or {}
        billed = (tokens.get("prompt") or 0) + (tokens.get("output") or 0)
        cost = overall.get("cost_usd")
        knee = knees.get(target["name"], {})
        rows.append(ProviderRow(
            provider=provider,
            state=probe.get("state"),
            availability=probe.get("uptime_1h"),
            probes=probe.get("probes"),
            requests=overall["requests"],
            errors=overall["errors"],
            error_classes=overall.get("error_classes") or {},
            ttft_p50=_stat(overall, "ttft", "p50"), ttft_p95=_stat(overall, "ttft", "p95"),
            ttfc_p50=_stat(overall, "ttfc", "p50"), ttfc_p95=_stat(overall, "ttfc", "p95"),
            tpot_p50=_stat(overall, "tpot", "p50"),
            tokens_per_s_p50=_stat(overall, "output_tps", "p50"),
            usd_per_mtok=(cost / billed * 1e6) if cost and billed else None,
            knee=knee.get("per_target_level", knee.get("level")),
            knee_reason=str(knee.get("reason", "")),
        ))
    return rows


def _stat(overall: Mapping[str, Any], metric: str, key: str) -> float | None:
    value = (overall.get(metric) or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def render_comparison(rows: Sequence[ProviderRow], model_id: str, per_target_levels: Sequence[float]) -> str:
    headers = ["provider", "state", "avail", "TTFT p50", "TTFT p95", "TTFC p50", "TTFC p95", "TPOT p50",
               "tok/s p50", "errors", "$/Mtok", "knee (users)"]
    table = []
    for r in rows:
        avail = "-" if r.availability is None else f"{r.availability:.1%}"
        errors = f"{r.errors}/{r.requests}" + (f" ({r.errors / r.requests:.0%})" if r.requests else "")
        knee = "-" if r.knee is None else f"{r.knee:g}"
        table.append([r.provider, r.state or "-", avail, fmt_seconds(r.ttft_p50), fmt_seconds(r.ttft_p95),
                      fmt_seconds(r.ttfc_p50), fmt_seconds(r.ttfc_p95), fmt_seconds(r.tpot_p50),
                      fmt_number(r.tokens_per_s_p50), errors,
                      "-" if r.usd_per_mtok is None else f"{r.usd_per_mtok:.3f}", knee])
    lines = [f"Providers of {model_id} (availability and state: prober; the rest: load test records)", "",
             render_table(headers, table), ""]
    classes = [(r.provider, r.error_classes) for r in rows if r.error_classes]
    if classes:
        lines.append("errors by class:")
        for provider, counts in classes:
            detail = ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {provider}: {detail}")
        lines.append("")
    levels = ", ".join(f"{v:g}" for v in per_target_levels)
    lines.append(f"knee: the last concurrency per provider ({levels} users each) before added users stopped "
                 "adding throughput or TTFT p95 doubled; '-' = not reached in this sweep")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ run
class DemoError(RuntimeError):
    """A service of the demo failed to start or the load test produced nothing."""


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so `finally` blocks stop every child process."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(opts: DemoOptions, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the demo; 0 on success, 1 when a service or the load test failed, 130 on Ctrl-C."""
    opts.out.mkdir(parents=True, exist_ok=True)
    farm = default_farm()
    model_id = next(iter(farm.models))
    providers = list(farm.models[model_id].providers)
    say = _printer(out)
    say(f"tokenpulse demo: the embedded mock farm ({len(farm.models)} models, {len(farm.provider_slugs())} "
        "providers), the prober and a Locust sweep. No API key, no Docker, no network.")
    say(f"run folder: {opts.out}")
    closers: list[Callable[[], None]] = []
    try:
        with _terminate_on_sigterm(), Stack(opts.out / "services", ready_timeout=60, stop_timeout=10) as stack:
            mock_url, status_url, extra = _start_services(stack, opts, farm, say, closers)
            load_yaml = write_yaml(opts.out / "load.yaml",
                                   demo_load_config(farm, model_id, mock_url, warmup_s=opts.warmup_s),
                                   f"tokenpulse demo: load sweep of {model_id} on the mock farm")
            say(f"status page: {status_url}  (the prober probes every provider every {opts.probe_interval_s:g} s)")
            for line in extra:
                say(line)
            say("")
            summary = _run_load(opts, load_yaml, err)
            status = _fetch_json(status_url.rstrip("/") + "/api/status")
            per_target = [level / len(providers) for level in opts.levels]
            say("")
            say(render_comparison(comparison(summary, status, model_id), model_id, per_target))
            say("")
            say(f"report: {opts.out / 'load' / 'report.html'} (also report.md, summary.json, records-*.jsonl)")
            say(f"status page while the demo runs: {status_url}")
            say("")
            say(_next_steps())
            if opts.wait:
                _wait_for_user(say)
    except KeyboardInterrupt:
        say("\ninterrupted: stopped every process the demo started")
        return 130
    except (StackError, DemoError) as exc:
        print(f"tokenpulse demo: {exc}", file=err)
        return 1
    finally:
        for close in closers:
            close()
    say("stopped every process the demo started.")
    return 0


def _start_services(stack: Stack, opts: DemoOptions, farm: MockFarm, say: Any,
                    closers: list[Callable[[], None]]) -> tuple[str, str, list[str]]:
    """Start the mock and the prober (or the native stack around them); return the mock's API URL, the
    status page URL and lines to print about further services. `closers` gets what must be stopped
    besides the stack's processes."""
    host = "127.0.0.1"
    if opts.stack:
        return _start_native_stack(stack, opts, farm, closers)
    mock_port = free_port(host)
    mock_url = f"http://{url_host(host)}:{mock_port}/api/v1"
    stack.start(Service("mock", python_module("mock", "--host", host, "--port", str(mock_port)),
                        ready_url=f"http://{url_host(host)}:{mock_port}/healthz", url=mock_url))
    say(f"mock farm: {mock_url}")
    probe_yaml = write_yaml(opts.out / "probe.yaml", demo_probe_config(farm, mock_url, quick=opts.quick),
                            "tokenpulse demo: every provider of the mock farm")
    port = opts.status_port if opts.status_port and port_free(host, opts.status_port) else free_port(host)
    status_url = f"http://{url_host(host)}:{port}/"
    stack.start(Service("prober", python_module("probe", "--config", str(probe_yaml), "--listen", f"{host}:{port}",
                                                "--interval", f"{opts.probe_interval_s:g}"),
                        ready_url=status_url + "healthz", url=status_url))
    return mock_url, status_url, [f"Prometheus metrics: {status_url}metrics"]


def _start_native_stack(stack: Stack, opts: DemoOptions, farm: MockFarm,
                        closers: list[Callable[[], None]]) -> tuple[str, str, list[str]]:
    """`--stack`: Prometheus, Alertmanager (and Grafana when installed) around the mock and the prober."""
    from tokenpulse.ops.stack import StackOptions, bring_up, find_root

    host = "127.0.0.1"
    probe_yaml = write_yaml(opts.out / "probe.yaml",
                            demo_probe_config(farm, "${TOKENPULSE_MOCK_URL}", quick=opts.quick),
                            "tokenpulse demo: every provider of the mock farm (TOKENPULSE_MOCK_URL set by the demo)")
    ports = {name: 0 for name in ("mock", "prober", "prometheus", "alertmanager", "sink", "grafana")}
    stack_opts = StackOptions(root=find_root(), run_dir=stack.run_dir, config=probe_yaml, host=host, ports=ports,
                              probe_interval=opts.probe_interval_s, scrape_interval="5s", evaluation_interval="5s")
    sink, warnings = bring_up(stack, stack_opts)
    closers.append(sink.stop)
    urls = {service.name: service.url for service in stack.services}
    lines = [f"{name}: {url}" for name, url in urls.items() if name not in ("mock", "prober")]
    lines += [f"note: {w}" for w in warnings]
    return urls["mock"], urls["prober"], lines


def _run_load(opts: DemoOptions, load_yaml: Path, err: TextIO) -> dict[str, Any]:
    """`tokenpulse load` as a child process: its progress line goes to the terminal, its table to a file
    (the demo prints its own comparison)."""
    run_dir = opts.out / "load"
    levels = ",".join(str(level) for level in opts.levels)
    argv = python_module("load", "--config", str(load_yaml), "--shape", "sweep", "--levels", levels,
                         "--step-time", f"{opts.step_s:g}s", "--warmup", f"{opts.warmup_s:g}s",
                         "--out", str(run_dir), "--metrics-port", "0")
    print(f"load sweep: {levels} users ({opts.step_s:g} s each), users spread evenly over the providers",
          file=err, flush=True)
    with (opts.out / "load-console.txt").open("w", encoding="utf-8") as table:
        proc = subprocess.Popen(argv, stdout=table, stderr=err if _is_real_file(err) else subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            _, stderr_text = proc.communicate()
        except BaseException:
            _stop(proc)
            raise
    if stderr_text and not _is_real_file(err):
        err.write(stderr_text)
    summary_path = run_dir / "summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        raise DemoError(f"the load test failed (exit {proc.returncode}); see {run_dir / 'locust.log'}")
    return json.loads(summary_path.read_text(encoding="utf-8"))


def _stop(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _is_real_file(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _fetch_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None




def _wait_for_user(say: Any) -> None:
    say("The prober and the mock keep running: press Enter (or Ctrl-C) to stop them.")
    try:
        sys.stdin.readline()
    except (OSError, ValueError):
        time.sleep(0)


def _next_steps() -> str:
    return "\n".join([
        "next:",
        "  dashboards and alerts:  docker compose up -d   "
        "(Grafana on http://127.0.0.1:3000; see docs/observability.md)",
        "                          or without Docker: tokenpulse stack up",
        "  your own providers:     export OPENROUTER_API_KEY=...",
        "                          tokenpulse probe --config examples/openrouter.yaml",
        "                          tokenpulse load --config openrouter-load.yaml "
        "--max-cost 1.00 --users 4 --run-time 2m",
        "                          (a load test lists its providers: "
        "docs/getting-started-openrouter.md shows the file)",
        "  see docs/getting-started-openrouter.md and docs/self-hosted.md",
    ])


def _printer(out: TextIO) -> Any:
    def say(line: str) -> None:
        print(line, file=out, flush=True)
    return say
