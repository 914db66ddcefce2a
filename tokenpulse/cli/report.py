"""`tokenpulse report RUN [--compare BASELINE] [--fail-on RULE ...]`: re-render a run's report, compare runs.

Exit codes: 0 (no --fail-on rule breached), 1 (a rule breached: a regression, for CI gates), 2 (bad
arguments or not a run folder).
"""

from __future__ import annotations

import argparse
import json
import sys

_EPILOG = """\
--fail-on RULE (repeatable), compared with --compare's baseline:
  RULE      = METRIC[@TARGET]:[+|-]NUMBER[%|ms|s]
  METRIC    = ttft_pNN ttfc_pNN ttfb_pNN e2e_pNN tpot_pNN chunk_gap_pNN queue_wait_pNN output_tps_pNN
              (NN = 50, 90, 95, 99), throughput (output tokens/s), input_throughput, rps, goodput,
              error_rate, cost
  +         fail when the run's value is higher than the baseline's by more than the threshold
  -         fail when it is lower by more than the threshold
            (no sign: the metric's bad direction: up for latencies, error_rate, cost; down for
            throughput, input_throughput, rps, goodput, output_tps)
  %         relative to the baseline; ms / s absolute (latencies only); a bare number is absolute in the
            metric's unit (seconds, tokens/s, requests/s, a 0..1 ratio, USD)
  @TARGET   one target (its name in the report, or `all`); default: every target in both runs and `all`

examples:
  tokenpulse report runs/today --compare runs/baseline --fail-on 'ttft_p95:+10%' --fail-on 'throughput:-15%'
  tokenpulse report runs/today --compare runs/baseline --fail-on 'tpot_p50@swiftinfer:+5ms'
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="re-render a load-test run's report; compare it with a baseline run",
        description="Recompute summary.json, report.md and report.html of a run folder from its records; "
                    "with --compare, print the run against a baseline and exit 1 if a --fail-on rule is breached.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="run folder written by `tokenpulse load`")
    p.add_argument("--compare", metavar="BASELINE_DIR", help="baseline run folder")
    p.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                   help="regression rule (see below); needs --compare")
    p.add_argument("--json", action="store_true", help="print the summary (or the comparison) as JSON")
    p.add_argument("--no-write", action="store_true", help="do not rewrite the report files of RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tokenpulse.core.format import render_table
    from tokenpulse.report.build import read_summary, write_report
    from tokenpulse.report.compare import RuleError, comparison_rows, evaluate, parse_rule
    from tokenpulse.report.markdown import console_report
    from tokenpulse.report.run import RunError

    if args.fail_on and not args.compare:
        print("tokenpulse report: --fail-on needs --compare BASELINE_DIR", file=sys.stderr)
        return 2
    try:
        rules = [parse_rule(text) for text in args.fail_on]
    except RuleError as exc:
        print(f"tokenpulse report: {exc}", file=sys.stderr)
        return 2
    try:
        summary = read_summary(args.run) if args.no_write else write_report(args.run)
        baseline = read_summary(args.compare) if args.compare else None
    except RunError as exc:
        print(f"tokenpulse report: {exc}", file=sys.stderr)
        return 2
    if baseline is None:
        print(json.dumps(summary, indent=2) if args.json else console_report(summary))
        return 0
    verdicts = evaluate(rules, summary, baseline)
    failed = [v for v in verdicts if v.failed]
    if args.json:
        print(json.dumps({"comparison": comparison_rows(summary, baseline),
                          "rules": [{"rule": v.rule.text, "target": v.target, "baseline": v.baseline,
                                     "value": v.value, "change": v.change, "failed": v.failed} for v in verdicts]},
                         indent=2))
    else:
        print(render_table(("target", "metric", "baseline", "run", "change"), comparison_rows(summary, baseline)))
        for v in verdicts:
            if v.failed and v.change is None:
                print(f"FAIL {v.rule.text} [{v.target}]: not in both runs")
            elif v.change is not None:
                change = f"{v.change:+.1%}" if v.rule.relative else f"{v.change:+.6g}"
                print(f"{'FAIL' if v.failed else 'ok  '} {v.rule.text} [{v.target}]: {v.baseline:.6g} -> "
                      f"{v.value:.6g} ({change})")
    return 1 if failed else 0
