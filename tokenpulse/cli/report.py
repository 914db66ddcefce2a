"""`tokenpulse report RUN [--compare BASELINE] [--fail-on RULE ...]`: re-render a run's report, compare runs.

Exit codes: 0 (no --fail-on rule breached), 1 (a rule breached: a significant regression beyond its
threshold, for CI gates), 2 (bad arguments, not a run folder, a rule naming a target not in both runs,
or runs that are not comparable without --force).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

_EPILOG = """\
--fail-on RULE (repeatable), compared with --compare's baseline:
  RULE      = METRIC[@TARGET]:[+|-]NUMBER UNIT
  METRIC    = ttft_pNN ttfc_pNN ttfb_pNN e2e_pNN tpot_pNN chunk_gap_pNN queue_wait_pNN output_tps_pNN
              (NN = 50, 90, 95, 99), throughput (output tokens/s), input_throughput, rps, goodput,
              error_rate, cost
  +         fail when the run's value is higher than the baseline's by more than the threshold
  -         fail when it is lower by more than the threshold
            (no sign: the metric's bad direction: up for latencies, error_rate, cost; down for
            throughput, input_throughput, rps, goodput, output_tps)
  UNIT      % (relative to the baseline, any metric); ms or s (latencies); tok/s (throughput,
            input_throughput, output_tps); req/s (rps); usd (cost); none only for goodput and
            error_rate (an absolute 0..1 ratio). `ttft_p95:+10` is refused: 10 what?
  @TARGET   one target: its name in the report, its provider, its model or model/provider (a
            provider serving several models names each of them), or `all`; default: every target in
            both runs and `all`. A target not in both runs is refused (exit 2).
  A rule fails only when the change is beyond the threshold AND significant at --confidence.

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
    p.add_argument("--confidence", type=float, default=0.95, metavar="LEVEL",
                   help="a --fail-on regression must be significant at this level, one-sided (default 0.95)")
    p.add_argument("--force", action="store_true",
                   help="compare runs with different workloads, shapes, reasoning settings or targets "
                        "(the differences are printed)")
    p.add_argument("--json", action="store_true",
                   help="print the summary (or the comparison) as JSON, numbers in base units (s, tokens/s)")
    p.add_argument("--markdown", action="store_true",
                   help="print report.md (with the provider matrix of a run with several providers of one "
                        "model) instead of the console tables: fit for a pull-request comment")
    p.add_argument("--no-write", action="store_true", help="do not rewrite the report files of RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tokenpulse.core.format import render_table
    from tokenpulse.report.build import read_summary, write_report
    from tokenpulse.report.compare import (
        RuleError,
        check_rules,
        comparison,
        comparison_rows,
        compatibility,
        evaluate,
        only_in_one,
        parse_rule,
    )
    from tokenpulse.report.markdown import console_report
    from tokenpulse.report.run import RunError

    def usage(message: str) -> int:
        print(f"tokenpulse report: {message}", file=sys.stderr)
        return 2

    if args.fail_on and not args.compare:
        return usage("--fail-on needs --compare BASELINE_DIR")
    if not 0.5 <= args.confidence < 1.0:
        return usage(f"--confidence {args.confidence:g}: must be in [0.5, 1)")
    try:
        rules = [parse_rule(text) for text in args.fail_on]
    except RuleError as exc:
        return usage(str(exc))
    try:
        summary = read_summary(args.run) if args.no_write else write_report(args.run)
        baseline = read_summary(args.compare) if args.compare else None
    except RunError as exc:
        return usage(str(exc))
    if baseline is None:
        if args.markdown and not args.json:
            from tokenpulse.report.markdown import markdown_report

            print(markdown_report(summary), end="")
            return 0
        print(json.dumps(summary, indent=2) if args.json else console_report(summary))
        return 0
    differences = compatibility(summary, baseline)
    if differences and not args.force:
        return usage("the runs are not comparable (--force compares them anyway):\n  " + "\n  ".join(differences))
    try:
        check_rules(rules, summary, baseline)
    except RuleError as exc:
        return usage(f"--fail-on: {exc}")
    verdicts = evaluate(rules, summary, baseline, args.confidence)
    rows = comparison(summary, baseline, args.confidence)
    only = only_in_one(summary, baseline)
    if args.json:
        print(json.dumps({
            "confidence": args.confidence, "differences": differences, "only_in": only, "comparison": rows,
            "rules": [{"rule": v.rule.text, "target": v.target, "baseline": v.baseline, "value": v.value,
                       "change": _finite(v.change), "relative": v.rule.relative, "z": _finite(v.z),
                       "significant": v.significant, "failed": v.failed, "note": v.note} for v in verdicts]},
                         indent=2, allow_nan=False))
    else:
        for d in differences:
            print(f"differs (--force): {d}")
        for side, names in only.items():
            if names:
                print(f"only in the {side}: {', '.join(names)} (not compared)")
        print(render_table(("target", "metric", "baseline [CI] n", "run [CI] n", "change",
                            f"significant at {args.confidence:.0%}"), comparison_rows(rows)))
        for v in verdicts:
            if v.change is None:
                print(f"skip {v.rule.text} [{v.target}]: {v.note}")
                continue
            change = f"{v.change:+.1%}" if v.rule.relative else f"{v.change:+.6g}"
            note = f"; {v.note}" if v.note else ""
            z = "" if v.z is None else f", z {v.z:.2f}"
            print(f"{'FAIL' if v.failed else 'ok  '} {v.rule.text} [{v.target}]: {v.baseline:.6g} -> "
                  f"{v.value:.6g} ({change}{z}{note})")
    return 1 if any(v.failed for v in verdicts) else 0


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a change from 0, or a z without spread, is null there (the text says more)."""
    return value if value is None or math.isfinite(value) else None
