"""The native stack's configs, derived from the committed files (prometheus/, alertmanager/,
dashboards/provisioning/) with only addresses, paths and intervals rewritten, so that `tokenpulse stack up`,
docker-compose and the tests run the same scrape jobs, rules, routes and dashboards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tokenpulse.ops.stack.errors import StackError


def find_root(start: Path | None = None) -> Path:
    """The tokenpulse checkout holding prometheus/, alertmanager/ and dashboards/: the first of `start`
    (default: the working directory) and its parents that has them, else the checkout that holds this package."""
    candidates = []
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    candidates.extend(Path(__file__).resolve().parents)  # an editable install: the package's checkout
    for path in candidates:
        has_prometheus = (path / "prometheus" / "prometheus.yml").is_file()
        if has_prometheus and (path / "alertmanager" / "alertmanager.yml").is_file():
            return path
    raise StackError("cannot find the tokenpulse checkout (prometheus/prometheus.yml and "
                     "alertmanager/alertmanager.yml); run from it or pass --root")


def prometheus_config(root: Path, *, prober: str, alertmanager: str, prometheus: str, locust: str | None = None,
                      rule_files: Sequence[Path] | None = None, scrape_interval: str | None = None,
                      evaluation_interval: str | None = None) -> dict[str, Any]:
    """prometheus/prometheus.yml with every target rewritten to the given HOST:PORT addresses.

    The `tokenpulse-locust` job is dropped when `locust` is None. Rule files default to the committed
    rules (absolute paths). A `scrape_interval` applies to every job (and the scrape timeout follows it).
    """
    base = yaml.safe_load((root / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {"tokenpulse-prober": prober, "tokenpulse-locust": locust, "prometheus": prometheus,
               "alertmanager": alertmanager}
    jobs = []
    for job in base["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            raise StackError(f"prometheus.yml: job {name!r} has no native address (known: {', '.join(targets)})")
        address = targets[name]
        if address is None:
            continue
        job = dict(job)
        labels = (job.get("static_configs") or [{}])[0].get("labels")
        job["static_configs"] = [{"targets": [address], **({"labels": labels} if labels else {})}]
        if scrape_interval:
            job.pop("scrape_interval", None)
            job.pop("scrape_timeout", None)
        jobs.append(job)
    base["scrape_configs"] = jobs
    base["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    if rule_files is None:
        rule_files = [root / "prometheus" / "rules" / "*.yml"]
    base["rule_files"] = [str(Path(p).resolve()) if "*" not in str(p) else str(p) for p in rule_files]
    glob = base.setdefault("global", {})
    if scrape_interval:
        glob["scrape_interval"] = scrape_interval
        glob["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        glob["evaluation_interval"] = evaluation_interval
    return base


def alertmanager_config(root: Path, sink_url: str, *, group_wait: str | None = None,
                        group_interval: str | None = None, repeat_interval: str | None = None) -> dict[str, Any]:
    """alertmanager/alertmanager.yml with every webhook pointed at `sink_url` (keeping each URL's path),
    and optionally shorter timings on every route (tests)."""
    base = yaml.safe_load((root / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    sink = sink_url.rstrip("/")
    for receiver in base.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = sink + (urlsplit(hook["url"]).path or f"/{receiver['name']}")
    timings = {"group_wait": group_wait, "group_interval": group_interval, "repeat_interval": repeat_interval}

    def retime(route: dict[str, Any]) -> None:
        for key, value in timings.items():
            if value is not None and (key in route or route is base["route"]):
                route[key] = value
        for child in route.get("routes", []):
            retime(child)

    retime(base["route"])
    return base


def grafana_files(root: Path, out: Path, *, host: str, port: int, prometheus_url: str, alertmanager_url: str,
                  admin_password: str) -> Path:
    """Write a grafana.ini and provisioning tree under `out` (from dashboards/provisioning, with local
    URLs and the absolute path of dashboards/json); returns the ini's path."""
    prov = out / "provisioning"
    for sub in ("datasources", "dashboards", "plugins", "alerting"):
        (prov / sub).mkdir(parents=True, exist_ok=True)
    datasources = yaml.safe_load((root / "dashboards" / "provisioning" / "datasources" / "tokenpulse.yml")
                                 .read_text(encoding="utf-8"))
    for ds in datasources["datasources"]:
        ds["url"] = {"prometheus": prometheus_url, "alertmanager": alertmanager_url}[ds["type"]]
    (prov / "datasources" / "tokenpulse.yml").write_text(yaml.safe_dump(datasources, sort_keys=False), encoding="utf-8")
    providers = yaml.safe_load((root / "dashboards" / "provisioning" / "dashboards" / "tokenpulse.yml")
                               .read_text(encoding="utf-8"))
    for provider in providers["providers"]:
        provider["options"]["path"] = str((root / "dashboards" / "json").resolve())
    (prov / "dashboards" / "tokenpulse.yml").write_text(yaml.safe_dump(providers, sort_keys=False), encoding="utf-8")
    ini = out / "grafana.ini"
    ini.write_text("\n".join([
        "[paths]",
        f"data = {out / 'data'}",
        f"logs = {out / 'logs'}",
        f"plugins = {out / 'plugins'}",
        f"provisioning = {prov}",
        "[server]",
        f"http_addr = {host}",
        f"http_port = {port}",
        "[security]",
        "admin_user = admin",
        f"admin_password = {admin_password}",
        "[users]",
        "allow_sign_up = false",
        "[analytics]",
        "reporting_enabled = false",
        "check_for_updates = false",
        "[dashboards]",
        f"default_home_dashboard_path = {(root / 'dashboards' / 'json' / 'provider-overview.json').resolve()}",
        "",
    ]), encoding="utf-8")
    return ini




def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
