"""promtool unit tests of the generated rules, with the config's own objectives, endpoints and intervals:
each objective cell's TTFT threshold and availability objective, sparse probing (the minimum number of
probes), blindness, an endpoint-wide outage (storm), the state after recovery, and the watchers.

Expected annotations are rendered here from the rules' own templates (`render`), for the small template
subset the rules use, so a test compares what Prometheus renders with what the rule says."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tokenpulse.config import Config
from tokenpulse.metrics import LATENCY_BUCKETS
from tokenpulse.ops.rules.alerts import alert_groups, severity_splits
from tokenpulse.ops.rules.promql import Cell, cells, go_float

JOB = {"job": "tokenpulse-prober", "instance": "prober:9464"}
TEST_MODEL = "tokenpulse-test-model"
TEST_PROVIDER = "tokenpulse-test-provider"
Case = dict[str, Any]


def series(name: str, labels: Mapping[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def render(template: str, labels: Mapping[str, str], value: float | None = None) -> str:
    """The rules' template subset: $labels.X, $value, printf "%.Nf" $value, humanizeDuration, with/end."""

    def with_block(m: re.Match[str]) -> str:
        inner = labels.get(m.group(1), "")
        return m.group(2).replace("{{ . }}", inner) if inner else ""

    text = re.sub(r"\{\{ with \$labels\.(\w+) \}\}(.*?)\{\{ end \}\}", with_block, template)
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)
    text = re.sub(r'\{\{ printf "%\.(\d)f" \$value \}\}', lambda m: f"{value:.{int(m.group(1))}f}", text)
    if value is not None:
        text = text.replace("{{ $value | humanizeDuration }}", humanize_duration(value))
    text = text.replace("{{ $value }}", f"{value:g}" if value is not None else "")
    assert "{{" not in text, f"template not rendered: {text}"
    return text


def humanize_duration(seconds: float) -> str:
    """Prometheus' humanizeDuration for whole seconds of at least one (6m 0s, 1h 2m 3s)."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


class Expect:
    """Expected alerts, rendered from the generated rules."""

    def __init__(self, config: Config, base: str) -> None:
        self.rules = {r["alert"]: r for g in alert_groups(config, base) for r in g["rules"]}
        self.variants: dict[str, list[dict[str, Any]]] = {}
        for g in alert_groups(config, base):
            for r in g["rules"]:
                self.variants.setdefault(r["alert"], []).append(r)

    def alert(
        self, name: str, labels: Mapping[str, str], value: float | None = None, severity: str | None = None
    ) -> dict[str, Any]:
        rule = self.rules[name]
        if severity is None:
            severity = rule["labels"]["severity"]
        rule_labels = {**rule["labels"], "severity": severity}
        all_labels = {**labels, **rule_labels}
        return {
            "exp_labels": all_labels,
            "exp_annotations": {k: render(v, all_labels, value) for k, v in rule["annotations"].items()},
        }


def probe_target(config: Config) -> dict[str, str]:
    """Labels of a target on the config's first endpoint that no override matches."""
    return {"endpoint": config.endpoints[0].name, "model": TEST_MODEL, "provider": TEST_PROVIDER}


def cell_target(config: Config, cell: Cell) -> dict[str, str]:
    labels = probe_target(config)
    for matcher in cell.matchers:
        m = re.match(r'(model|provider)="(.*)"$', matcher)
        if m:
            labels[m.group(1)] = m.group(2).encode().decode("unicode_escape")
    return labels


def burn_severity(config: Config, endpoint: str, tier_pages: bool = True) -> str:
    kinds = {e.name: e.kind for e in config.endpoints}
    third = kinds.get(endpoint) == "openrouter"
    if not any(third == t for _, t in severity_splits(config)):
        third = severity_splits(config)[0][1]
    pages = tier_pages and not (third and config.slo.third_party_burns == "ticket")
    return "page" if pages else "ticket"


