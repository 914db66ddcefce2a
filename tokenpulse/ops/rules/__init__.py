"""`tokenpulse rules`: the Prometheus recording rules, alert rules and their promtool unit tests,
generated from a config's objectives (`slo:`), so that changing an objective is one edit in one file.

Layout: promql.py (matchers and objective cells), recording.py, alerts.py, unittests.py (the generated
promtool tests), render.py (YAML with a header). `generate` returns {relative path: text}; the committed
prometheus/rules/ and prometheus/tests/generated_test.yml are its output for examples/mock.yaml (the
stack's config), and tests/stack/test_rules_generator.py checks they are current.
"""

from __future__ import annotations

import os

from tokenpulse.config import Config, ConfigError
from tokenpulse.metrics import LATENCY_BUCKETS
from tokenpulse.ops.rules.alerts import alert_groups
from tokenpulse.ops.rules.recording import recording_groups
from tokenpulse.ops.rules.render import render_rules, render_tests
from tokenpulse.ops.rules.unittests import generated_tests, slow_tier_tests

#: Where runbook links point unless TOKENPULSE_RUNBOOK_BASE_URL says otherwise: the runbooks' path in the
#: checkout (and in every copy of it), relative, because no public address is known to be the reader's.
#: A notification then names the section to open; set the variable to where you publish the docs (your
#: repository's web view, a wiki) for links that open with a click (docs/observability.md).
DEFAULT_RUNBOOK_BASE_URL = "docs/runbooks.md"
RUNBOOK_ENV = "TOKENPULSE_RUNBOOK_BASE_URL"
RECORDING_FILE = "rules/recording.yml"
ALERTS_FILE = "rules/alerts.yml"
TESTS_FILE = "tests/generated_test.yml"
LONG_TESTS_FILE = "tests/generated_long_test.yml"

__all__ = [
    "ALERTS_FILE",
    "DEFAULT_RUNBOOK_BASE_URL",
    "LONG_TESTS_FILE",
    "RECORDING_FILE",
    "RUNBOOK_ENV",
    "TESTS_FILE",
    "check_objectives",
    "generate",
    "runbook_base_url",
]


def runbook_base_url(explicit: str | None = None) -> str:
    return (explicit or os.environ.get(RUNBOOK_ENV) or DEFAULT_RUNBOOK_BASE_URL).rstrip("#")


def check_objectives(config: Config, source: str) -> None:
    """Objectives the rules cannot express exactly: a TTFT threshold that is not a bucket bound of
    `tokenpulse_ttft_seconds` (the good count would be interpolated), an override of a model the config
    does not probe (a typo would silently keep the default)."""
    problems: list[tuple[str, str]] = []
    bounds = ", ".join(f"{b:g}" for b in LATENCY_BUCKETS)
    thresholds = [("slo.ttft_s", config.slo.ttft_s)]
    thresholds += [(f"slo.models.{m}.ttft_s", o.ttft_s) for m, o in config.slo.models.items() if o.ttft_s]
    thresholds += [(f"slo.providers.{p}.ttft_s", o.ttft_s) for p, o in config.slo.providers.items() if o.ttft_s]
    for path, value in thresholds:
        if value is not None and float(value) not in LATENCY_BUCKETS:
            problems.append(
                (
                    path,
                    f"{value:g} s is not a bucket bound of tokenpulse_ttft_seconds, so the TTFT "
                    f"SLO could not be counted exactly; use one of: {bounds} (or add the bound "
                    "to LATENCY_BUCKETS in tokenpulse/metrics.py)",
                )
            )
    models = {m.id for e in config.endpoints for m in e.models}
    for model in config.slo.models:
        if model not in models:
            problems.append((f"slo.models.{model}", f"no endpoint probes model {model!r}"))
    if problems:
        raise ConfigError(source, problems)


def generate(config: Config, *, source: str, runbook_base: str | None = None) -> dict[str, str]:
    """{path relative to the prometheus/ folder: file text}. Raises ConfigError on objectives the rules
    cannot express."""
    check_objectives(config, source)
    base = runbook_base_url(runbook_base)
    return {
        RECORDING_FILE: render_rules(recording_groups(config.slo), kind="recording", config=config, source=source),
        ALERTS_FILE: render_rules(alert_groups(config, base), kind="alert", config=config, source=source),
        TESTS_FILE: render_tests(generated_tests(config, base), source=source),
        LONG_TESTS_FILE: render_tests(slow_tier_tests(config, base), source=source),
    }
