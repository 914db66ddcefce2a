"""The alert rules, from the config: who pages for what, and when.

One outage, one page: endpoint- and model-level down alerts fire no later than the per-provider ones
(their `for` is shorter, and their condition holds from the moment the first target of the endpoint is
confirmed down while every other target's latest probes fail), so Alertmanager's inhibitions
(alertmanager/alertmanager.yml) keep only the widest. `TokenpulseRecentOutage` (severity none, never
notified) stays active for the burn's short window after a target was down, so a burn caused by an outage
that already paged and resolved is inhibited too. Burn alerts need `slo.min_probes` eligible probes in
their long window; per-provider burns of third-party (`kind: openrouter`) endpoints are tickets unless
`slo.third_party_burns: page`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tokenpulse.config import Config
from tokenpulse.ops.rules.promql import number, regex_alternatives

PROBER = 'job="tokenpulse-prober"'
TARGET = "{{ $labels.endpoint }} / {{ $labels.model }} / {{ $labels.provider }}"
#: Short window of the slowest paging burn (6h/30m) plus its `for`: how long a recovered outage keeps
#: inhibiting the burn alerts it caused.
RECENT_OUTAGE_WINDOW = "45m"
Rule = dict[str, Any]


@dataclass(frozen=True)
class Burn:
    """One multiwindow, multi-burn-rate tier (Google SRE workbook, "Alerting on SLOs")."""

    name: str
    factor: float
    long: str
    short: str
    for_: str
    pages: bool  # pages on own endpoints; always a ticket when False
    meaning: str


AVAILABILITY_BURNS = (
    Burn("FastBurn", 14.4, "1h", "5m", "2m", True, "2 % of a 30-day budget in one hour"),
    Burn("SlowBurn", 6, "6h", "30m", "15m", True, "5 % of a 30-day budget in six hours"),
    Burn("DailyBurn", 3, "1d", "2h", "1h", False, "10 % of a 30-day budget in a day"),
    Burn(
        "SteadyBurn", 1, "3d", "6h", "3h", False, "the whole budget over 30 days, e.g. a provider at 97 % against 99 %"
    ),
)
TTFT_BURNS = AVAILABILITY_BURNS[:2]
_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    return int(duration[:-1]) * _SECONDS[duration[-1]]


def duration(total_s: float) -> str:
    minutes = max(1, math.ceil(total_s / 60))
    return f"{minutes}m"


def runbook(base: str, name: str) -> str:
    return f"{base}#{name.lower()}"


def alert(
    name: str,
    expr: str,
    for_: str | None,
    severity: str,
    summary: str,
    description: str,
    base: str,
    keep_firing_for: str | None = None,
    **labels: str,
) -> Rule:
    out: Rule = {"alert": name, "expr": expr}
    if for_:
        out["for"] = for_
    if keep_firing_for:
        out["keep_firing_for"] = keep_firing_for
    out["labels"] = {"severity": severity, **labels}
    out["annotations"] = {
        "summary": summary,
        "description": " ".join(description.split()),
        "runbook_url": runbook(base, name),
    }
    return out


def severity_splits(config: Config) -> list[tuple[str, bool]]:
    """(endpoint matcher, third party?) per severity class of the burn alerts: one rule per class."""
    third = sorted(e.name for e in config.endpoints if e.kind == "openrouter")
    own = sorted(e.name for e in config.endpoints if e.kind != "openrouter")
    if not third or not own:
        return [("", bool(third))]
    return [(f"endpoint=~{regex_alternatives(third)}", True), (f"endpoint=~{regex_alternatives(own)}", False)]


def provider_down_for(config: Config) -> str:
    """The per-provider down alert waits until the endpoint-level one (for: 1m) has certainly fired: the
    endpoint condition holds once every target's latest probe failed, at most one (longest) interval plus
    jitter after the outage began, while the first target needs `failures_before_down - 1` (shortest)
    intervals to be confirmed."""
    targets = list(config.targets())
    intervals = [t.interval_s + t.jitter_s for t in targets] or [config.probe.interval_s + config.probe.jitter_s]
    shortest = min(t.interval_s for t in targets) if targets else config.probe.interval_s
    gap = max(0.0, max(intervals) - (config.probe.confirm.failures_before_down - 1) * shortest)
    return duration(max(120.0, 60.0 + gap))


def recovery_time(config: Config) -> str:
    """How long the endpoint- and model-level alerts keep firing after their condition ends: the first
    target that answers again ends it, while the others stay confirmed down until `successes_before_up`
    successes each. Were the wide alert to resolve then, its inhibition would lift and the providers
    still down would page after the endpoint answers again."""
    targets = list(config.targets())
    longest = max(
        (t.interval_s + t.jitter_s for t in targets), default=config.probe.interval_s + config.probe.jitter_s
    )
    return duration(max(120.0, (config.probe.confirm.successes_before_up + 2) * longest))


def down_rules(config: Config, base: str) -> list[Rule]:
    failing = f"tokenpulse_consecutive_failures{{{PROBER}}}"
    up = f"tokenpulse_target_up{{{PROBER}}}"

    def level(by: str) -> str:
        return f"min by ({by}) ({failing}) >= 1\nand on ({by})\nmin by ({by}) ({up}) == 0"

    return [
        alert(
            "TokenpulseEndpointDown",
            level("job, endpoint"),
            "1m",
            "page",
            "Every target of {{ $labels.endpoint }} is failing",
            """Every target of endpoint {{ $labels.endpoint }} failed its latest probes provider-side and at least
              one is confirmed down: the endpoint itself (or the network to it) is down, not one provider. The
              model- and provider-level down alerts and the burn-rate alerts of this endpoint are inhibited.""",
            base,
            keep_firing_for=recovery_time(config),
        ),
        alert(
            "TokenpulseModelDown",
            level("job, endpoint, model"),
            "1m",
            "page",
            "Every provider of {{ $labels.model }} on {{ $labels.endpoint }} is failing",
            """Every provider of {{ $labels.model }} on {{ $labels.endpoint }} failed its latest probes
              provider-side and at least one is confirmed down. Its provider-level down alerts are inhibited.""",
            base,
            keep_firing_for=recovery_time(config),
        ),
        alert(
            "TokenpulseProviderDown",
            f"{up} == 0",
            provider_down_for(config),
            "page",
            "{{ $labels.provider }} is down for {{ $labels.model }} on {{ $labels.endpoint }}",
            f"""The prober confirmed {TARGET} down after consecutive provider-side failures. Its SLO burn-rate
              alerts are inhibited while this alert fires and for {RECENT_OUTAGE_WINDOW} after.""",
            base,
        ),
        alert(
            "TokenpulseRecentOutage",
            f"min_over_time({up}[{RECENT_OUTAGE_WINDOW}]) == 0",
            None,
            "none",
            "{{ $labels.provider }} was down in the last " + RECENT_OUTAGE_WINDOW,
            f"""{TARGET} was confirmed down within the last {RECENT_OUTAGE_WINDOW}. Never notified: it inhibits
              the burn-rate alerts the outage caused, which would otherwise page after the down alert resolved.""",
            base,
        ),
    ]


def burn_rules(config: Config, sli: str, base: str) -> list[Rule]:
    slo = config.slo
    rules = []
    tiers = AVAILABILITY_BURNS if sli == "availability" else TTFT_BURNS
    prefix = "Availability" if sli == "availability" else "TTFT"
    recorded = "availability" if sli == "availability" else "ttft_slo"
    events = "requests_eligible" if sli == "availability" else "ttft_slo_events"
    what = "fails provider-side" if sli == "availability" else "misses its time-to-first-token threshold"
    for tier in tiers:
        for endpoint_matcher, third_party in severity_splits(config):
            sel = ", ".join(m for m in (PROBER, endpoint_matcher) if m)
            expr = (
                f"job_target:tokenpulse_{recorded}:burnrate{tier.long}{{{sel}}} > {number(tier.factor)}\n"
                f"and\njob_target:tokenpulse_{recorded}:burnrate{tier.short}{{{sel}}} > {number(tier.factor)}\n"
                f"and\njob_target:tokenpulse_{events}:rate{tier.long}{{{sel}}} * {seconds(tier.long)} "
                f">= {slo.min_probes}"
            )
            pages = tier.pages and not (third_party and slo.third_party_burns == "ticket")
            rules.append(
                alert(
                    f"Tokenpulse{prefix}{tier.name}",
                    expr,
                    tier.for_,
                    "page" if pages else "ticket",
                    f"{{{{ $labels.provider }}}} burns the {prefix} budget of {{{{ $labels.model }}}} "
                    f"({number(tier.factor)}x over {tier.long})",
                    f"""{TARGET} {what} at {{{{ printf "%.1f" $value }}}}x the rate its objective allows, over the
                last {tier.long} and the last {tier.short}, with at least {slo.min_probes} probes in the
                {tier.long} window. At {number(tier.factor)}x: {tier.meaning}.""",
                    base,
                    slo=sli,
                )
            )
    return rules


def blind_rules(base: str) -> list[Rule]:
    blind = "tokenpulse_target_blind{%s, reason=~%s} == 1"
    count = "count by (job, endpoint, reason) (%s)"
    return [
        alert(
            "TokenpulseEndpointBlind",
            count % (blind % (PROBER, '"key_rejected|no_credits"')),
            "1m",
            "page",
            "The prober is blind on {{ $labels.endpoint }} ({{ $labels.reason }})",
            """{{ $value }} target(s) of {{ $labels.endpoint }} get only caller-side answers
              ({{ $labels.reason }}: 401/403 key rejected, or 402 no credits): nothing is being measured there,
              while availability (which leaves caller-side errors out) still looks fine.""",
            base,
        ),
        alert(
            "TokenpulseEndpointRateLimited",
            count % (blind % (PROBER, '"rate_limited"')),
            "15m",
            "ticket",
            "Probes of {{ $labels.endpoint }} are rate limited",
            """{{ $value }} target(s) of {{ $labels.endpoint }} have been answered only with 429 for 15 minutes:
              the probe rate exceeds the key's limits, and those targets are not measured.""",
            base,
        ),
        alert(
            "TokenpulseTargetNoSuccess",
            count % (blind % (PROBER, '"no_success"')),
            "15m",
            "ticket",
            "Targets of {{ $labels.endpoint }} have had no successful probe for a long time",
            """{{ $value }} target(s) of {{ $labels.endpoint }} have had no successful probe for the configured
              number of intervals, without being confirmed down.""",
            base,
        ),
    ]