def ttft_cases(config: Config, x: Expect) -> list[Case]:
    """Per objective cell: observations at the threshold are good, one bucket above are bad."""
    thresholds = sorted({c.value for c in cells(config.slo, "ttft_s")})
    above = {t: next(b for b in LATENCY_BUCKETS if b > t) for t in thresholds}
    bounds = sorted({*thresholds, *above.values()})
    cases = []
    share_cells = cells(config.slo, "ttft_share")
    for cell in cells(config.slo, "ttft_s"):
        good = {**JOB, **cell_target(config, cell)}
        bad = (
            {**good, "provider": good["provider"] + "-slow"}
            if not any(m.startswith("provider=") for m in cell.matchers)
            else {**good, "model": good["model"] + "-slow"}
        )
        inputs = []
        for labels, at in ((good, cell.value), (bad, above[cell.value])):
            for bound in [*bounds, float("inf")]:
                le = "+Inf" if bound == float("inf") else go_float(bound)
                per_min = 60 if at <= bound else 0
                inputs.append(series("tokenpulse_ttft_seconds_bucket", {**labels, "le": le}, f"0+{per_min}x90"))
            inputs.append(series("tokenpulse_ttft_seconds_count", labels, "0+60x90"))
        share = _value_for(share_cells, bad)
        burn = 1 / (1 - share)
        short = {k: v for k, v in bad.items() if k != "instance"}
        checks = [
            {
                "expr": f"job_target:tokenpulse_ttft_slo_error:ratio_rate5m{_sel(good)}",
                "eval_time": "70m",
                "exp_samples": [
                    {"labels": _labels("job_target:tokenpulse_ttft_slo_error:ratio_rate5m", good), "value": 0}
                ],
            },
            {
                "expr": f"job_target:tokenpulse_ttft_slo_error:ratio_rate5m{_sel(bad)}",
                "eval_time": "70m",
                "exp_samples": [
                    {"labels": _labels("job_target:tokenpulse_ttft_slo_error:ratio_rate5m", bad), "value": 1}
                ],
            },
            {
                "expr": f"round(job_target:tokenpulse_ttft_slo:burnrate1h{_sel(bad)}, 0.001)",
                "eval_time": "70m",
                "exp_samples": [{"labels": _labels("", bad), "value": round(burn, 3)}],
            },
        ]
        fires = burn > 14.4
        alerts = [
            {
                "eval_time": "70m",
                "alertname": "TokenpulseTTFTFastBurn",
                "exp_alerts": [x.alert("TokenpulseTTFTFastBurn", short, burn, burn_severity(config, bad["endpoint"]))]
                if fires
                else [],
            }
        ]
        cases.append(
            {
                "name": f"TTFT objective of {cell.source}: {cell.value:g} s is good, {above[cell.value]:g} s is not",
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": checks,
                "alert_rule_test": alerts,
            }
        )
    return cases


def _value_for(field_cells: Iterable[Cell], labels: Mapping[str, str]) -> float:
    for cell in field_cells:
        if all(_matches(m, labels) for m in cell.matchers):
            return cell.value
    raise AssertionError(labels)


def _matches(matcher: str, labels: Mapping[str, str]) -> bool:
    m = re.match(r'(\w+)(=|!~)"(.*)"$', matcher)
    assert m, matcher
    name, op, value = m.groups()
    value = value.encode().decode("unicode_escape")
    if op == "=":
        return labels.get(name) == value
    return re.fullmatch(value, labels.get(name, "")) is None


def _sel(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "instance") + "}"


def _labels(name: str, labels: Mapping[str, str]) -> str:
    return name + _sel(labels)


def availability_cases(config: Config, x: Expect) -> list[Case]:
    """Per objective cell: a target failing at 20x its budget (capped at every probe) burns at that rate,
    and the fast-burn alert fires with the severity of its endpoint."""
    cases = []
    for cell in cells(config.slo, "availability"):
        labels = {**JOB, **cell_target(config, cell)}
        budget = 1 - cell.value
        failed = min(1000, round(20 * budget * 1000))
        burn = failed / 1000 / budget
        inputs = [
            series(
                "tokenpulse_requests_total", {**labels, "outcome": "ok", "error_class": "none"}, f"0+{1000 - failed}x90"
            ),
            series(
                "tokenpulse_requests_total",
                {**labels, "outcome": "error", "error_class": "server_error"},
                f"0+{failed}x90",
            ),
            series(
                "tokenpulse_requests_total", {**labels, "outcome": "error", "error_class": "client_error"}, "0+500x90"
            ),
        ]
        short = {k: v for k, v in labels.items() if k != "instance"}
        cases.append(
            {
                "name": f"availability objective of {cell.source}: {cell.value:g}",
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {
                        "expr": f"round(job_target:tokenpulse_availability:burnrate5m{_sel(labels)}, 0.001)",
                        "eval_time": "70m",
                        "exp_samples": [{"labels": _labels("", labels), "value": round(burn, 3)}],
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "70m",
                        "alertname": "TokenpulseAvailabilityFastBurn",
                        "exp_alerts": [
                            x.alert(
                                "TokenpulseAvailabilityFastBurn", short, burn, burn_severity(config, labels["endpoint"])
                            )
                        ]
                        if burn > 14.4
                        else [],
                    }
                ],
            }
        )
    return cases


