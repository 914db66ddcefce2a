"""The recording rules: SLIs per target (`job_target` level: job, endpoint, model, provider), burn rates
against each target's own objective, latency percentiles and throughput.

Cost (docs/benchmarks.md): counter windows up to 1h read the raw counters, once per window; 2h to 3d average the
recorded 5m rates sampled every minute (a subquery: 1,440 points of one aggregated series per target for
a day, instead of 5,760 raw samples of each error-class series); 30d averages the recorded 1d rates. The
latency percentiles are one group per histogram and window, and their 1h bucket rates average the
recorded 5m ones (`latency`)."""

from __future__ import annotations

from typing import Any

from tokenpulse.config import SLO
from tokenpulse.core.outcomes import NOT_PROVIDER_CLASSES
from tokenpulse.ops.rules.promql import cells, go_float, number

BY = "sum by (job, endpoint, model, provider)"
#: tokenpulse/core/outcomes.py NOT_PROVIDER_CLASSES: excluded from availability (the caller-side classes, as
#: OpenRouter's uptime does, and wrong_provider: the router served the request elsewhere).
CALLER_SIDE = 'error_class!~"' + "|".join(sorted(c.value for c in NOT_PROVIDER_CLASSES)) + '"'
SHORT_WINDOWS = ("5m", "30m", "1h", "2h", "6h")
#: Windows of at least this many hours average the recorded per-target 5m rates (sampled each minute)
#: instead of reading every raw error-class series: 360 points of one aggregated series for 6h, not
#: 1,440 samples of each of 13 (docs/benchmarks.md). Shorter windows read the raw counters exactly.
FROM_RECORDED = ("2h", "6h")
LONG_WINDOWS = ("1d", "3d")
#: Windows with the all-requests rate, the per-class error rates and the availability ratio (dashboards).
PER_CLASS_WINDOWS = ("5m", "1h")
TTFT_WINDOWS = ("5m", "30m", "1h", "6h")
#: The evaluation interval of the groups only dashboards read (per-class rates, latency percentiles):
#: the prober probes a target every 30-60 s, so a 5m figure evaluated every 15 s repeats itself, and
#: these groups are most of the rules' work at 1,000 targets (docs/benchmarks.md). Groups that alerts
#: read keep the global 15 s.
DASHBOARD_INTERVAL = "30s"
Rule = dict[str, Any]


def rule(record: str, expr: str, **extra: Any) -> Rule:
    return {"record": record, "expr": expr, **extra}


def by_class_rate(w: str) -> str:
    """The recorded rate of one window per target, outcome and error class: the window's one raw read."""
    return f"job_target_outcome_class:tokenpulse_requests:rate{w}"


def bucket_rate(family: str, w: str) -> str:
    """The recorded bucket rates per target and `le` of one histogram over one window."""
    return f"job_target_le:tokenpulse_{family}_bucket:rate{w}"


def availability_window(slo: SLO, w: str) -> list[Rule]:
    """One raw window's availability: the window's only read of the raw counters (per target, outcome
    and error class), then everything else from that recorded rate, in order within the group (a rule
    sees the results of the rules above it at the same evaluation). Before, each window read the raw
    counters four times (all, eligible, failed, per class); at 1,000 targets those reads were the
    slowest group's cost (docs/benchmarks.md, rules_eval.py). The dashboards' per-class rates are a
    group of their own (`availability_classes`)."""
    by_class = by_class_rate(w)
    return [
        rule(by_class, f"sum by (job, endpoint, model, provider, outcome, error_class) "
                       f"(rate(tokenpulse_requests_total[{w}]))"),
        rule(f"job_target:tokenpulse_requests_eligible:rate{w}", f"{BY} ({by_class}{{{CALLER_SIDE}}})"),
        rule(f"job_target:tokenpulse_requests_failed:rate{w}",
             f'{BY} ({by_class}{{outcome="error", {CALLER_SIDE}}})'),
        *error_ratio_rules(w, slo),
    ]


def availability_classes(w: str) -> list[Rule]:
    """A window's all-requests rate, per-class error rates and their ratios (dashboards only), from the
    window's recorded rate by outcome and class (`availability_window`).

    A group of its own: a group's rules run one after another, so its duration is their sum, and these
    three write ~14 series per target (they were 0.21 of the 5m group's 0.44 s at 1,000 targets,
    rules_eval.py). Alerts read none of them, so the one evaluation (15 s) they may lag the window's
    own group does not delay a page."""
    by_class = by_class_rate(w)
    return [
        rule(f"job_target:tokenpulse_requests:rate{w}", f"{BY} ({by_class})"),
        rule(f"job_target_class:tokenpulse_requests_error:rate{w}",
             f'sum by (job, endpoint, model, provider, error_class) ({by_class}{{outcome="error"}})'),
        rule(f"job_target_class:tokenpulse_requests_error:ratio_rate{w}",
             f"job_target_class:tokenpulse_requests_error:rate{w} / ignoring (error_class) group_left "
             f"job_target:tokenpulse_requests:rate{w}"),
    ]