def prober_rules(base: str) -> list[Rule]:
    return [
        alert(
            "TokenpulseProberAbsent",
            'up{job="tokenpulse-prober"} == 0 or absent(up{job="tokenpulse-prober"})',
            "2m",
            "page",
            "The tokenpulse prober is not being scraped",
            """Prometheus has no successful scrape of job tokenpulse-prober{{ with $labels.instance }}
              (instance {{ . }}){{ end }} for 2 minutes. Every provider alert is blind until it is back.""",
            base,
        ),
        alert(
            "TokenpulseProberStale",
            f"time() - tokenpulse_last_probe_timestamp_seconds{{{PROBER}}}\n"
            f"  > 3 * tokenpulse_probe_interval_seconds{{{PROBER}}}",
            "1m",
            "page",
            "Probes of {{ $labels.provider }} ({{ $labels.model }}) are stale",
            f"""The last finished probe of {TARGET} is {{{{ $value | humanizeDuration }}}} old, more than three
              probe intervals. Its availability and latency figures are not being refreshed.""",
            base,
        ),
        alert(
            "TokenpulseProberErrors",
            f"sum by (job, instance) (increase(tokenpulse_prober_errors_total{{{PROBER}}}[15m])) > 0",
            "5m",
            "ticket",
            "The prober hit unexpected errors of its own",
            """The prober {{ $labels.instance }} counted {{ printf "%.0f" $value }} unexpected exceptions in
              probes over 15 minutes (its own bugs, not the providers': they are kept out of availability).""",
            base,
        ),
        alert(
            "TokenpulseDiscoveryFailing",
            f"tokenpulse_discovery_success{{{PROBER}}} == 0",
            "30m",
            "ticket",
            "Provider discovery of {{ $labels.model }} on {{ $labels.endpoint }} fails",
            """The endpoints listing of {{ $labels.model }} on {{ $labels.endpoint }} could not be read for 30
              minutes: providers added or removed since are not followed.""",
            base,
        ),
    ]