def sparse_case(config: Config) -> Case:
    """Probes so sparse that an hour holds fewer than `min_probes`: two failures in the hour burn far
    above 14.4x, but the fast burn stays quiet."""
    min_probes = config.slo.min_probes
    every = max(2, 3600 // 60 // max(1, min_probes // 2))  # minutes between probes: min_probes/2 an hour
    labels = {**JOB, **probe_target(config)}
    ok, bad, oks, bads = 0, 0, [], []
    for minute in range(0, 91):
        if minute % every == 0 and minute:
            if minute >= 90 - 2 * every:
                bad += 1
            else:
                ok += 1
        oks.append(str(ok))
        bads.append(str(bad))
    inputs = [
        series("tokenpulse_requests_total", {**labels, "outcome": "ok", "error_class": "none"}, " ".join(oks)),
        series(
            "tokenpulse_requests_total", {**labels, "outcome": "error", "error_class": "server_error"}, " ".join(bads)
        ),
    ]
    return {
        "name": f"sparse probing: a probe every {every} min, fewer than {min_probes} in an hour, never pages",
        "interval": "1m",
        "input_series": inputs,
        "promql_expr_test": [
            {
                "expr": f"job_target:tokenpulse_availability:burnrate1h{_sel(labels)} > bool 14.4",
                "eval_time": "90m",
                "exp_samples": [{"labels": _labels("", labels), "value": 1}],
            },
            {
                "expr": f"job_target:tokenpulse_requests_eligible:rate1h{_sel(labels)} * 3600 < bool {min_probes}",
                "eval_time": "90m",
                "exp_samples": [{"labels": _labels("", labels), "value": 1}],
            },
        ],
        "alert_rule_test": [{"eval_time": "90m", "alertname": "TokenpulseAvailabilityFastBurn", "exp_alerts": []}],
    }


def blind_case(config: Config, x: Expect) -> Case:
    """402 on every probe: the page fires within 5 minutes of the gauge going to 1, and keeps firing."""
    endpoint = config.endpoints[0].name
    labels = {**JOB, "endpoint": endpoint, "model": TEST_MODEL}
    inputs = [
        series("tokenpulse_target_blind", {**labels, "provider": p, "reason": "no_credits"}, "0x4 1x60")
        for p in ("a", "b")
    ]
    inputs += [
        series("tokenpulse_target_blind", {**labels, "provider": "c", "reason": "rate_limited"}, "0x4 1x60"),
        series("tokenpulse_target_blind", {**labels, "provider": "d", "reason": "no_success"}, "0x4 1x60"),
    ]
    no_success = x.alert(
        "TokenpulseTargetNoSuccess", {"job": JOB["job"], "endpoint": endpoint, "reason": "no_success"}, 1
    )
    fired = x.alert("TokenpulseEndpointBlind", {"job": JOB["job"], "endpoint": endpoint, "reason": "no_credits"}, 2)
    limited = x.alert(
        "TokenpulseEndpointRateLimited", {"job": JOB["job"], "endpoint": endpoint, "reason": "rate_limited"}, 1
    )
    return {
        "name": "a blind endpoint (402) pages within 5 minutes and keeps firing; sustained 429 is a ticket",
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "TokenpulseEndpointBlind", "exp_alerts": []},
            {"eval_time": "6m", "alertname": "TokenpulseEndpointBlind", "exp_alerts": [fired]},
            {"eval_time": "60m", "alertname": "TokenpulseEndpointBlind", "exp_alerts": [fired]},
            {"eval_time": "10m", "alertname": "TokenpulseEndpointRateLimited", "exp_alerts": []},
            {"eval_time": "30m", "alertname": "TokenpulseEndpointRateLimited", "exp_alerts": [limited]},
            {"eval_time": "10m", "alertname": "TokenpulseTargetNoSuccess", "exp_alerts": []},
            {"eval_time": "30m", "alertname": "TokenpulseTargetNoSuccess", "exp_alerts": [no_success]},
        ],
    }


