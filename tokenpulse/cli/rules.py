"""`tokenpulse rules --config F [--out DIR] [--check]`: write the Prometheus recording rules, alert rules
and their promtool tests from the config's objectives (tokenpulse/ops/rules/).

Exit 0 when written (or, with --check, when DIR already holds exactly this output), 1 when --check finds
a difference, 2 on a config problem (`FILE: field.path: problem`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tokenpulse.config import ConfigError, load_config
from tokenpulse.ops.rules import RUNBOOK_ENV, generate


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "rules",
        help="write Prometheus recording/alert rules and their promtool tests from the config's SLOs",
        description="Generate prometheus/rules/recording.yml, prometheus/rules/alerts.yml and "
        "prometheus/tests/generated_test.yml from the config's `slo:` (per-model and per-provider "
        f"overrides included). Runbook links start with ${RUNBOOK_ENV} (or --runbook-base-url).",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the config to read")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("prometheus"),
        metavar="DIR",
        help="folder that gets rules/ and tests/ (default: %(default)s)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if DIR's files differ from what would be written"
    )
    parser.add_argument(
        "--runbook-base-url",
        metavar="URL",
        help=f"runbook page the alerts link to (default: ${RUNBOOK_ENV}, else the relative path docs/runbooks.md;"
        " set one for links that open with a click)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        files = generate(load_config(args.config), source=str(args.config), runbook_base=args.runbook_base_url)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    stale = []
    for rel, text in files.items():
        path = args.out / rel
        if args.check:
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if args.check and not stale:
        print(f"up to date: {', '.join(str(args.out / rel) for rel in files)}")
    if stale:
        print(
            f"out of date (run `tokenpulse rules --config {args.config} --out {args.out}`): {', '.join(stale)}",
            file=sys.stderr,
        )
        return 1
    return 0
