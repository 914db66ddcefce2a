"""End to end on real components, loopback only: the mock farm, the prober, a Locust load test with its
exporter, Prometheus (1 s scrapes and evaluations, the committed rules with `for:` shortened), Alertmanager
(the committed routing with short group timings) and a webhook sink.

It checks that every recording rule and every PromQL query of every dashboard panel returns series, then
starts an outage of one mock provider and follows the provider-down alert through Prometheus and
Alertmanager to the webhook, and its resolution after the outage ends.
"""

from __future__ import annotations

import json
import math
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack_helpers import (
    ROOT,
    dashboards,
    panel_targets,
    prom_query,
    recording_rules,
    references_any,
    shortened_rules,
    start_test_alertmanager,
    subquery_fed,
    substitute,
    variable_queries,
)

from tokenpulse.mock import MockServerProcess
from tokenpulse.ops.rules import DEFAULT_RUNBOOK_BASE_URL
from tokenpulse.ops.stack import (
    Service,
    Stack,
    WebhookSink,
    free_port,
    prometheus_argv,
    prometheus_config,
    write_yaml,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

OUTAGE_PROVIDER = "swiftinfer"
#: How long the stack gets to produce every series (a probe per target per second, 1 s scrapes).
DATA_DEADLINE_S = 75.0
ALERT_DEADLINE_S = 60.0


@dataclass
class E2E:
    prometheus: str
    mock: MockServerProcess
    sink: WebhookSink
    started: float


def prober_config(path: Path) -> Path:
    """examples/mock.yaml with the probe settings of a test: a probe per second, no jitter, confirmation
    after 2 failures (1 success to recover), credits polled every second, short timeouts."""
    data = yaml.safe_load((ROOT / "examples" / "mock.yaml").read_text(encoding="utf-8"))
    data["probe"].update({
        "interval_s": 1, "jitter_s": 0, "credits_interval_s": 1,
        "confirm": {"failures_before_down": 2, "successes_before_up": 1},
        "timeouts": {"connect_s": 2, "ttft_s": 15, "idle_s": 10, "total_s": 30},
        "state_dir": str(path.parent / "prober-state"),  # a fresh history, not the checkout's
    })
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def e2e(prometheus_bin: str, alertmanager_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    run = tmp_path_factory.mktemp("e2e")
    stack = Stack(run, ready_timeout=60)
    sink = WebhookSink().start()
    mock = MockServerProcess(port=0)
    ports = {name: free_port() for name in ("alertmanager", "prober", "locust", "prometheus")}
    try:
        start_test_alertmanager(stack, alertmanager_bin, run, sink.url, ports["alertmanager"])
        mock.start()
        config = prober_config(run / "prober.yaml")
        env = {"TOKENPULSE_MOCK_URL": mock.base_url}
        stack.start(Service("prober", [sys.executable, "-m", "tokenpulse", "probe", "--config", str(config),
                                       "--interval", "1", "--listen", f"127.0.0.1:{ports['prober']}"],
                            ready_url=f"http://127.0.0.1:{ports['prober']}/healthz", url="", env=env))
        # A small headless load test, so the Load test dashboard has a live exporter to read.
        stack.start(Service("locust", [
            sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "tokenpulse_locust.py"), "--headless",
            "--only-summary", "--tp-config", str(config), "--tp-out", str(run / "load"), "--tp-users", "2",
            "--tp-run-time", "600", "--tp-metrics-port", str(ports["locust"]), "--tp-metrics-host", "127.0.0.1"],
            ready_url=f"http://127.0.0.1:{ports['locust']}/metrics", url="", env=env))
        rules = shortened_rules(run / "rules")
        prom = write_yaml(run / "prometheus.yml", prometheus_config(
            ROOT, prober=f"127.0.0.1:{ports['prober']}", alertmanager=f"127.0.0.1:{ports['alertmanager']}",
            prometheus=f"127.0.0.1:{ports['prometheus']}", locust=f"127.0.0.1:{ports['locust']}",
            rule_files=rules, scrape_interval="1s", evaluation_interval="1s"))
        stack.start(Service("prometheus", prometheus_argv(prometheus_bin, prom, run / "prom-data",
                                                          f"127.0.0.1:{ports['prometheus']}"),
                            ready_url=f"http://127.0.0.1:{ports['prometheus']}/-/ready", url=""))
        yield E2E(prometheus=f"http://127.0.0.1:{ports['prometheus']}", mock=mock, sink=sink, started=time.monotonic())
    finally:
        stack.stop()
        mock.stop()
        sink.stop()


def wait_all(checks: dict[str, Callable[[], bool]], deadline: float) -> list[str]:
    """Run every check until each has passed once or the deadline is reached; returns those that never did."""
    pending = dict(checks)
    while pending:
        for name, check in list(pending.items()):
            if check():
                del pending[name]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return sorted(pending)


def evaluated_cleanly(base: str, record: str) -> Callable[[], bool]:
    """The recording rule `record` has been evaluated at least once, and every evaluation so far was
    healthy (Prometheus' rules API: `health` "ok", no `lastError`)."""
    def check() -> bool:
        with urllib.request.urlopen(f"{base}/api/v1/rules?type=record", timeout=10) as response:
            groups = json.loads(response.read())["data"]["groups"]
        states = [rule for group in groups for rule in group["rules"] if rule.get("name") == record]
        assert states, f"{record} is not loaded"
        for rule in states:
            assert rule.get("health") != "err", f"{record}: {rule.get('lastError')}"
        return all(rule.get("health") == "ok" and not rule.get("lastError") for rule in states)
    return check


def evaluates(base: str, expr: str) -> Callable[[], bool]:
    """The query parses and evaluates (prom_query raises on an error status), with or without series."""
    def check() -> bool:
        prom_query(base, expr)
        return True
    return check


def has_series(base: str, expr: str, *, finite: bool = False) -> Callable[[], bool]:
    def check() -> bool:
        result = prom_query(base, expr)
        if not finite:
            return bool(result)
        return any(math.isfinite(float(s["value"][1])) for s in result)
    return check


@pytest.fixture(scope="module")
def provider_down(e2e: E2E) -> dict[str, Any]:
    """Start an outage of one provider once every target has been probed; return the firing alert as the
    webhook received it."""
    stop = e2e.started + DATA_DEADLINE_S
    up = has_series(e2e.prometheus,
                    f'tokenpulse_target_up{{job="tokenpulse-prober", provider="{OUTAGE_PROVIDER}"}} == 1')
    assert not wait_all({"up": up}, stop), f"{OUTAGE_PROVIDER} never reported up"
    e2e.mock.set_outage(OUTAGE_PROVIDER, True)
    return e2e.sink.wait_for(
        lambda note, alert: alert["labels"].get("alertname") == "TokenpulseProviderDown"
        and alert["labels"].get("provider") == OUTAGE_PROVIDER and alert["status"] == "firing",
        ALERT_DEADLINE_S)


def test_every_recording_rule_returns_series(e2e: E2E) -> None:
    """Every recording rule evaluates against the real Prometheus without error, and every one whose value
    does not rest on a subquery returns a finite series of the prober's. A subquery's first point waits
    for the next multiple of its step (5 min) on the wall clock after the data started, i.e. up to 5
    minutes of an idle test: those rules (and the records built on them) are held to a clean evaluation
    here, and their values over days to the promtool tests (prometheus/tests/generated_long_test.yml)."""
    rules = recording_rules()
    fed = subquery_fed(rules)
    plain = sorted({rule["record"] for rule in rules} - fed)
    assert fed and plain  # the split is real: both kinds exist
    checks = {r: has_series(e2e.prometheus, f'{r}{{job="tokenpulse-prober"}}', finite=True) for r in plain}
    checks |= {f"{r} (evaluated)": evaluated_cleanly(e2e.prometheus, r) for r in sorted(fed)}
    # the `[2h:1m]` subqueries' first point: the next whole minute after the data started
    missing = wait_all(checks, e2e.started + DATA_DEADLINE_S + 60)
    assert not missing, f"recording rules without a finite prober series or a clean evaluation: {missing}"
    # and the SLI figures make sense: availability is a ratio, TTFT percentiles are ordered
    for sample in prom_query(e2e.prometheus,
                             'job_target:tokenpulse_availability:ratio_rate5m{job="tokenpulse-prober"}'):
        value = float(sample["value"][1])
        assert math.isnan(value) or 0 <= value <= 1, sample
    # Right after the first rule results, a target's rate may still rest on two scrapes that fell
    # between the same two probes (rate 0, quantile NaN): wait for this provider's own figures.
    ttft_quantiles = ('job_target:tokenpulse_ttft_seconds:quantile_rate5m{job="tokenpulse-prober", '
                      f'provider="{OUTAGE_PROVIDER}"}}')
    assert not wait_all({"ttft": has_series(e2e.prometheus, ttft_quantiles, finite=True)},
                        e2e.started + DATA_DEADLINE_S), f"no finite TTFT quantile for {OUTAGE_PROVIDER}"
    quantiles: dict[str, dict[str, float]] = {}
    for sample in prom_query(e2e.prometheus, ttft_quantiles):
        quantiles.setdefault(sample["metric"]["model"], {})[sample["metric"]["quantile"]] = float(sample["value"][1])
    finite = {model: q for model, q in quantiles.items() if all(math.isfinite(v) for v in q.values())}
    assert finite, quantiles
    for q in finite.values():
        assert 0 < q["0.5"] <= q["0.95"] <= q["0.99"], q


def test_provider_down_reaches_the_webhook(provider_down: dict[str, Any], e2e: E2E) -> None:
    labels = provider_down["labels"]
    assert labels["severity"] == "page"
    assert labels["endpoint"] == "mock" and labels["job"] == "tokenpulse-prober"
    annotations = provider_down["annotations"]
    assert annotations["summary"] == f"{OUTAGE_PROVIDER} is down for {labels['model']} on mock"
    assert annotations["runbook_url"] == f"{DEFAULT_RUNBOOK_BASE_URL}#tokenpulseproviderdown"
    paths = {n.path for n in e2e.sink.notifications for a in n.alerts()
             if a["labels"].get("alertname") == "TokenpulseProviderDown"
             and a["labels"].get("provider") == OUTAGE_PROVIDER}
    assert paths == {"/alerts/page"}


def test_every_dashboard_query_returns_series(e2e: E2E, provider_down: dict[str, Any]) -> None:
    """Every panel's PromQL parses and returns series (run while the outage alert fires, so the
    'Firing alerts' panel has something to show)."""
    checks: dict[str, Callable[[], bool]] = {}
    fed = subquery_fed(recording_rules())
    for name, board in dashboards().items():
        for panel, target in panel_targets(board):
            expr = substitute(target["expr"], board)
            # a panel on a subquery-fed record only parses and evaluates until its first point
            # (test_every_recording_rule_returns_series says why)
            check = evaluates(e2e.prometheus, expr) if references_any(expr, fed) else has_series(e2e.prometheus, expr)
            checks[f"{name} / {panel['title']} / {target['refId']}: {expr}"] = check
        for var, query in variable_queries(board):
            checks[f"{name} / variable {var}: {query}"] = label_values_check(e2e.prometheus, substitute(query, board))
    assert len(checks) > 90
    missing = wait_all(checks, time.monotonic() + 30)
    assert not missing, "queries without series:\n" + "\n".join(missing)


def label_values_check(base: str, query: str) -> Callable[[], bool]:
    """Grafana's label_values(selector, label) through Prometheus' label values API."""
    inner = query.removeprefix("label_values(").removesuffix(")")
    selector, _, label = inner.rpartition(",")
    url = f"{base}/api/v1/label/{label.strip()}/values?" + urllib.parse.urlencode({"match[]": selector.strip()})

    def check() -> bool:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bool(json.loads(response.read())["data"])
    return check


def test_provider_down_resolves_after_recovery(provider_down: dict[str, Any], e2e: E2E) -> None:
    model = provider_down["labels"]["model"]
    e2e.mock.set_outage(OUTAGE_PROVIDER, False)
    resolved = e2e.sink.wait_for(
        lambda note, alert: alert["labels"].get("alertname") == "TokenpulseProviderDown"
        and alert["labels"].get("provider") == OUTAGE_PROVIDER and alert["labels"].get("model") == model
        and alert["status"] == "resolved",
        ALERT_DEADLINE_S)
    assert resolved["endsAt"] >= resolved["startsAt"]
    up = prom_query(e2e.prometheus, f'tokenpulse_target_up{{job="tokenpulse-prober", provider="{OUTAGE_PROVIDER}", '
                                    f'model="{model}"}}')
    assert [float(s["value"][1]) for s in up] == [1.0]
