"""alertmanager/alertmanager.yml: amtool's checks, the routing tree, and the inhibition rules on a real
Alertmanager (alerts posted to its API, notifications received by a local webhook sink)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from stack_helpers import ROOT

from tokenpulse.ops.stack import (
    Service,
    Stack,
    WebhookSink,
    alertmanager_argv,
    alertmanager_config,
    free_port,
    write_yaml,
)

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"


def amtool_run(amtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60)


def test_amtool_check_config(amtool: str) -> None:
    result = amtool_run(amtool, "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    (["severity=page", "alertname=TokenpulseProviderDown"], "tokenpulse-page"),
    (["severity=page", "alertname=TokenpulseProberAbsent"], "tokenpulse-page"),
    (["severity=ticket", "alertname=TokenpulseOpenRouterCreditsLow"], "tokenpulse-ticket"),
    (["alertname=SomethingElse"], "tokenpulse-ticket"),
    (["severity=none", "alertname=TokenpulseWatchdog"], "tokenpulse-watchdog"),
    (["severity=none", "alertname=TokenpulseRecentOutage"], "tokenpulse-null"),
    (["severity=page", "alertname=TokenpulseEndpointBlind"], "tokenpulse-page"),
])
def test_routing_by_severity(amtool: str, labels: list[str], receiver: str) -> None:
    result = amtool_run(amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_every_alert_severity_has_a_route() -> None:
    from stack_helpers import alert_rules
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    routed = {m.split("=")[1].strip().strip('"') for r in config["route"]["routes"] for m in r["matchers"]}
    assert {rule["labels"]["severity"] for rule in alert_rules()} <= routed
    # one outage, one page: the providers of one endpoint that fail together are one notification
    assert config["route"]["group_by"] == ["alertname", "endpoint"]
    null = next(r for r in config["receivers"] if r["name"] == "tokenpulse-null")
    assert set(null) == {"name"}, "severity none is never notified"


def test_generated_config_points_every_webhook_at_the_sink(tmp_path: Path, amtool: str) -> None:
    config = alertmanager_config(ROOT, "http://127.0.0.1:1234", group_wait="1s", group_interval="2s")
    urls = [hook["url"] for r in config["receivers"] for hook in r.get("webhook_configs", [])]
    assert urls == ["http://127.0.0.1:1234/alerts/page", "http://127.0.0.1:1234/alerts/ticket",
                    "http://127.0.0.1:1234/alerts/watchdog"]
    assert config["route"]["group_wait"] == "1s"
    assert all(r.get("group_wait", "1s") == "1s" for r in config["route"]["routes"])
    path = write_yaml(tmp_path / "am.yml", config)
    result = amtool_run(amtool, "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------- a real Alertmanager
@pytest.fixture(scope="module")
def alertmanager(alertmanager_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WebhookSink]]:
    run = tmp_path_factory.mktemp("alertmanager")
    sink = WebhookSink().start()
    port = free_port()
    config = write_yaml(run / "alertmanager.yml", alertmanager_config(
        ROOT, sink.url, group_wait="1s", group_interval="1s", repeat_interval="1h"))
    stack = Stack(run)
    try:
        stack.start(Service("alertmanager",
                            alertmanager_argv(alertmanager_bin, config, run / "data", f"127.0.0.1:{port}"),
                            ready_url=f"http://127.0.0.1:{port}/-/ready", url=""))
        yield f"http://127.0.0.1:{port}", sink
    finally:
        stack.stop()
        sink.stop()


def post_alerts(base: str, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC)
    body = [{"labels": labels, "annotations": {"summary": labels["alertname"]},
             "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()} for labels in alerts]
    request = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def current_alerts(base: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as response:
        return json.loads(response.read())


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)


def key(alert: dict) -> tuple[str, str, str]:
    labels = alert["labels"]
    return labels["alertname"], labels.get("provider", ""), labels.get("model", "")


def target(provider: str, **extra: str) -> dict[str, str]:
    return {"job": "tokenpulse-prober", "endpoint": "openrouter", "model": "m", "provider": provider, **extra}


def test_provider_down_inhibits_that_providers_burn_rate_alerts_only(alertmanager: tuple[str, WebhookSink]) -> None:
    base, sink = alertmanager
    # The source alert first: Alertmanager's inhibitor learns of alerts asynchronously.
    post_alerts(base, [target("glitchgrid", alertname="TokenpulseProviderDown", severity="page")])
    wait_until(lambda: any(a["labels"]["alertname"] == "TokenpulseProviderDown" for a in current_alerts(base)))
    post_alerts(base, [
        target("glitchgrid", alertname="TokenpulseAvailabilityFastBurn", severity="page", slo="availability"),
        target("glitchgrid", alertname="TokenpulseTTFTSlowBurn", severity="page", slo="ttft"),
        target("steadystack", alertname="TokenpulseAvailabilityFastBurn", severity="page", slo="availability"),
        # same provider, other model: not inhibited
        {**target("glitchgrid", alertname="TokenpulseAvailabilityFastBurn", severity="page", slo="availability"),
         "model": "other"},
    ])

    def states() -> dict[tuple[str, str, str], bool]:
        return {key(a): bool(a["status"]["inhibitedBy"]) for a in current_alerts(base) if "provider" in a["labels"]}

    expected = {
        ("TokenpulseProviderDown", "glitchgrid", "m"): False,
        ("TokenpulseAvailabilityFastBurn", "glitchgrid", "m"): True,
        ("TokenpulseTTFTSlowBurn", "glitchgrid", "m"): True,
        ("TokenpulseAvailabilityFastBurn", "steadystack", "m"): False,
        ("TokenpulseAvailabilityFastBurn", "glitchgrid", "other"): False,
    }
    wait_until(lambda: states() == expected)
    assert states() == expected

    # Notifications: the page receiver gets the outage and the uninhibited burns, grouped per target.
    sink.wait_for(lambda n, a: n.path == "/alerts/page" and a["labels"]["alertname"] == "TokenpulseProviderDown", 20)
    sink.wait_for(lambda n, a: a["labels"].get("provider") == "steadystack", 20)
    sink.wait_for(lambda n, a: a["labels"].get("model") == "other", 20)
    time.sleep(2)  # a few group intervals: an inhibited alert would have arrived by now
    delivered = {key(a) for n in sink.notifications for a in n.alerts()}
    assert ("TokenpulseAvailabilityFastBurn", "glitchgrid", "m") not in delivered
    assert ("TokenpulseTTFTSlowBurn", "glitchgrid", "m") not in delivered
    for note in sink.notifications:
        groups = {(a["labels"]["alertname"], a["labels"].get("endpoint")) for a in note.alerts()}
        assert len(groups) == 1, "one group per alertname and endpoint"


def test_ticket_alerts_go_to_the_ticket_receiver(alertmanager: tuple[str, WebhookSink]) -> None:
    base, sink = alertmanager
    post_alerts(base, [{"alertname": "TokenpulseOpenRouterCreditsLow", "severity": "ticket",
                        "job": "tokenpulse-prober", "endpoint": "openrouter"}])
    note_alert = sink.wait_for(lambda n, a: a["labels"]["alertname"] == "TokenpulseOpenRouterCreditsLow", 20)
    assert note_alert["status"] == "firing"
    paths = {n.path for n in sink.notifications for a in n.alerts()
             if a["labels"]["alertname"] == "TokenpulseOpenRouterCreditsLow"}
    assert paths == {"/alerts/ticket"}


def test_an_endpoint_outage_is_one_page(alertmanager: tuple[str, WebhookSink]) -> None:
    """Five providers of two models down at once, with their burns and the endpoint- and model-level
    alerts: the only notification is the endpoint's; a recent outage inhibits burns and is never sent."""
    base, sink = alertmanager
    endpoint = {"job": "tokenpulse-prober", "endpoint": "storm"}
    post_alerts(base, [{**endpoint, "alertname": "TokenpulseEndpointDown", "severity": "page"},
                       {**endpoint, "endpoint": "after", "model": "m", "provider": "p1",
                        "alertname": "TokenpulseRecentOutage", "severity": "none"}])
    wait_until(lambda: sum(a["labels"]["alertname"] in ("TokenpulseEndpointDown", "TokenpulseRecentOutage")
                           for a in current_alerts(base)) >= 2)
    storm = [{**endpoint, "alertname": "TokenpulseModelDown", "severity": "page", "model": m} for m in ("m", "n")]
    for i in range(1, 6):
        target = {**endpoint, "model": "m" if i <= 3 else "n", "provider": f"p{i}"}
        storm += [{**target, "alertname": "TokenpulseProviderDown", "severity": "page"},
                  {**target, "alertname": "TokenpulseAvailabilityFastBurn", "severity": "page", "slo": "availability"}]
    # after recovery: the burn the outage caused, covered by TokenpulseRecentOutage
    storm.append({**endpoint, "endpoint": "after", "model": "m", "provider": "p1",
                  "alertname": "TokenpulseAvailabilityFastBurn", "severity": "page", "slo": "availability"})
    post_alerts(base, storm)

    def inhibited() -> dict[str, bool]:
        return {f"{a['labels']['endpoint']}/{a['labels']['alertname']}/{a['labels'].get('model')}/"
                f"{a['labels'].get('provider')}": bool(a["status"]["inhibitedBy"])
                for a in current_alerts(base) if a["labels"].get("endpoint") in ("storm", "after")}

    wait_until(lambda: sum(inhibited().values()) == 13)
    states = inhibited()
    assert sorted(k for k, v in states.items() if not v) == ["after/TokenpulseRecentOutage/m/p1",
                                                             "storm/TokenpulseEndpointDown/None/None"], states
    sink.wait_for(lambda n, a: a["labels"]["alertname"] == "TokenpulseEndpointDown", 20)
    time.sleep(3)  # several group intervals: anything not inhibited would have been sent
    sent = [(n.path, a["labels"]["alertname"]) for n in sink.notifications for a in n.alerts()
            if a["labels"].get("endpoint") in ("storm", "after")]
    assert sent == [("/alerts/page", "TokenpulseEndpointDown")], sent