def storm_case(config: Config, x: Expect) -> Case:
    """Every target of an endpoint fails: the endpoint- and model-level alerts fire before the per-provider
    ones (which Alertmanager then inhibits); a target that keeps answering keeps them quiet."""
    endpoint = config.endpoints[0].name
    providers = [f"p{i}" for i in range(1, 6)]
    inputs = []
    for p in providers:
        labels = {**JOB, "endpoint": endpoint, "model": TEST_MODEL, "provider": p}
        # failures start at 5m; each target is confirmed down one minute apart (spread probe phases)
        confirmed = 6 + providers.index(p) // 2
        inputs.append(series("tokenpulse_consecutive_failures", labels, "0x4 1+1x30"))
        inputs.append(series("tokenpulse_target_up", labels, f"1x{confirmed - 1} 0x{36 - confirmed}"))
    other = {**JOB, "endpoint": endpoint + "-other", "model": TEST_MODEL, "provider": "p1"}
    inputs += [
        series("tokenpulse_consecutive_failures", other, "0x4 1+1x30"),
        series("tokenpulse_target_up", {**other}, "1x5 0x30"),
        series("tokenpulse_consecutive_failures", {**other, "provider": "p2"}, "0x35"),
        series("tokenpulse_target_up", {**other, "provider": "p2"}, "1x35"),
    ]
    end = {"job": JOB["job"], "endpoint": endpoint}
    model = {**end, "model": TEST_MODEL}
    return {
        "name": "an endpoint-wide outage fires the endpoint- and model-level alerts first",
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "TokenpulseEndpointDown", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "TokenpulseModelDown", "exp_alerts": []},
            {
                "eval_time": "7m",
                "alertname": "TokenpulseEndpointDown",
                "exp_alerts": [x.alert("TokenpulseEndpointDown", end, 3)],
            },
            {
                "eval_time": "7m",
                "alertname": "TokenpulseModelDown",
                "exp_alerts": [x.alert("TokenpulseModelDown", model, 3)],
            },
            {"eval_time": "7m", "alertname": "TokenpulseProviderDown", "exp_alerts": []},
        ],
    }


def recovery_case(config: Config, x: Expect) -> Case:
    """After a 5-minute outage resolves, the burn it caused still fires (its 5m window is still bad), and
    so does the never-notified RecentOutage that inhibits it; the down alert itself has resolved."""
    labels = {**JOB, **probe_target(config)}
    short = {k: v for k, v in labels.items() if k != "instance"}
    budget = 1 - _value_for(cells(config.slo, "availability"), labels)
    # at 67m the hour [7m, 67m] holds 3,000 failures and 3,180 successes (53 minutes of 60; promtool's
    # `a x n` is n + 1 samples, so the flat stretch lasts 6 minutes)
    burn = 3000 / (3000 + 53 * 60) / budget
    return {
        "name": "after recovery the outage's burn is covered by TokenpulseRecentOutage",
        "interval": "1m",
        "input_series": [
            series("tokenpulse_target_up", labels, "1x59 0x5 1x60"),
            series(
                "tokenpulse_requests_total",
                {**labels, "outcome": "ok", "error_class": "none"},
                "0+60x59 3540x5 3540+60x60",
            ),
            series(
                "tokenpulse_requests_total",
                {**labels, "outcome": "error", "error_class": "server_error"},
                "1000x59 1600+600x4 4000x60",
            ),
        ],
        "alert_rule_test": [
            {"eval_time": "67m", "alertname": "TokenpulseProviderDown", "exp_alerts": []},
            {
                "eval_time": "67m",
                "alertname": "TokenpulseRecentOutage",
                "exp_alerts": [x.alert("TokenpulseRecentOutage", labels, 0)],
            },
            {
                "eval_time": "67m",
                "alertname": "TokenpulseAvailabilityFastBurn",
                "exp_alerts": [
                    x.alert("TokenpulseAvailabilityFastBurn", short, burn, burn_severity(config, labels["endpoint"]))
                ],
            },
            {"eval_time": "115m", "alertname": "TokenpulseRecentOutage", "exp_alerts": []},
        ],
    }


