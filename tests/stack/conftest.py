"""Fixtures of the observability-stack tests (tests/stack/); helpers live in stack_helpers.py.

The Prometheus and Alertmanager binaries come from Debian's `prometheus` and `prometheus-alertmanager`
packages (.ci/run installs them). Without them a test is skipped on a developer's machine, but with
CI=true it fails: CI must run every one of these tests.
"""

from __future__ import annotations

import pytest
from stack_helpers import require

from tokenpulse.ops.stack.supervise import ALERTMANAGER_BINARIES, PROMETHEUS_BINARIES


@pytest.fixture(scope="session")
def promtool() -> str:
    return require("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require(PROMETHEUS_BINARIES)


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    return require(ALERTMANAGER_BINARIES)


@pytest.fixture(scope="session")
def amtool() -> str:
    return require("amtool")
