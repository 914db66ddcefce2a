"""TTFT and TTFC in Locust's web UI as a tab of their own, apart from its request statistics.

Why apart: Locust counts every `request` event as a request. Firing TTFT and TTFC as request events (as
tokenpulse once did) tripled the RPS, the request count and the Aggregated row. Here Locust's request
table holds one entry per request (E2E: response time, failures by error class), and this table
holds the two token latencies per target, in a `RequestStats` of its own (Locust's percentile
buckets) that no RPS is derived from. The master fills it from the observations its workers report
(the same ones the Prometheus exporter reads), a local run from its own requests; the web UI shows it
through Locust's extension points (`extended_tabs`, `extended_tables`, `extended_stats`).
"""

from __future__ import annotations

import json
from typing import Any

from locust.stats import RequestStats

TAB_KEY = "tokenpulse-token-latency"
_STRUCTURE = [
    {"key": "name", "title": "Target"},
    {"key": "method", "title": "Latency"},
    {"key": "num", "title": "# requests"},
    {"key": "median", "title": "Median (ms)"},
    {"key": "p95", "title": "95%ile (ms)"},
    {"key": "p99", "title": "99%ile (ms)"},
    {"key": "max", "title": "Max (ms)"},
]


class TokenLatencyTable:
    """TTFT and TTFC per target name; never part of Locust's request statistics."""

    def __init__(self) -> None:
        self.stats = RequestStats(use_response_times_cache=False)

    def observe(self, name: str, ttft_s: float | None, ttfc_s: float | None) -> None:
        if ttft_s is not None:
            self.stats.log_request("TTFT", name, round(ttft_s * 1000.0), 0)  # Locust keeps whole ms
        if ttfc_s is not None:
            self.stats.log_request("TTFC", name, round(ttfc_s * 1000.0), 0)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for (name, method), entry in sorted(self.stats.entries.items()):
            out.append({"name": name, "safe_name": name, "method": method, "num": entry.num_requests,
                        "median": entry.median_response_time,
                        "p95": entry.get_response_time_percentile(0.95),
                        "p99": entry.get_response_time_percentile(0.99),
                        "max": round(entry.max_response_time or 0.0, 1)})
        return out


def install_tab(environment: Any, table: TokenLatencyTable) -> bool:
    """Add the tab to the web UI of this process (master or local), if it has one."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return False
    from flask import request

    web_ui.template_args["extended_tabs"] = [{"title": "Token latency", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": _STRUCTURE}]

    @web_ui.app.after_request
    def _add_rows(response: Any) -> Any:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        data = response.get_json()
        data["extended_stats"] = [{"key": TAB_KEY, "data": table.rows()}]
        response.set_data(json.dumps(data))
        return response

    return True