def watcher_cases(config: Config, x: Expect) -> list[Case]:
    """The prober's own errors, discovery, credits, and the watchers of Prometheus and Alertmanager."""
    prom = {"job": "prometheus", "instance": "localhost:9090"}
    am = {"job": "alertmanager", "instance": "alertmanager:9093"}
    endpoint = config.endpoints[0].name
    target = {**JOB, **probe_target(config)}
    model = {**JOB, "endpoint": endpoint, "model": TEST_MODEL}
    key = {**JOB, "endpoint": endpoint}
    rich = {**JOB, "endpoint": endpoint + "-rich"}
    idle = {**JOB, "endpoint": endpoint + "-idle"}
    inputs = [
        series("prometheus_rule_evaluation_failures_total", {**prom, "rule_group": "broken"}, "0x10 1x30"),
        series("prometheus_rule_evaluation_failures_total", {**prom, "rule_group": "fine"}, "0x40"),
        series("prometheus_rule_group_last_duration_seconds", {**prom, "rule_group": "broken"}, "20x40"),
        series("prometheus_rule_group_interval_seconds", {**prom, "rule_group": "broken"}, "15x40"),
        series("prometheus_rule_group_last_duration_seconds", {**prom, "rule_group": "fine"}, "1x40"),
        series("prometheus_rule_group_interval_seconds", {**prom, "rule_group": "fine"}, "15x40"),
        series("alertmanager_notifications_failed_total", {**am, "integration": "webhook"}, "0x9 0+6x30"),
        series("alertmanager_notifications_failed_total", {**am, "integration": "email"}, "0x40"),
        series("tokenpulse_prober_errors_total", target, "0x10 3x30"),
        series("tokenpulse_discovery_success", model, "1x5 0x40"),
        series("tokenpulse_discovery_success", {**model, "model": TEST_MODEL + "-listed"}, "1x45"),
        series("tokenpulse_openrouter_credits_read_success", key, "1x5 0x40"),
        series("tokenpulse_openrouter_credits_read_success", rich, "1x45"),
    ]
    evaluation = x.alert("TokenpulseRuleEvaluationFailures", {**prom, "rule_group": "broken"}, 1)
    slow = x.alert("TokenpulseRuleGroupSlow", {**prom, "rule_group": "broken"}, 20)
    failing = x.alert("TokenpulseAlertmanagerNotificationsFailing", {**am, "integration": "webhook"}, 0.1)
    errors = x.alert("TokenpulseProberErrors", {"job": JOB["job"], "instance": JOB["instance"]}, 3)
    discovery = x.alert("TokenpulseDiscoveryFailing", model, 0)
    unknown = x.alert("TokenpulseOpenRouterCreditsUnknown", key, 0)
    watchdog = x.alert("TokenpulseWatchdog", {})
    credits = [
        # 0.01 USD a minute is 14.4 USD a day: 10 USD last 0.7 days, 1,000 USD 69 days; no spend, no alert
        series("tokenpulse_openrouter_credits_remaining_usd", key, "10x400"),
        series("tokenpulse_openrouter_credits_usage_usd", key, "0+0.01x400"),
        series("tokenpulse_openrouter_credits_remaining_usd", rich, "1000x400"),
        series("tokenpulse_openrouter_credits_usage_usd", rich, "0+0.01x400"),
        series("tokenpulse_openrouter_credits_remaining_usd", idle, "1x400"),
        series("tokenpulse_openrouter_credits_usage_usd", idle, "5x400"),
    ]
    running_out = x.alert("TokenpulseOpenRouterCreditsRunningOut", key, 10 / 14.4)
    return [
        {
            "name": "the watchers: rule failures, slow groups, failing notifications, prober errors, discovery, "
            "credit reads",
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "TokenpulseRuleEvaluationFailures", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "TokenpulseRuleEvaluationFailures", "exp_alerts": [evaluation]},
                {"eval_time": "10m", "alertname": "TokenpulseRuleGroupSlow", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "TokenpulseRuleGroupSlow", "exp_alerts": [slow]},
                {"eval_time": "5m", "alertname": "TokenpulseAlertmanagerNotificationsFailing", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "TokenpulseAlertmanagerNotificationsFailing",
                    "exp_alerts": [failing],
                },
                {"eval_time": "5m", "alertname": "TokenpulseProberErrors", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "TokenpulseProberErrors", "exp_alerts": [errors]},
                {"eval_time": "20m", "alertname": "TokenpulseDiscoveryFailing", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "TokenpulseDiscoveryFailing", "exp_alerts": [discovery]},
                {"eval_time": "20m", "alertname": "TokenpulseOpenRouterCreditsUnknown", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "TokenpulseOpenRouterCreditsUnknown", "exp_alerts": [unknown]},
                {"eval_time": "0m", "alertname": "TokenpulseWatchdog", "exp_alerts": [watchdog]},
                {"eval_time": "40m", "alertname": "TokenpulseWatchdog", "exp_alerts": [watchdog]},
            ],
        },
        {
            "name": "credits running out at the recent spend rate, not while spend is slow or nil",
            "interval": "1m",
            "input_series": credits,
            "alert_rule_test": [
                {
                    "eval_time": "400m",
                    "alertname": "TokenpulseOpenRouterCreditsRunningOut",
                    "exp_alerts": [running_out],
                },
                {"eval_time": "20m", "alertname": "TokenpulseOpenRouterCreditsRunningOut", "exp_alerts": []},
            ],
        },
    ]


