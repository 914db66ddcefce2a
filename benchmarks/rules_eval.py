"""Rule evaluation cost at 1,000 targets: the rules `tokenpulse rules` writes, on a real Prometheus.

Why: the rules run every 15 s for as long as the stack runs; a group whose evaluation takes longer than
its interval skips evaluations and delays alerts. Goal (issue 13): under a second per group at 1,000
targets.

What it does: builds the prober's own registry (tokenpulse.metrics.ProberMetrics, so the series and
their labels are exactly what a prober exports) for `--models` x `--providers` targets, every series
touched and the request counters, TTFT histogram and gauges moving (a thread records one probe per
target every `--probe-interval` seconds), serves it on a loopback port, writes a config of those targets
with a per-model and a per-provider override (so the rules carry objective cells), generates its rules,
and runs Prometheus (scrape every `--scrape-interval`, default 15 s as in prometheus/prometheus.yml; evaluate
every 15 s) for `--duration` seconds.
It then reads `prometheus_rule_group_last_duration_seconds` (sampled every 15 s: median and max) and
`prometheus_rule_group_iterations_missed_total` per group.

Caveat printed with the figures: the raw windows (5m, 30m, 1h) hold only `--duration` of samples, so
their share of the cost is lower than after an hour; the longer windows read recorded, aggregated
series at fixed steps (a subquery), whose cost does not grow with the data. Run:
`.venv/bin/python benchmarks/rules_eval.py [--duration 240]`.
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tokenpulse.config import load_config
from tokenpulse.core.outcomes import ErrorClass, Outcome
from tokenpulse.core.recorder import StreamResult
from tokenpulse.metrics import ProberMetrics
from tokenpulse.ops.rules import generate
from tokenpulse.ops.stack import free_port
from tokenpulse.prober.exposition import FastExposition
from tokenpulse.prober.service import METRICS_CONTENT_TYPE


def serve_metrics(metrics: ProberMetrics, port: int) -> http.server.ThreadingHTTPServer:
    """Serves /metrics the way the prober does (FastExposition, ~0.15 s of CPU per render at this size)
    rather than with prometheus-client's `generate_latest` (~2 s), so the feeder does not take the
    CPU Prometheus is being measured on."""
    exposition = FastExposition(metrics.registry)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = exposition.render()
            self.send_response(200)
            self.send_header("Content-Type", METRICS_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def config_file(path: Path, models: int, providers: int) -> Path:
    data = {
        "endpoints": [
            {
                "name": "bench",
                "base_url": "http://127.0.0.1:9/api/v1",
                "kind": "openrouter",
                "models": [
                    {"id": f"acme/model-{m}", "providers": [f"p{p}" for p in range(providers)]} for m in range(models)
                ],
            }
        ],
        "slo": {
            "models": {"acme/model-0": {"ttft_s": 5.0}},
            "providers": {"p1": {"ttft_s": 10.0, "availability": 0.98}},
        },
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def feed(metrics: ProberMetrics, targets: list[dict[str, str]], every_s: float, stop: threading.Event) -> None:
    rng = random.Random(1)
    while not stop.is_set():
        started = time.monotonic()
        now = time.time()
        for labels in targets:
            failed = rng.random() < 0.02
            result = _result(rng.uniform(0.1, 3.0), failed)
            metrics.requests.observe(labels, result)
            metrics.last_probe.labels(**labels).set(now)
        stop.wait(max(0.0, every_s - (time.monotonic() - started)))


def _result(ttft: float, failed: bool) -> StreamResult:
    fields = {f: None for f in StreamResult.__dataclass_fields__}  # type: ignore[attr-defined]
    return StreamResult(**{**fields, **_defaults(ttft, failed)})  # type: ignore[arg-type]


def _defaults(ttft: float, failed: bool) -> dict[str, object]:
    return {
        "outcome": Outcome.ERROR if failed else Outcome.OK,
        "error_class": ErrorClass.SERVER_ERROR if failed else None,
        "ttft_s": None if failed else ttft,
        "ttfb_s": ttft / 2,
        "token_times_s": (),
        "prompt_tokens": 10,
        "output_tokens": 20,
        "reasoning_tokens": 0,
        "tokens_estimated": False,
        "cost_usd": 0.0,
    }


def prom_query(base: str, expr: str) -> list[dict[str, object]]:
    data = urllib.parse.urlencode({"query": expr}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/query", data=data), timeout=120) as r:
        return json.loads(r.read())["data"]["result"]


def collect_rule_times(base: str, into: dict[tuple[str, str], dict[float, float]]) -> None:
    """Each rule's own evaluation time at its group's last evaluation (/api/v1/rules), keyed by when
    that evaluation ran, so a group evaluated once a minute counts once, not at every 15 s sample."""
    with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=30) as resp:
        groups = json.load(resp)["data"]["groups"]
    for group in groups:
        for r in group["rules"]:
            labels = ",".join(f"{k}={v}" for k, v in sorted((r.get("labels") or {}).items()))
            name = r["name"] + (f"{{{labels}}}" if labels else "")
            into.setdefault((group["name"], name), {})[hash(r.get("lastEvaluation"))] = float(r["evaluationTime"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--providers", type=int, default=10)
    parser.add_argument("--duration", type=float, default=240)
    parser.add_argument("--scrape-interval", default="15s", help="as prometheus/prometheus.yml scrapes the prober")
    parser.add_argument("--probe-interval", type=float, default=30)
    parser.add_argument("--top-rules", type=int, default=12, help="list the N rules with the longest median")
    args = parser.parse_args()
    run = Path(tempfile.mkdtemp(prefix="tokenpulse-rules-bench-"))
    config = load_config(config_file(run / "config.yaml", args.models, args.providers))
    targets = [t.labels for t in config.targets()]
    metrics = ProberMetrics()
    for labels in targets:
        metrics.requests.touch(labels)
        metrics.set_state(labels, "up")
        metrics.interval.labels(**labels).set(args.probe_interval)
        metrics.consecutive_failures.labels(**labels).set(0)
    stop = threading.Event()
    threading.Thread(target=feed, args=(metrics, targets, args.probe_interval, stop), daemon=True).start()
    port = free_port()
    server = serve_metrics(metrics, port)
    rules_dir = run / "prometheus"
    for rel, text in generate(config, source="bench").items():
        (rules_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (rules_dir / rel).write_text(text, encoding="utf-8")
    prom_port = free_port()
    (run / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": args.scrape_interval,
                    "scrape_timeout": args.scrape_interval,
                    "evaluation_interval": "15s",
                },
                "rule_files": [str(rules_dir / "rules" / "*.yml")],
                "scrape_configs": [
                    {"job_name": "tokenpulse-prober", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                    {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{prom_port}"]}]},
                ],
            }
        ),
        encoding="utf-8",
    )
    binary = shutil.which("prometheus") or "prometheus"
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={run / 'prometheus.yml'}",
            f"--storage.tsdb.path={run / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{prom_port}"
    durations: dict[str, list[float]] = {}
    per_rule: dict[tuple[str, str], dict[float, float]] = {}  # (group, rule) -> {evaluated at: seconds}
    try:
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            time.sleep(15)
            try:
                for sample in prom_query(base, "prometheus_rule_group_last_duration_seconds"):
                    group = str(sample["metric"]["rule_group"]).split(";")[-1]  # type: ignore[index]
                    durations.setdefault(group, []).append(float(sample["value"][1]))  # type: ignore[index]
                collect_rule_times(base, per_rule)
            except OSError:
                continue
        # one metric's series count, not every series (a 300k-series count can take a minute under load)
        series = prom_query(base, 'count(tokenpulse_requests_total{job="tokenpulse-prober"})')
        missed = prom_query(base, "sum by (rule_group) (prometheus_rule_group_iterations_missed_total)")
        iterations = prom_query(base, "sum(prometheus_rule_group_iterations_total)")
        scrapes = prom_query(base, 'sum_over_time(up{job="tokenpulse-prober"}[1h])')  # the successful ones
        scrape_s = prom_query(base, 'max_over_time(scrape_duration_seconds{job="tokenpulse-prober"}[1h])')
    finally:
        stop.set()
        server.shutdown()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(run, ignore_errors=True)
    counted = series[0]["value"][1] if series else "none (no scrape was stored)"  # type: ignore[index]
    runs = iterations[0]["value"][1] if iterations else "0"  # type: ignore[index]
    print(
        f"targets: {len(targets)}; tokenpulse_requests_total series: {counted}; "
        f"scrape every {args.scrape_interval}, "
        f"evaluate every 15 s, {args.duration:.0f} s of data; rule-group iterations: {runs}; successful scrapes: "
        f"{scrapes[0]['value'][1] if scrapes else 0}, slowest "  # type: ignore[index]
        f"{float(scrape_s[0]['value'][1]) if scrape_s else float('nan'):.2f} s"  # type: ignore[index, arg-type]
    )
    print("| group | evaluations sampled | median (s) | slowest (s) | missed iterations |")
    print("|---|---|---|---|---|")
    missed_by = {str(m["metric"]["rule_group"]).split(";")[-1]: m["value"][1] for m in missed}  # type: ignore[index]
    for group, values in sorted(durations.items(), key=lambda kv: -statistics.median(kv[1])):
        print(
            f"| {group} | {len(values)} | {statistics.median(values):.3f} | {max(values):.3f} | "
            f"{missed_by.get(group, '0')} |"
        )
    print(f"\nThe {args.top_rules} slowest rules (their own evaluation time, /api/v1/rules):")
    print("| group | rule | evaluations | median (s) | slowest (s) |")
    print("|---|---|---|---|---|")
    ranked = sorted(per_rule.items(), key=lambda kv: -statistics.median(kv[1].values()))
    for (group, name), times in ranked[: args.top_rules]:
        values = list(times.values())
        print(f"| {group} | `{name}` | {len(values)} | {statistics.median(values):.3f} | {max(values):.3f} |")


if __name__ == "__main__":
    main()