def credits_rules(config: Config, base: str) -> list[Rule]:
    days = number(config.slo.credits_days_left)
    spend_per_day = f"(delta(tokenpulse_openrouter_credits_usage_usd{{{PROBER}}}[6h]) * 4)"
    return [
        alert(
            "TokenpulseOpenRouterCreditsLow",
            f"tokenpulse_openrouter_credits_remaining_usd{{{PROBER}}} < 5",
            "5m",
            "ticket",
            "OpenRouter credit is low on {{ $labels.endpoint }}",
            """The OpenRouter key of endpoint {{ $labels.endpoint }} has {{ printf "%.2f" $value }} USD of credit
              left (alert below 5 USD). When it reaches zero every probe fails with HTTP 402.""",
            base,
        ),
        alert(
            "TokenpulseOpenRouterCreditsRunningOut",
            f"tokenpulse_openrouter_credits_remaining_usd{{{PROBER}}}\n  / {spend_per_day}\n< {days}\n"
            f"and {spend_per_day} > 0",
            "30m",
            "ticket",
            'OpenRouter credit of {{ $labels.endpoint }} runs out in {{ printf "%.1f" $value }} days',
            f"""At the spend rate of the last 6 hours the OpenRouter key of endpoint {{{{ $labels.endpoint }}}} has
              {{{{ printf "%.1f" $value }}}} days of credit left (alert below {days}). Then every probe fails with
              HTTP 402 and TokenpulseEndpointBlind pages.""",
            base,
        ),
        alert(
            "TokenpulseOpenRouterCreditsUnknown",
            f"tokenpulse_openrouter_credits_read_success{{{PROBER}}} == 0",
            "30m",
            "ticket",
            "OpenRouter credit of {{ $labels.endpoint }} cannot be read",
            """GET /api/v1/key of endpoint {{ $labels.endpoint }} has failed for 30 minutes: the credit gauges
              are absent, so the credit alerts cannot fire.""",
            base,
        ),
    ]