def slow_tier_tests(config: Config, base: str) -> dict[str, Any]:
    """The ticket tiers over 1d and 3d (a separate file: three days of samples at a 2-minute step)."""
    x = Expect(config, base)
    labels = {**JOB, **probe_target(config)}
    budget = 1 - _value_for(cells(config.slo, "availability"), labels)
    inputs = []
    expected = {}
    # Two targets only: promtool evaluates with a limit of 10,000 samples per query, and the 3d window
    # is a subquery of 4,320 points per target.
    for provider, burn in (("at-2.8x", 2.8), ("at-5x", 5.0)):
        target = {**labels, "provider": provider}
        failed = round(burn * budget * 1000)
        inputs += [
            series(
                "tokenpulse_requests_total",
                {**target, "outcome": "ok", "error_class": "none"},
                f"0+{1000 - failed}x2300",
            ),
            series(
                "tokenpulse_requests_total",
                {**target, "outcome": "error", "error_class": "server_error"},
                f"0+{failed}x2300",
            ),
        ]
        expected[provider] = ({k: v for k, v in target.items() if k != "instance"}, failed / 1000 / budget)
    severity = burn_severity(config, labels["endpoint"], tier_pages=False)
    steady = [x.alert("TokenpulseAvailabilitySteadyBurn", lab, value, severity) for lab, value in expected.values()]
    daily_labels, daily_value = expected["at-5x"]
    daily = [x.alert("TokenpulseAvailabilityDailyBurn", daily_labels, daily_value, severity)]
    return {
        "rule_files": ["../rules/recording.yml", "../rules/alerts.yml"],
        "evaluation_interval": "2m",
        "tests": [
            {
                "name": "at 2.8x (97.2 % against 99 %) the 3-day ticket only; at 5x the daily one too",
                "interval": "2m",
                "input_series": inputs,
                "alert_rule_test": [
                    # the tiers wait for their `for` (1h, 3h) before raising a ticket
                    {"eval_time": "50m", "alertname": "TokenpulseAvailabilityDailyBurn", "exp_alerts": []},
                    {"eval_time": "2h", "alertname": "TokenpulseAvailabilitySteadyBurn", "exp_alerts": []},
                    {"eval_time": "76h", "alertname": "TokenpulseAvailabilitySteadyBurn", "exp_alerts": steady},
                    {"eval_time": "76h", "alertname": "TokenpulseAvailabilityDailyBurn", "exp_alerts": daily},
                ],
            }
        ],
    }


def generated_tests(config: Config, base: str) -> dict[str, Any]:
    x = Expect(config, base)
    return {
        "rule_files": ["../rules/recording.yml", "../rules/alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            *ttft_cases(config, x),
            *availability_cases(config, x),
            sparse_case(config),
            blind_case(config, x),
            storm_case(config, x),
            recovery_case(config, x),
            *watcher_cases(config, x),
        ],
    }