def availability_recorded(slo: SLO) -> list[Rule]:
    """The 2h and 6h windows: averages of the recorded per-target 5m rates (group
    tokenpulse-availability-5m), sampled each minute."""
    rules = []
    for w in FROM_RECORDED:
        for kind in ("eligible", "failed"):
            rules.append(rule(f"job_target:tokenpulse_requests_{kind}:rate{w}",
                              f"avg_over_time(job_target:tokenpulse_requests_{kind}:rate5m[{w}:1m])"))
        rules += error_ratio_rules(w, slo)
    return rules


def error_ratio_rules(w: str, slo: SLO) -> list[Rule]:
    """A window's error ratio, availability (for the windows dashboards show) and burn rate."""
    rules = [rule(f"job_target:tokenpulse_requests_error:ratio_rate{w}",
                  f"job_target:tokenpulse_requests_failed:rate{w} / job_target:tokenpulse_requests_eligible:rate{w}")]
    if w in PER_CLASS_WINDOWS:
        rules.append(rule(f"job_target:tokenpulse_availability:ratio_rate{w}",
                          f"1 - job_target:tokenpulse_requests_error:ratio_rate{w}"))
    return rules + burn_rules("availability", "requests_error", w, slo)


def burn_rules(sli: str, ratio: str, window: str, slo: SLO) -> list[Rule]:
    """Burn rate = error ratio / error budget, against each cell's objective: one expression whose
    disjoint parts `or` together (one rule, so no two rules record the same series name)."""
    field = "availability" if sli == "availability" else "ttft_share"
    parts = [
        f"job_target:tokenpulse_{ratio}:ratio_rate{window}{cell.selector()} / (1 - {number(cell.value)})"
        for cell in cells(slo, field)
    ]
    return [rule(f"job_target:tokenpulse_{sli}:burnrate{window}", "\nor\n".join(parts))]


def availability_long(slo: SLO) -> list[Rule]:
    rules = []
    for kind in ("eligible", "failed"):
        for w in LONG_WINDOWS:
            rules.append(
                rule(
                    f"job_target:tokenpulse_requests_{kind}:rate{w}",
                    # 3d at 5-minute steps: 864 points (promtool's unit tests cap a query's samples)
                    f"avg_over_time(job_target:tokenpulse_requests_{kind}:rate5m[{w}:{'5m' if w == '3d' else '1m'}])",
                )
            )
    for w in LONG_WINDOWS:
        rules.append(
            rule(
                f"job_target:tokenpulse_requests_error:ratio_rate{w}",
                f"job_target:tokenpulse_requests_failed:rate{w} / job_target:tokenpulse_requests_eligible:rate{w}",
            )
        )
    rules.append(
        rule("job_target:tokenpulse_availability:ratio_rate1d", "1 - job_target:tokenpulse_requests_error:ratio_rate1d")
    )
    for w in LONG_WINDOWS:
        rules += burn_rules("availability", "requests_error", w, slo)
    rules.append(
        rule(
            "job_target:tokenpulse_requests_error:ratio_rate30d",
            "avg_over_time(job_target:tokenpulse_requests_failed:rate1d[30d]) / "
            "avg_over_time(job_target:tokenpulse_requests_eligible:rate1d[30d])",
        )
    )
    rules.append(
        rule(
            "job_target:tokenpulse_availability:ratio_rate30d", "1 - job_target:tokenpulse_requests_error:ratio_rate30d"
        )
    )
    rules.append(
        rule(
            "job_target:tokenpulse_availability:error_budget_remaining_ratio30d",
            "\nor\n".join(
                f"1 - job_target:tokenpulse_requests_error:ratio_rate30d{cell.selector()} / (1 - {number(cell.value)})"
                for cell in cells(slo, "availability")
            ),
        )
    )
    return rules


def ttft_window(slo: SLO, w: str) -> list[Rule]:
    """One window's TTFT SLO: events (a TTFT observed, or a TTFT timeout), good events (each cell's own
    threshold bucket), the error ratio and the burn rate. Raw windows read the histogram; 6h averages
    the recorded 5m rates (group tokenpulse-ttft-slo-5m)."""
    if w in FROM_RECORDED:
        events = f"avg_over_time(job_target:tokenpulse_ttft_slo_events:rate5m[{w}:1m])"
        good = f"avg_over_time(job_target:tokenpulse_ttft_slo_good:rate5m[{w}:1m])"
    else:
        events = (f"{BY} (rate(tokenpulse_ttft_seconds_count[{w}]) or "
                  f'rate(tokenpulse_requests_total{{error_class="timeout_ttft"}}[{w}]))')
        # Each cell counts its own threshold's bucket; the cells are disjoint, so `or` unions them.
        good = BY + " (" + " or ".join(
            f"rate(tokenpulse_ttft_seconds_bucket{cell.selector(f'le={chr(34)}{go_float(cell.value)}{chr(34)}')}[{w}])"
            for cell in cells(slo, "ttft_s")
        ) + ")"
    return [
        rule(f"job_target:tokenpulse_ttft_slo_events:rate{w}", events),
        rule(f"job_target:tokenpulse_ttft_slo_good:rate{w}", good),
        rule(f"job_target:tokenpulse_ttft_slo_error:ratio_rate{w}",
             f"1 - job_target:tokenpulse_ttft_slo_good:rate{w} / job_target:tokenpulse_ttft_slo_events:rate{w}"),
        *burn_rules("ttft_slo", "ttft_slo_error", w, slo),
    ]


