#!/usr/bin/env python3
"""Generate tokenpulse's Grafana dashboards as code, with grafana-foundation-sdk (Grafana's own builders).

    python dashboards/generate.py            # (re)write dashboards/json/*.json
    python dashboards/generate.py --check    # exit 1 if the committed JSON differs from the code

The JSON is committed (Grafana provisions it from dashboards/json, see dashboards/provisioning) and a test
checks that regenerating it gives the same bytes, so the code and the dashboards cannot drift apart.

Queries read the recording rules of prometheus/rules/recording.yml wherever one exists (cheap, and the
same definitions the alerts use). Percentiles across models are computed from the recorded per-`le`
bucket rates, never by averaging percentiles. The prober probes each target about once a minute, so its
panels use the rules' 5-minute windows; the load-test dashboard uses `$__rate_interval`, because a load
test is short and dense.

The SDK is a dev dependency (`pip install -e '.[dev]'`); the generated JSON needs nothing at run time.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import prometheus as pm

OUT_DIR = Path(__file__).resolve().parent / "json"

#: The provisioned datasource (dashboards/provisioning/datasources/tokenpulse.yml); a fixed uid lets the
#: dashboards reference it without a datasource variable.
DATASOURCE_UID = "tokenpulse-prometheus"
DS = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

PROBER = 'job="tokenpulse-prober"'
LOCUST = 'job="tokenpulse-locust"'
#: Target filters driven by the dashboard variables (multi-value, "All" = .*).
PROBER_SEL = PROBER + ', endpoint=~"$endpoint", model=~"$model"'
PROBER_TARGET_SEL = PROBER_SEL + ', provider=~"$provider"'
LOCUST_SEL = LOCUST + ', endpoint=~"$endpoint", model=~"$model", provider=~"$provider"'

# SLO figures the panels colour by (the defaults of examples/mock.yaml, the stack's config); the burn-rate
# panels read the recorded burn rates, which carry each target's own objective.
AVAILABILITY_OBJECTIVE = 0.99
TTFT_OBJECTIVE = 0.95
TTFT_THRESHOLD_LE = "2.0"

TAGS = ["tokenpulse"]
STATE_MAPPING = dm.ValueMap(options={
    "0": dm.ValueMappingResult(text="unknown", color="text", index=0),
    "1": dm.ValueMappingResult(text="up", color="green", index=1),
    "2": dm.ValueMappingResult(text="degraded", color="yellow", index=2),
    "3": dm.ValueMappingResult(text="down", color="red", index=3),
})
UP_MAPPING = dm.ValueMap(options={
    "0": dm.ValueMappingResult(text="down", color="red", index=0),
    "1": dm.ValueMappingResult(text="up", color="green", index=1),
})


# ------------------------------------------------------------------------------------------ helpers
def query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False,
          table_format: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant()
    else:
        q = q.range()
    if table_format:
        q = q.format(pm.PromQueryFormat.TABLE)
    return q


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps])


def availability_thresholds(objective: float) -> db.ThresholdsConfig:
    return thresholds((None, "red"), (objective - 4 * (1 - objective), "orange"), (objective, "green"))


def state_expr(sel: str) -> str:
    """One number per target for the one-hot tokenpulse_target_state: 0 unknown, 1 up, 2 degraded, 3 down."""
    return (f'max by (endpoint, model, provider) (tokenpulse_target_state{{{sel}, state="up"}} * 1'
            f' or tokenpulse_target_state{{{sel}, state="degraded"}} * 2'
            f' or tokenpulse_target_state{{{sel}, state="down"}} * 3)')


def quantiles(template: str, legend: str, qs: Iterable[float]) -> list[prometheus.Dataquery]:
    """One query per quantile; `template` has a {q} placeholder, `legend` a {p} one (p50, p95...)."""
    refs = "ABCDEFGH"
    return [query(template.replace("{q}", str(q)), legend.replace("{p}", f"p{round(q * 100):d}"), refs[i])
            for i, q in enumerate(qs)]


def legend_table(*calcs: str) -> cb.VizLegendOptions:
    return (cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(list(calcs)))


def ts(title: str, description: str, targets: list[prometheus.Dataquery], unit: str, *, span: int = 12,
       height: int = 8, minimum: float | None = None, threshold_lines: db.ThresholdsConfig | None = None,
       stack: bool = False) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DS).targets(targets)
             .unit(unit).span(span).height(height).line_width(1).fill_opacity(10)
             .legend(legend_table("mean", "max", "lastNotNull"))
             .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)))
    if minimum is not None:
        panel = panel.min(minimum)
    if threshold_lines is not None:
        panel = panel.thresholds(threshold_lines).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED))
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(40)
    return panel


def single(title: str, description: str, targets: list[prometheus.Dataquery], unit: str, *, span: int = 6,
           height: int = 5, steps: db.ThresholdsConfig | None = None, decimals: float | None = None,
           mappings: list[dm.ValueMap] | None = None, text_mode: cm.BigValueTextMode = cm.BigValueTextMode.AUTO,
           graph: bool = False) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(DS).targets(targets).unit(unit)
             .span(span).height(height).color_mode(cm.BigValueColorMode.BACKGROUND).text_mode(text_mode)
             .graph_mode(cm.BigValueGraphMode.AREA if graph else cm.BigValueGraphMode.NONE)
             .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    panel = panel.thresholds(steps or thresholds((None, "blue")))
    if decimals is not None:
        panel = panel.decimals(decimals)
    if mappings:
        panel = panel.mappings(list(mappings))
    return panel


def timeline(title: str, description: str, targets: list[prometheus.Dataquery], unit: str,
             steps: db.ThresholdsConfig, *, mappings: list[dm.ValueMap] | None = None, span: int = 24,
             height: int = 7) -> statetimeline.Panel:
    panel = (statetimeline.Panel().title(title).description(description).datasource(DS).targets(targets)
             .unit(unit).span(span).height(height).thresholds(steps)
             .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
             .show_value(cm.VisibilityMode.NEVER).merge_values(True).row_height(0.8).fill_opacity(80)
             .legend(cb.VizLegendOptions().show_legend(False).display_mode(cm.LegendDisplayMode.HIDDEN)
                     .placement(cm.LegendPlacement.BOTTOM)))
    if mappings:
        panel = panel.mappings(list(mappings))
    return panel


def variable(name: str, label: str, query_text: str) -> db.QueryVariable:
    return (db.QueryVariable(name).label(label).datasource(DS).query(query_text).multi(True)
            .include_all(True).all_value(".*").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


def links() -> list[db.DashboardLink]:
    return [db.DashboardLink("tokenpulse").type(dm.DashboardLinkType.DASHBOARDS).tags(TAGS).as_dropdown(True)
            .include_vars(True).keep_time(True).icon("external link").tooltip("").url("").target_blank(False)]


class Layout:
    """Builds a dashboard row by row with stable panel ids (the SDK places panels left to right)."""

    def __init__(self, builder: db.Dashboard) -> None:
        self.builder = builder
        self.next_id = 1

    def row(self, title: str) -> Layout:
        self.builder.with_row(db.Row(title).id(self.next_id))
        self.next_id += 1
        return self

    def add(self, *panels: Builder[dm.Panel]) -> Layout:
        for panel in panels:
            panel.id(self.next_id)  # type: ignore[attr-defined]
            self.next_id += 1
            self.builder.with_panel(panel)
        return self


def new_dashboard(uid: str, title: str, description: str, *, time_from: str = "now-6h",
                  refresh: str = "30s") -> db.Dashboard:
    # Grafana's built-in "Annotations & Alerts" query, spelled out so the JSON carries annotations.list.
    builtin = (db.AnnotationQuery().name("Annotations & Alerts").built_in(1).enable(True).hide(True)
               .icon_color("rgba(0, 211, 255, 1)").type("dashboard")
               .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --")))
    return (db.Dashboard(title).uid(uid).description(description).tags(TAGS).editable().refresh(refresh)
            .time(time_from, "now").timezone("browser").tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .links(links()).annotation(builtin))


# ---------------------------------------------------------------------------------------- dashboards
def provider_overview() -> db.Dashboard:
    sel = PROBER_SEL
    d = new_dashboard("tokenpulse-overview", "tokenpulse / Provider overview",
                      "Availability, latency, speed, errors and cost of every probed provider, from the "
                      "tokenpulse prober. Availability counts provider-side failures only (429 and 4xx "
                      "are the caller's).")
    d.with_variable(variable("endpoint", "Endpoint", f"label_values(tokenpulse_requests_total{{{PROBER}}}, endpoint)"))
    d.with_variable(variable("model", "Model", "label_values(tokenpulse_requests_total{"
                             + PROBER + ', endpoint=~"$endpoint"}, model)'))
    lay = Layout(d)

    def ratio(window: str) -> str:
        return (f"1 - sum by (provider) (job_target:tokenpulse_requests_failed:rate{window}{{{sel}}})"
                f" / sum by (provider) (job_target:tokenpulse_requests_eligible:rate{window}{{{sel}}})")

    failed30d = f"sum by (provider) (avg_over_time(job_target:tokenpulse_requests_failed:rate1d{{{sel}}}[30d]))"
    eligible30d = f"sum by (provider) (avg_over_time(job_target:tokenpulse_requests_eligible:rate1d{{{sel}}}[30d]))"
    lay.row("Availability")
    lay.add(
        single("Availability, last hour", "Share of eligible probes that succeeded in the last hour, per "
               "provider across the selected models.", [query(ratio("1h"), "{{provider}}")], "percentunit",
               span=8, decimals=2, steps=availability_thresholds(AVAILABILITY_OBJECTIVE)),
        single("Availability, 30 days", "30-day availability per provider (from the recorded 1-day rates).",
               [query(f"1 - {failed30d} / {eligible30d}", "{{provider}}")], "percentunit", span=8, decimals=3,
               steps=availability_thresholds(AVAILABILITY_OBJECTIVE)),
        single("Error budget left, 30 days", f"Share of the 30-day error budget (1 - {AVAILABILITY_OBJECTIVE}) "
               "not yet spent; negative when overspent.",
               [query(f"1 - ({failed30d} / {eligible30d}) / (1 - {AVAILABILITY_OBJECTIVE})", "{{provider}}")],
               "percentunit", span=8, decimals=0,
               steps=thresholds((None, "red"), (0, "orange"), (0.25, "green"))),
        timeline("Availability, 5-minute windows", "Per provider: green at or above the SLO, orange below "
                 "it, red far below.", [query(ratio("5m"), "{{provider}}")], "percentunit",
                 availability_thresholds(AVAILABILITY_OBJECTIVE)),
        timeline("Confirmed state", "The prober's confirmed state per target (down after N failures in a "
                 "row, up after M successes).", [query(state_expr(sel), "{{provider}} · {{model}}")], "none",
                 thresholds((None, "text")), mappings=[STATE_MAPPING]),
    )
    lay.row("Latency")
    lay.add(
        ts("Time to first token (p50, p95)", "First token of any kind (reasoning included), per provider.",
           quantiles("histogram_quantile({q}, sum by (provider, le) "
                     f"(job_target_le:tokenpulse_ttft_seconds_bucket:rate5m{{{sel}}}))",
                     "{{provider}} {p}", (0.5, 0.95)), "s", minimum=0),
        ts("Time to first answer token, TTFC (p50, p95)", "First content token; later than TTFT for "
           "reasoning models.",
           quantiles("histogram_quantile({q}, sum by (provider, le) "
                     f"(job_target_le:tokenpulse_ttfc_seconds_bucket:rate5m{{{sel}}}))",
                     "{{provider}} {p}", (0.5, 0.95)), "s", minimum=0),
    )
    lay.row("Speed")
    lay.add(
        ts("Decode speed per request (median)", "Output tokens / (last token - first token) of successful "
           "probes.",
           [query("histogram_quantile(0.5, sum by (provider, le) "
                  f"(job_target_le:tokenpulse_output_tokens_per_second_bucket:rate5m{{{sel}}}))", "{{provider}}")],
           "suffix: tok/s", minimum=0),
        ts("Output tokens per second, all probes", "Aggregate output tokens (reasoning included) per second "
           "of wall time.", [query(f"sum by (provider) (job_target:tokenpulse_output_tokens:rate5m{{{sel}}})",
                                    "{{provider}}")], "suffix: tok/s", minimum=0),
    )
    lay.row("Errors")
    lay.add(
        ts("Errors by class, share of probes", "Failed probes by error class as a share of all probes "
           "(caller-side classes included).",
           [query(f"sum by (provider, error_class) (job_target_class:tokenpulse_requests_error:rate5m{{{sel}}})"
                  f" / ignoring (error_class) group_left sum by (provider) "
                  f"(job_target:tokenpulse_requests:rate5m{{{sel}}})", "{{provider}} {{error_class}}")],
           "percentunit", span=16, minimum=0),
        bargauge.Panel().title("Errors by class, selected range").description(
            "Failed probes per error class over the dashboard's time range.").datasource(DS)
        .targets([query(f'sum by (error_class) '
                        f'(increase(tokenpulse_requests_total{{{sel}, outcome="error"}}[$__range]))',
                        "{{error_class}}", instant=True)])
        .unit("short").decimals(0).span(8).height(8).thresholds(thresholds((None, "orange")))
        .display_mode(cm.BarGaugeDisplayMode.BASIC).orientation(cm.VizOrientation.HORIZONTAL)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
    )
    lay.row("Cost")
    lay.add(
        single("Spend, selected range", "Probe spend per provider (usage.cost, else usage x configured price).",
               [query(f"sum by (provider) (increase(tokenpulse_cost_usd_total{{{sel}}}[$__range]))", "{{provider}}",
                      instant=True)], "currencyUSD", span=8, decimals=4),
        ts("Blended cost per million output tokens", "Probe spend (prompt and output) over output tokens, "
           "per provider, hourly.",
           [query(f"sum by (provider) (job_target:tokenpulse_cost_usd:rate1h{{{sel}}}) / sum by (provider) "
                  f"(job_target:tokenpulse_output_tokens:rate1h{{{sel}}}) * 1e6", "{{provider}}")],
           "currencyUSD", span=10, minimum=0),
        single("OpenRouter credit left", "Key credit (limit - usage) from /api/v1/key; absent for keys "
               "without a limit.",
               [query(f'tokenpulse_openrouter_credits_remaining_usd{{{PROBER}, endpoint=~"$endpoint"}}',
                      "{{endpoint}}")], "currencyUSD", span=6, decimals=2,
               steps=thresholds((None, "red"), (5, "orange"), (20, "green"))),
    )
    lay.row("Alerts")
    lay.add(
        table.Panel().title("Firing alerts").description("tokenpulse alerts firing now (Prometheus ALERTS).")
        .datasource(DS).targets([query('ALERTS{alertstate="firing", alertname=~"Tokenpulse.*"}', instant=True,
                                       table_format=True)])
        .span(24).height(7)
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True}}))
    )
    return d


def provider_detail() -> db.Dashboard:
    sel = PROBER_TARGET_SEL
    d = new_dashboard("tokenpulse-provider-detail", "tokenpulse / Provider detail",
                      "One provider (or a few) in depth: SLOs and burn rates, latency percentiles, speed, "
                      "tokens, errors and cost.")
    d.with_variable(variable("endpoint", "Endpoint", f"label_values(tokenpulse_requests_total{{{PROBER}}}, endpoint)"))
    d.with_variable(variable("model", "Model", "label_values(tokenpulse_requests_total{"
                             + PROBER + ', endpoint=~"$endpoint"}, model)'))
    d.with_variable(variable("provider", "Provider", "label_values(tokenpulse_requests_total{"
                             + PROBER + ', endpoint=~"$endpoint", model=~"$model"}, provider)'))
    lay = Layout(d)
    legend = "{{provider}} · {{model}}"
    avail = availability_thresholds(AVAILABILITY_OBJECTIVE)
    lay.row("Service level")
    lay.add(
        single("Availability, 1 hour", "", [query(f"job_target:tokenpulse_availability:ratio_rate1h{{{sel}}}", legend)],
               "percentunit", span=4, decimals=2, steps=avail),
        single("Availability, 1 day", "", [query(f"job_target:tokenpulse_availability:ratio_rate1d{{{sel}}}", legend)],
               "percentunit", span=4, decimals=2, steps=avail),
        single("Availability, 30 days", "", [query(f"job_target:tokenpulse_availability:ratio_rate30d{{{sel}}}",
                                                   legend)], "percentunit", span=4, decimals=3, steps=avail),
        single("Error budget left, 30 days", "",
               [query(f"job_target:tokenpulse_availability:error_budget_remaining_ratio30d{{{sel}}}", legend)],
               "percentunit", span=4, decimals=0, steps=thresholds((None, "red"), (0, "orange"), (0.25, "green"))),
        single("Confirmed state", "", [query(state_expr(sel), legend)], "none", span=4,
               mappings=[STATE_MAPPING], steps=thresholds((None, "text"))),
        single("Consecutive failures", "Provider-side failures in a row (429 and 4xx neither add nor reset).",
               [query(f"tokenpulse_consecutive_failures{{{sel}}}", legend)], "none", span=4,
               steps=thresholds((None, "green"), (1, "orange"), (3, "red"))),
        ts("Availability burn rate", "Error ratio / error budget, against each target's own objective (the "
           "config's slo:, as `tokenpulse rules` recorded it). The fast burn needs 1h and 5m above 14.4; the "
           "slow burn 6h and 30m above 6.",
           [query(f"job_target:tokenpulse_availability:burnrate{w}{{{sel}}}",
                  f"{{{{provider}}}} {w}", ref) for ref, w in zip("ABCD", ("5m", "30m", "1h", "6h"), strict=True)],
           "x", minimum=0, threshold_lines=thresholds((None, "transparent"), (6, "orange"), (14.4, "red"))),
        ts("TTFT burn rate", "Share of requests slower than the target's TTFT threshold to the first token (TTFT "
           "timeouts included) / its budget: each target's own objective, per model and provider.",
           [query(f"job_target:tokenpulse_ttft_slo:burnrate{w}{{{sel}}}",
                  f"{{{{provider}}}} {w}", ref) for ref, w in zip("ABCD", ("5m", "30m", "1h", "6h"), strict=True)],
           "x", minimum=0, threshold_lines=thresholds((None, "transparent"), (6, "orange"), (14.4, "red"))),
    )
    lay.row("Latency")
    lay.add(
        ts("Time to first token (p50, p95, p99)", "",
           [query(f'job_target:tokenpulse_ttft_seconds:quantile_rate5m{{{sel}}}', "{{provider}} q{{quantile}}")],
           "s", span=8, minimum=0),
        ts("Time to first answer token, TTFC (p50, p95, p99)", "",
           [query(f'job_target:tokenpulse_ttfc_seconds:quantile_rate5m{{{sel}}}', "{{provider}} q{{quantile}}")],
           "s", span=8, minimum=0),
        ts("Time per output token, TPOT (p50, p95, p99)", "",
           [query(f'job_target:tokenpulse_tpot_seconds:quantile_rate5m{{{sel}}}', "{{provider}} q{{quantile}}")],
           "s", span=8, minimum=0),
        heatmap.Panel().title("TTFT distribution").description("Probes per TTFT bucket.").datasource(DS)
        .targets([query(f"sum by (le) (increase(tokenpulse_ttft_seconds_bucket{{{sel}}}[$__rate_interval]))",
                        "{{le}}").format(pm.PromQueryFormat.HEATMAP)])
        .calculate(False).span(12).height(8).cell_gap(1)
        .y_axis(heatmap.YAxisConfig().unit("s").axis_placement(cm.AxisPlacement.LEFT))
        .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Oranges")
               .scale(hm.HeatmapColorScale.EXPONENTIAL).exponent(0.5).fill("dark-orange").reverse(False)),
        ts("TTFB and end-to-end time (p50, p95)", "Response head and whole stream of successful probes.",
           quantiles("histogram_quantile({q}, sum by (provider, le) "
                     f"(rate(tokenpulse_ttfb_seconds_bucket{{{sel}}}[5m])))", "{{provider}} TTFB {p}", (0.5, 0.95))
           + [query(f"histogram_quantile({q}, sum by (provider, le) "
                    f"(rate(tokenpulse_e2e_seconds_bucket{{{sel}}}[5m])))",
                    f"{{{{provider}}}} E2E p{round(q * 100)}", ref) for ref, q in (("C", 0.5), ("D", 0.95))],
           "s", span=12, minimum=0),
        ts("Gaps between tokens (p50, p99)", "Inter-token latency per token-carrying chunk.",
           quantiles("histogram_quantile({q}, sum by (provider, le) "
                     f"(rate(tokenpulse_chunk_gap_seconds_bucket{{{sel}}}[5m])))", "{{provider}} {p}", (0.5, 0.99)),
           "s", span=12, minimum=0),
        ts("Decode speed per request (median, slowest 5 %)", "",
           [query(f'job_target:tokenpulse_output_tokens_per_second:quantile_rate5m{{{sel}}}',
                  "{{provider}} q{{quantile}}")], "suffix: tok/s", span=12, minimum=0),
        ts("Our TTFT vs what OpenRouter measured (p50)", "Our TTFT and OpenRouter's own time to first token "
           "of the same probes (GET /generation `latency`); the gap is the network and router overhead from "
           "where the prober runs. Also OpenRouter's generation time.",
           [query(f"histogram_quantile(0.5, sum by (provider, le) (rate(tokenpulse_{name}_bucket{{{sel}}}[5m])))",
                  f"{{{{provider}}}} {legend}", ref)
            for ref, name, legend in (("A", "ttft_seconds", "our TTFT"),
                                      ("B", "openrouter_generation_latency_seconds", "OpenRouter latency"),
                                      ("C", "openrouter_generation_time_seconds", "OpenRouter generation time"))],
           "s", span=12, minimum=0),
    )
    lay.row("Tokens, errors and cost")
    lay.add(
        ts("Tokens per second", "Prompt, output and reasoning tokens counted by the probes.",
           [query(f"sum by (provider) (rate(tokenpulse_{kind}_tokens_total{{{sel}}}[5m]))",
                  f"{{{{provider}}}} {kind}", ref)
            for ref, kind in zip("ABC", ("prompt", "output", "reasoning"), strict=True)],
           "suffix: tok/s", span=8, minimum=0),
        ts("Probes by outcome", "Probes per second by outcome and error class.",
           [query(f"sum by (provider, outcome, error_class) (rate(tokenpulse_requests_total{{{sel}}}[5m]))",
                  "{{provider}} {{outcome}} {{error_class}}")], "reqps", span=8, minimum=0, stack=True),
        ts("Errors by class, share of probes (1h)", "",
           [query(f"job_target_class:tokenpulse_requests_error:ratio_rate1h{{{sel}}}", "{{provider}} {{error_class}}")],
           "percentunit", span=8, minimum=0),
        ts("Share of probes with estimated token counts", "The server sent no usage, so tokens were estimated.",
           [query(f"sum by (provider) (rate(tokenpulse_tokens_estimated_requests_total{{{sel}}}[1h])) / sum by "
                  f"(provider) (job_target:tokenpulse_requests:rate1h{{{sel}}})", "{{provider}}")],
           "percentunit", span=12, minimum=0),
        ts("Probe spend per hour", "",
           [query(f"sum by (provider) (job_target:tokenpulse_cost_usd:rate1h{{{sel}}}) * 3600", "{{provider}}")],
           "currencyUSD", span=12, minimum=0),
    )
    return d


def load_test() -> db.Dashboard:
    sel = LOCUST_SEL
    rate = "$__rate_interval"
    d = new_dashboard("tokenpulse-loadtest", "tokenpulse / Load test",
                      "A Locust load test live: load, latency percentiles, throughput, errors and the health "
                      "of the load generator itself.", time_from="now-30m", refresh="10s")
    d.with_variable(variable("endpoint", "Endpoint", f"label_values(tokenpulse_requests_total{{{LOCUST}}}, endpoint)"))
    d.with_variable(variable("model", "Model", "label_values(tokenpulse_requests_total{"
                             + LOCUST + ', endpoint=~"$endpoint"}, model)'))
    d.with_variable(variable("provider", "Provider", "label_values(tokenpulse_requests_total{"
                             + LOCUST + ', endpoint=~"$endpoint", model=~"$model"}, provider)'))
    lay = Layout(d)
    lay.row("Load")
    lay.add(
        single("Users", "Locust users running.", [query(f"sum(tokenpulse_load_users{{{LOCUST}}})")], "none",
               graph=True),
        single("Requests per second", "", [query(f"sum(rate(tokenpulse_requests_total{{{sel}}}[{rate}]))")],
               "reqps", decimals=1, graph=True),
        single("Failed requests", "Share of requests that failed, any class.",
               [query(f'sum(rate(tokenpulse_requests_total{{{sel}, outcome="error"}}[{rate}])) / '
                      f"sum(rate(tokenpulse_requests_total{{{sel}}}[{rate}]))")], "percentunit", decimals=2,
               steps=thresholds((None, "green"), (0.01, "orange"), (0.05, "red")), graph=True),
        single(f"First token within {float(TTFT_THRESHOLD_LE):g} s", "Share of requests whose first token came within "
               "the TTFT SLO threshold (failed requests count as missing it).",
               [query(f'sum(rate(tokenpulse_ttft_seconds_bucket{{{sel}, le="{TTFT_THRESHOLD_LE}"}}[{rate}])) / '
                      f"sum(rate(tokenpulse_requests_total{{{sel}}}[{rate}]))")], "percentunit", decimals=1,
               steps=thresholds((None, "red"), (0.9, "orange"), (TTFT_OBJECTIVE, "green")), graph=True),
        ts("Users and load shape", "Users running, and what the load shape asks for.",
           [query(f"sum(tokenpulse_load_users{{{LOCUST}}})", "users", "A"),
            query(f"max(tokenpulse_load_target_concurrency{{{LOCUST}}})", "target concurrency", "B"),
            query(f"max(tokenpulse_load_target_rate_per_second{{{LOCUST}}})", "target rate/s", "C"),
            query(f"max(tokenpulse_load_step{{{LOCUST}}})", "step", "D")], "none", minimum=0),
        ts("Requests per second by provider", "",
           [query(f"sum by (provider) (rate(tokenpulse_requests_total{{{sel}}}[{rate}]))", "{{provider}}")],
           "reqps", minimum=0),
    )
    lay.row("Latency")
    for metric, title in (("ttft", "Time to first token"), ("tpot", "Time per output token"),
                          ("ttfc", "Time to first answer token")):
        lay.add(ts(f"{title} (p50, p95, p99)", "",
                   quantiles("histogram_quantile({q}, sum by (provider, le) "
                             f"(rate(tokenpulse_{metric}_seconds_bucket{{{sel}}}[{rate}])))",
                             "{{provider}} {p}", (0.5, 0.95, 0.99)), "s", span=8, minimum=0))
    lay.row("Throughput")
    lay.add(
        ts("Tokens per second, aggregate", "All output (and prompt) tokens per second of wall time.",
           [query(f"sum by (provider) (rate(tokenpulse_output_tokens_total{{{sel}}}[{rate}]))",
                  "{{provider}} output", "A"),
            query(f"sum by (provider) (rate(tokenpulse_prompt_tokens_total{{{sel}}}[{rate}]))",
                  "{{provider}} prompt", "B")],
           "suffix: tok/s", minimum=0),
        ts("Decode speed per request (median)", "",
           [query("histogram_quantile(0.5, sum by (provider, le) "
                  f"(rate(tokenpulse_output_tokens_per_second_bucket{{{sel}}}[{rate}])))", "{{provider}}")],
           "suffix: tok/s", minimum=0),
    )
    lay.row("Errors")
    lay.add(
        ts("Errors per second by class", "",
           [query(f'sum by (provider, error_class) (rate(tokenpulse_requests_total{{{sel}, outcome="error"}}[{rate}]))',
                  "{{provider}} {{error_class}}")], "reqps", span=16, minimum=0, stack=True),
        single("Spend of this test", "Estimated spend over the selected range.",
               [query(f"sum(increase(tokenpulse_cost_usd_total{{{sel}}}[$__range]))", instant=True)],
               "currencyUSD", span=8, height=8, decimals=4),
    )
    lay.row("Generator health")
    lay.add(
        ts("Generator CPU per worker", "Above ~0.6 of a core the client's own lag grows; above ~0.75 the "
           "measured latencies are inflated (DESIGN.md §6).",
           [query(f"tokenpulse_load_generator_cpu_ratio{{{LOCUST}}}", "{{worker}}")], "percentunit", span=8,
           minimum=0, threshold_lines=thresholds((None, "transparent"), (0.6, "orange"), (0.75, "red"))),
        ts("Client lag p99 per worker", "How late the generator's event loop ran timers; above 5 ms the "
           "figures stop being trustworthy.",
           [query("histogram_quantile(0.99, sum by (worker, le) "
                  f"(rate(tokenpulse_load_client_lag_seconds_bucket{{{LOCUST}}}[{rate}])))", "{{worker}}")],
           "s", span=8, minimum=0, threshold_lines=thresholds((None, "transparent"), (0.005, "red"))),
        ts("Queue wait (open-loop arrival rate)", "Time a scheduled request waited for a free user: "
           "coordinated omission made visible.",
           quantiles("histogram_quantile({q}, sum by (le) "
                     f"(rate(tokenpulse_load_queue_wait_seconds_bucket{{{LOCUST}}}[{rate}])))", "{p}", (0.5, 0.99)),
           "s", span=8, minimum=0),
    )
    return d


def prober_health() -> db.Dashboard:
    d = new_dashboard("tokenpulse-prober-health", "tokenpulse / Prober health",
                      "Is the monitoring itself working: the prober's scrape, its scheduler, probe freshness, "
                      "rule evaluation and alert delivery.")
    lay = Layout(d)
    lay.row("Prober")
    lay.add(
        single("Prober scrape", "up{job=tokenpulse-prober}", [query(f"up{{{PROBER}}}", "{{instance}}")], "none",
               mappings=[UP_MAPPING], steps=thresholds((None, "red"), (1, "green"))),
        single("Targets", "Targets scheduled.", [query(f"sum(tokenpulse_targets{{{PROBER}}})")], "none"),
        single("Probes in flight", "", [query(f"sum(tokenpulse_probes_in_flight{{{PROBER}}})")], "none", graph=True),
        single("Version", "", [query(f"tokenpulse_build_info{{{PROBER}}}", "{{version}}")], "none",
               text_mode=cm.BigValueTextMode.NAME),
        ts("Scheduler lag (p50, p99)", "How late probes start against their schedule.",
           quantiles("histogram_quantile({q}, sum by (instance, le) "
                     f"(rate(tokenpulse_scheduler_lag_seconds_bucket{{{PROBER}}}[5m])))", "{{instance}} {p}",
                     (0.5, 0.99)), "s", span=8, minimum=0),
        ts("Probes per minute by provider", "",
           [query(f"sum by (provider) (rate(tokenpulse_requests_total{{{PROBER}}}[5m])) * 60", "{{provider}}")],
           "short", span=8, minimum=0),
        ts("Misfires per minute", "Scheduled probes skipped because the previous one still ran or the "
           "scheduler was late.",
           [query(f"sum by (provider) (rate(tokenpulse_probe_misfires_total{{{PROBER}}}[5m])) * 60", "{{provider}}")],
           "short", span=8, minimum=0),
        ts("Probe age in intervals", "Time since each target's last finished probe, in probe intervals. "
           "TokenpulseProberStale fires above 3.",
           [query(f"(time() - tokenpulse_last_probe_timestamp_seconds{{{PROBER}}}) / "
                  f"tokenpulse_probe_interval_seconds{{{PROBER}}}", "{{provider}} · {{model}}")], "none", span=12,
           minimum=0, threshold_lines=thresholds((None, "transparent"), (3, "red"))),
        ts("Consecutive failures", "",
           [query(f"tokenpulse_consecutive_failures{{{PROBER}}}", "{{provider}} · {{model}}")],
           "none", span=12, minimum=0),
    )
    lay.row("Prometheus and Alertmanager")
    lay.add(
        ts("Scrape duration", "Time Prometheus takes to scrape the prober's /metrics.",
           [query(f"scrape_duration_seconds{{{PROBER}}}", "{{instance}} duration", "A")], "s", span=8, minimum=0),
        ts("Samples per scrape", "", [query(f"scrape_samples_scraped{{{PROBER}}}", "{{instance}}")], "short", span=8,
           minimum=0),
        ts("Rule group evaluation time", "tokenpulse recording and alert rule groups.",
           [query('max by (rule_group) (prometheus_rule_group_last_duration_seconds{rule_group=~".*tokenpulse.*"})',
                  "{{rule_group}}")], "s", span=8, minimum=0),
        ts("Alert notifications", "Notifications Alertmanager sent, and failed to send, per integration.",
           [query('sum by (integration) (rate(alertmanager_notifications_total{job="alertmanager"}[5m])) * 60',
                  "{{integration}} sent", "A"),
            query('sum by (integration) (rate(alertmanager_notifications_failed_total{job="alertmanager"}[5m])) * 60',
                  "{{integration}} failed", "B")], "short", span=12, minimum=0),
        ts("Alerts sent by Prometheus", "",
           [query("sum(rate(prometheus_notifications_sent_total[5m])) * 60", "sent", "A"),
            query("sum(rate(prometheus_notifications_errors_total[5m])) * 60", "errors", "B")], "short", span=12,
           minimum=0),
    )
    return d


DASHBOARDS = {
    "provider-overview.json": provider_overview,
    "provider-detail.json": provider_detail,
    "load-test.json": load_test,
    "prober-health.json": prober_health,
}


def render(builder: db.Dashboard) -> str:
    return json.dumps(builder.build(), cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(factory()) for name, factory in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out; write nothing")
    args = parser.parse_args(argv)
    rendered = generate()
    if args.check:
        stale = [name for name, text in rendered.items()
                 if not (args.out / name).exists() or (args.out / name).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in args.out.glob("*.json") if p.name not in rendered)
        for name in stale:
            print(f"{args.out / name}: differs from dashboards/generate.py; run it to regenerate", file=sys.stderr)
        for name in extra:
            print(f"{args.out / name}: not produced by dashboards/generate.py", file=sys.stderr)
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