def watcher_rules(base: str) -> list[Rule]:
    return [
        alert(
            "TokenpulseWatchdog",
            "vector(1)",
            None,
            "none",
            "The alerting pipeline is alive",
            """Always firing. Alertmanager sends it to the watchdog receiver every minute; an external dead man's
              switch (healthchecks.io, PagerDuty's heartbeat, Opsgenie heartbeat) pages when it stops, i.e. when
              Prometheus, Alertmanager or the path between them is down.""",
            base,
        ),
        alert(
            "TokenpulseRuleEvaluationFailures",
            "sum by (job, instance, rule_group) (increase(prometheus_rule_evaluation_failures_total[10m])) > 0",
            "5m",
            "page",
            "Prometheus fails to evaluate rule group {{ $labels.rule_group }}",
            """{{ printf "%.0f" $value }} evaluations of {{ $labels.rule_group }} failed in 10 minutes on
              {{ $labels.instance }}: the alerts of that group may not fire.""",
            base,
        ),
        alert(
            "TokenpulseRuleGroupSlow",
            "prometheus_rule_group_last_duration_seconds > prometheus_rule_group_interval_seconds",
            "15m",
            "ticket",
            "Rule group {{ $labels.rule_group }} takes longer than its interval",
            """The last evaluation of {{ $labels.rule_group }} took {{ $value | humanizeDuration }}, more than its
              interval: evaluations are skipped and alerts come late.""",
            base,
        ),
        alert(
            "TokenpulseAlertmanagerNotificationsFailing",
            "sum by (job, instance, integration) "
            '(rate(alertmanager_notifications_failed_total{job="alertmanager"}[5m])) > 0',
            "5m",
            "page",
            "Alertmanager fails to send {{ $labels.integration }} notifications",
            """Alertmanager {{ $labels.instance }} failed to deliver notifications through
              {{ $labels.integration }} for 5 minutes: pages may not reach anyone (this one goes out through
              the other receivers; the watchdog covers a total loss).""",
            base,
        ),
    ]


def alert_groups(config: Config, base: str) -> list[dict[str, Any]]:
    return [
        {"name": "tokenpulse-providers", "rules": down_rules(config, base)},
        {"name": "tokenpulse-slo-availability", "rules": burn_rules(config, "availability", base)},
        {"name": "tokenpulse-slo-ttft", "rules": burn_rules(config, "ttft", base)},
        {"name": "tokenpulse-blind", "rules": blind_rules(base)},
        {"name": "tokenpulse-prober", "rules": prober_rules(base)},
        {"name": "tokenpulse-openrouter", "rules": credits_rules(config, base)},
        {"name": "tokenpulse-watchers", "rules": watcher_rules(base)},
    ]
