"""Helpers of the observability-stack tests (tests/stack/), imported by the test modules."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tokenpulse.ops.stack import (
    Service,
    Stack,
    alertmanager_argv,
    alertmanager_config,
    find_binary,
    write_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "prometheus" / "rules"
RULE_TESTS_DIR = ROOT / "prometheus" / "tests"
DASHBOARD_DIR = ROOT / "dashboards" / "json"


def require(names: tuple[str, ...] | str) -> str:
    """The path of the first installed binary of `names`; skip the test without one unless CI=true."""
    names = (names,) if isinstance(names, str) else names
    path = find_binary(names)
    if path:
        return path
    message = f"{' / '.join(names)} not installed (apt-get install prometheus prometheus-alertmanager)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run this test (.ci/run installs it)")
    pytest.skip(message)






def rule_groups() -> list[tuple[Path, dict[str, Any]]]:
    groups = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            groups.append((path, group))
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for _, group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for _, group in rule_groups() for rule in group["rules"] if "record" in rule]


#: A subquery at a step of minutes or more beyond one (`x[3d:5m]`, `x[1h:5m]`): its steps are aligned to
#: multiples of the step since the epoch, so its first point can be minutes away. (`[2h:1m]` has one
#: within a minute.)
SUBQUERY = re.compile(r"\[[0-9]+[smhdwy]:(?:[2-9]|[1-9][0-9]+)m\]|\[[0-9]+[smhdwy]:[0-9]+[hdwy]\]")


def subquery_fed(rules: list[dict[str, Any]]) -> set[str]:
    """The recording rules whose value rests on a subquery, directly or through other records: a fresh
    Prometheus has no point of theirs until the wall clock passes the next multiple of the subquery's
    step (up to 5 minutes) after the data started."""
    exprs = {rule["record"]: rule["expr"] for rule in rules}
    fed = {name for name, expr in exprs.items() if SUBQUERY.search(expr)}
    grown = True
    while grown:
        grown = False
        for name, expr in exprs.items():
            if name not in fed and any(re.search(rf"(?<![\w:]){re.escape(dep)}(?![\w:])", expr) for dep in fed):
                fed.add(name)
                grown = True
    return fed


def references_any(expr: str, names: set[str]) -> bool:
    """True when the PromQL `expr` names one of the series `names`."""
    return any(re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr) for name in names)


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def panel_targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel, rows' nested panels included."""
    out = []
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                out.append((inner, target))
    return out


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, query) of every query variable."""
    return [(v["name"], v["query"] if isinstance(v["query"], str) else v["query"]["query"])
            for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "query"]


#: What Grafana substitutes for its built-in variables, as the tests' Prometheus needs them (1 s scrapes,
#: a minute or two of data). Dashboard variables ($endpoint...) are multi-value with "All" = ".*".
GRAFANA_BUILTINS = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s"}


def substitute(expr: str, dashboard: dict[str, Any]) -> str:
    for name in sorted((v["name"] for v in dashboard.get("templating", {}).get("list", [])), key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", ".*").replace(f"${name}", ".*")
    for name, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, value)
    leftover = re.findall(r"\$\w+", expr)
    assert not leftover, f"unknown variables {leftover} in {expr}"
    return expr


def prom_query(base_url: str, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Instant query through Prometheus' HTTP API; raises on an error status (e.g. a parse error)."""
    data = urllib.parse.urlencode({"query": expr}).encode()
    request = urllib.request.Request(f"{base_url}/api/v1/query", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return result if isinstance(result, list) else [result]


def shortened_rules(dst: Path, *, interval: str = "1s", scale: int = 60, src: Path = RULES_DIR) -> list[Path]:
    """A copy of the rules in `src` with every group evaluated every `interval` and every `for` divided by
    `scale` (a minute becomes a second; at least 1 s), so an end-to-end test sees rules and alerts within
    seconds while the alerts keep their order (the endpoint-level `for` stays shorter than the
    per-provider one). The expressions are untouched."""
    dst.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in sorted(src.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in data["groups"]:
            group["interval"] = interval
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = f"{max(1, duration_s(rule['for']) // scale)}s"
                if "keep_firing_for" in rule:
                    # It covers the other targets' recovery, a few probe intervals: at 1 s probes that is
                    # seconds, more than its 2-minute floor divided by `scale`.
                    rule["keep_firing_for"] = f"{max(10, duration_s(rule['keep_firing_for']) // scale)}s"
        out = dst / path.name
        out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        paths.append(out)
    return paths


def duration_s(text: str) -> int:
    """Seconds of a Prometheus duration with one unit (30s, 2m, 1h, 1d)."""
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]


def start_test_alertmanager(stack: Stack, binary: str, run: Path, sink_url: str, port: int) -> None:
    """The committed alertmanager.yml pointed at a test's webhook sink, with 1 s grouping (so a test sees
    a notification within seconds) and a 1 h repeat (so a repeat is never mistaken for a new page)."""
    config = write_yaml(run / "alertmanager.yml", alertmanager_config(
        ROOT, sink_url, group_wait="1s", group_interval="1s", repeat_interval="1h"))
    stack.start(Service("alertmanager", alertmanager_argv(binary, config, run / "am-data", f"127.0.0.1:{port}"),
                        ready_url=f"http://127.0.0.1:{port}/-/ready", url=""))
