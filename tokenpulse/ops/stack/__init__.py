"""The observability stack without Docker: mock farm, prober, Prometheus, Alertmanager and (when installed)
Grafana as local processes on loopback ports, plus an Alertmanager webhook sink.

Why derive, not duplicate: the native configs are generated from the committed files (prometheus/,
alertmanager/, dashboards/provisioning/) with only addresses, paths and intervals rewritten, so
`tokenpulse stack up`, docker-compose and the tests all run the same scrape jobs, rules, routes and
dashboards. `tokenpulse stack up` (tokenpulse/cli/stack.py) and tests/stack/test_e2e.py both use this module.

Processes are started in their own session (process group) and stopped in reverse order with SIGTERM,
then SIGKILL after a grace period; their output goes to one log file each in the run directory.

Layout: configs.py (derived configs), ports.py (port picking), supervise.py (child processes), sink.py
(the webhook receiver), native.py (`bring_up`: the composition).
"""

from __future__ import annotations

from tokenpulse.ops.stack.configs import alertmanager_config, find_root, grafana_files, prometheus_config, write_yaml
from tokenpulse.ops.stack.errors import StackError
from tokenpulse.ops.stack.native import DEFAULT_PORTS, StackOptions, bring_up
from tokenpulse.ops.stack.ports import busy_ports, free_port, port_free, url_host
from tokenpulse.ops.stack.sink import Notification, WebhookSink
from tokenpulse.ops.stack.supervise import (
    Service,
    Stack,
    alertmanager_argv,
    find_binary,
    prometheus_argv,
    python_module,
)

__all__ = [
    "DEFAULT_PORTS",
    "Notification",
    "Service",
    "Stack",
    "StackError",
    "StackOptions",
    "WebhookSink",
    "alertmanager_argv",
    "alertmanager_config",
    "bring_up",
    "busy_ports",
    "find_binary",
    "find_root",
    "free_port",
    "grafana_files",
    "port_free",
    "prometheus_argv",
    "prometheus_config",
    "python_module",
    "url_host",
    "write_yaml",
]
