"""`tokenpulse stack up`: the observability stack without Docker (mock farm, prober, Prometheus,
Alertmanager and, when installed, Grafana) as local processes on loopback ports, plus a webhook sink.
The composition only: configs come from configs.py, ports from ports.py, processes from supervise.py."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tokenpulse.config import ConfigError, load_config
from tokenpulse.ops.rules import generate
from tokenpulse.ops.stack.configs import alertmanager_config, grafana_files, prometheus_config, write_yaml
from tokenpulse.ops.stack.errors import StackError
from tokenpulse.ops.stack.ports import busy_ports, free_port, url_host
from tokenpulse.ops.stack.sink import WebhookSink
from tokenpulse.ops.stack.supervise import (
    ALERTMANAGER_BINARIES,
    GRAFANA_BINARIES,
    GRAFANA_HOMES,
    PROMETHEUS_BINARIES,
    Service,
    Stack,
    alertmanager_argv,
    find_binary,
    prometheus_argv,
    python_module,
)

DEFAULT_PORTS: dict[str, int] = {
    "mock": 8080,
    "prober": 9464,
    "prometheus": 9090,
    "alertmanager": 9093,
    "sink": 9095,
    "grafana": 3000,
}


@dataclass
class StackOptions:
    root: Path
    run_dir: Path
    config: Path
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    mock: bool = True
    grafana: bool = True
    probe_interval: float | None = None
    scrape_interval: str | None = None
    evaluation_interval: str | None = None


def stack_rules(config: Path, out: Path) -> list[Path]:
    """The rules for the config this stack probes (its objectives, `$TOKENPULSE_RUNBOOK_BASE_URL` in the
    runbook links), generated into the run directory: `tokenpulse rules`' output, not a copy of the
    committed files, so `stack up --config examples/openrouter.yaml` alerts on that config's SLOs."""
    try:
        files = generate(load_config(config), source=str(config))
    except ConfigError as exc:
        raise StackError(str(exc)) from None
    paths = []
    for rel, text in files.items():
        if rel.startswith("rules/"):
            path = out / rel.removeprefix("rules/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    return paths


def bring_up(stack: Stack, opts: StackOptions, *, echo: TextIO | None = None) -> tuple[WebhookSink, list[str]]:
    """Start every service of the native stack into `stack`; returns the sink (the caller stops it) and
    warnings about services left out."""
    host, hurl = opts.host, url_host(opts.host)
    wanted = {name: port for name, port in opts.ports.items()
              if (name != "mock" or opts.mock) and (name != "grafana" or opts.grafana)}
    busy = busy_ports(host, wanted)
    if busy:
        raise StackError(f"ports in use on {host}: {', '.join(busy)} (a system Prometheus or Alertmanager "
                         "service? stop it, or pass --<service>-port with another port, 0 for any free one)")
    ports = {name: (port or free_port(host)) for name, port in opts.ports.items()}
    warnings: list[str] = []
    prometheus_bin = find_binary(PROMETHEUS_BINARIES)
    alertmanager_bin = find_binary(ALERTMANAGER_BINARIES)
    missing = [name for name, path in (("prometheus", prometheus_bin), ("alertmanager", alertmanager_bin)) if not path]
    if missing:
        raise StackError(f"not installed: {', '.join(missing)} (Debian/Ubuntu: apt-get install prometheus "
                         "prometheus-alertmanager)")
    assert prometheus_bin and alertmanager_bin
    run = opts.run_dir

    sink = WebhookSink(host, ports["sink"], echo=echo, log_path=run / "alerts.jsonl").start()
    try:
        am_config = write_yaml(run / "alertmanager.yml", alertmanager_config(opts.root, sink.url))
        stack.start(Service("alertmanager", alertmanager_argv(alertmanager_bin, am_config, run / "alertmanager-data",
                                                              f"{host}:{ports['alertmanager']}",
                                                              f"http://{hurl}:{ports['alertmanager']}/"),
                            ready_url=f"http://{hurl}:{ports['alertmanager']}/-/ready",
                            url=f"http://{hurl}:{ports['alertmanager']}/"))
        # probe.state_dir of the example configs: the prober's history lives with the run's other data
        env = {"TOKENPULSE_STATE_DIR": str(run / "prober-state")}
        if opts.mock:
            stack.start(Service("mock", python_module("mock", "--host", host, "--port", str(ports["mock"])),
                                ready_url=f"http://{hurl}:{ports['mock']}/healthz",
                                url=f"http://{hurl}:{ports['mock']}/api/v1"))
            env["TOKENPULSE_MOCK_URL"] = f"http://{hurl}:{ports['mock']}/api/v1"
        prober_argv = python_module("probe", "--config", str(opts.config), "--listen", f"{host}:{ports['prober']}")
        if opts.probe_interval:
            prober_argv += ["--interval", str(opts.probe_interval)]
        stack.start(Service("prober", prober_argv, ready_url=f"http://{hurl}:{ports['prober']}/healthz",
                            url=f"http://{hurl}:{ports['prober']}/", env=env, note="status page; /metrics"))
        prom_config = write_yaml(run / "prometheus.yml", prometheus_config(
            opts.root, prober=f"{hurl}:{ports['prober']}", alertmanager=f"{hurl}:{ports['alertmanager']}",
            prometheus=f"{hurl}:{ports['prometheus']}", scrape_interval=opts.scrape_interval,
            evaluation_interval=opts.evaluation_interval, rule_files=stack_rules(opts.config, run / "rules")))
        stack.start(Service("prometheus", prometheus_argv(prometheus_bin, prom_config, run / "prometheus-data",
                                                          f"{host}:{ports['prometheus']}",
                                                          f"http://{hurl}:{ports['prometheus']}/"),
                            ready_url=f"http://{hurl}:{ports['prometheus']}/-/ready",
                            url=f"http://{hurl}:{ports['prometheus']}/", note="alerts: /alerts"))
        if opts.grafana:
            grafana_bin = find_binary(GRAFANA_BINARIES)
            home = next((h for h in (os.environ.get("GRAFANA_HOME"), *GRAFANA_HOMES) if h and Path(h).is_dir()), None)
            if grafana_bin and home:
                password = os.environ.get("GF_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
                ini = grafana_files(opts.root, run / "grafana", host=host, port=ports["grafana"],
                                    prometheus_url=f"http://{hurl}:{ports['prometheus']}",
                                    alertmanager_url=f"http://{hurl}:{ports['alertmanager']}",
                                    admin_password=password)
                argv = [grafana_bin, *(["server"] if Path(grafana_bin).name == "grafana" else []),
                        f"--homepath={home}", f"--config={ini}"]
                shown = "$GF_ADMIN_PASSWORD" if "GF_ADMIN_PASSWORD" in os.environ else password
                stack.start(Service("grafana", argv, ready_url=f"http://{hurl}:{ports['grafana']}/api/health",
                                    url=f"http://{hurl}:{ports['grafana']}/", note=f"admin / {shown}"))
            else:
                warnings.append("Grafana is not installed (no grafana or grafana-server with a home directory): "
                                "skipped. The dashboards are in dashboards/json; docker compose runs Grafana.")
    except BaseException:
        sink.stop()
        raise
    return sink, warnings