#: The histograms with recorded percentiles, and the short name of each one's group.
LATENCY_FAMILIES = {"ttft_seconds": "ttft", "ttfc_seconds": "ttfc", "tpot_seconds": "tpot",
                    "output_tokens_per_second": "decode"}


def latency(family: str, w: str) -> list[Rule]:
    """Bucket rates per target and `le` of one histogram over one window, and their percentiles.

    Cost (docs/benchmarks.md, rules_eval.py): a histogram has 19-29 bucket series per target, so at 1,000
    targets one family's 5m bucket rates read up to 29,000 series; one group per family and window keeps
    each group's evaluation to that (Prometheus evaluates groups concurrently). The 1h rates average the
    recorded 5m ones at 5-minute steps (12 points of each recorded series, the same hour in 12 windows
    that do not overlap) instead of reading an hour of raw samples of every bucket series."""
    return [bucket_rate_rule(family, w), *quantile_rules(family, w)]


def bucket_rate_rule(family: str, w: str) -> Rule:
    expr = (f"sum by (job, endpoint, model, provider, le) (rate(tokenpulse_{family}_bucket[{w}]))" if w == "5m"
            else f"avg_over_time({bucket_rate(family, '5m')}[{w}:5m])")
    return rule(bucket_rate(family, w), expr)


def quantile_rules(family: str, w: str) -> list[Rule]:
    """The percentiles of one histogram's recorded bucket rates (dashboards only)."""
    rates = bucket_rate(family, w)
    # Decode speed: lower is worse, so the 5th percentile is the slow tail, not the 95th.
    quantiles = ("0.5", "0.05") if family == "output_tokens_per_second" else ("0.5", "0.95", "0.99")
    return [rule(f"job_target:tokenpulse_{family}:quantile_rate{w}", f"histogram_quantile({q}, {rates})",
                 labels={"quantile": q}) for q in quantiles]


def throughput() -> list[Rule]:
    return [
        rule("job_target:tokenpulse_output_tokens:rate5m", f"{BY} (rate(tokenpulse_output_tokens_total[5m]))"),
        rule("job_target:tokenpulse_output_tokens:rate1h", f"{BY} (rate(tokenpulse_output_tokens_total[1h]))"),
        rule("job_target:tokenpulse_prompt_tokens:rate1h", f"{BY} (rate(tokenpulse_prompt_tokens_total[1h]))"),
        rule("job_target:tokenpulse_cost_usd:rate1h", f"{BY} (rate(tokenpulse_cost_usd_total[1h]))"),
    ]


def recording_groups(slo: SLO) -> list[dict[str, Any]]:
    """One group per SLI and raw window (Prometheus evaluates groups concurrently, each group's rules in
    order, so a group takes the sum of its rules): at 1,000 targets one group holding every window took
    over a second (docs/benchmarks.md). What only dashboards read (per-class rates, the 5m percentiles)
    is split from the raw read it derives from, so no group holds more than one raw read of 13,000-29,000
    series plus what alerts need in the same evaluation. Groups that read another group's results come
    after it, so promtool's tests, which evaluate the groups in file order, see the same evaluation's
    values (Prometheus itself may give them the previous evaluation's, 15 s older). Groups only
    dashboards read are evaluated every `DASHBOARD_INTERVAL`."""
    raw = [w for w in SHORT_WINDOWS if w not in FROM_RECORDED]
    groups: list[dict[str, Any]] = []
    for w in raw:
        groups.append({"name": f"tokenpulse-availability-{w}", "rules": availability_window(slo, w)})
        if w in PER_CLASS_WINDOWS:
            groups.append({"name": f"tokenpulse-availability-{w}-classes", "interval": DASHBOARD_INTERVAL,
                           "rules": availability_classes(w)})
    groups += [
        {"name": "tokenpulse-availability-6h", "rules": availability_recorded(slo)},
        {"name": "tokenpulse-availability-long", "interval": "5m", "rules": availability_long(slo)},
        *({"name": f"tokenpulse-ttft-slo-{w}", "rules": ttft_window(slo, w)} for w in TTFT_WINDOWS),
    ]
    for family, short in LATENCY_FAMILIES.items():
        groups.append({"name": f"tokenpulse-latency-{short}", "interval": DASHBOARD_INTERVAL,
                       "rules": [bucket_rate_rule(family, "5m")]})
        groups.append({"name": f"tokenpulse-latency-{short}-quantiles", "interval": DASHBOARD_INTERVAL,
                       "rules": quantile_rules(family, "5m")})
    # an hour's percentiles move slowly: once a minute
    groups += [{"name": f"tokenpulse-latency-{short}-1h", "interval": "1m", "rules": latency(family, "1h")}
               for family, short in LATENCY_FAMILIES.items()]
    groups.append({"name": "tokenpulse-throughput", "rules": throughput()})
    return groups
