"""Server-rendered HTML status page, readable without JavaScript (and in a text browser).

Why plain HTML: the page is for a person glancing at provider health, like OpenRouter's per-provider
uptime and latency view; it must work behind any proxy, in headless Chromium for the test, and with
scripts disabled. It refreshes itself with a meta refresh. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from tokenpulse.core.format import fmt_number, fmt_seconds

REFRESH_S = 30
MAX_FAILURES_SHOWN = 5

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.6rem 0 .4rem}
.meta{color:#5b6475;margin:0 0 1rem}.meta a{color:#2457c5}
table{border-collapse:collapse;width:100%;table-layout:fixed;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.06)}
th,td{padding:.45rem .6rem;border-bottom:1px solid #e6e8ee;text-align:right;vertical-align:top;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
th{background:#f1f3f7;font-weight:600;font-size:.85rem;width:5.6rem;white-space:normal}
th:first-child{width:11rem}th:nth-child(2){width:6.8rem}th.fail{width:30%}
th:first-child,td:first-child,td.fail,th.fail{text-align:left}th:nth-child(2),td:nth-child(2){text-align:center}
td.fail{font-size:.85rem;color:#3b4252;white-space:normal}
.badge{display:inline-block;min-width:5.2rem;text-align:center;padding:.1rem .5rem;border-radius:1rem;
font-weight:600;font-size:.8rem}
.up{background:#dcf5e3;color:#146c2e}.degraded{background:#fff1c9;color:#8a5a00}
.down{background:#fde0df;color:#a4161a}.unknown{background:#eceef2;color:#5b6475}
.muted{color:#8a93a5}.cls{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem}
ul{margin:0;padding-left:1rem}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _failures(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return '<span class="muted">none</span>'
    items = []
    for f in failures[:MAX_FAILURES_SHOWN]:
        status = f" HTTP {_e(f['http_status'])}" if f.get("http_status") is not None else ""
        side = "" if f.get("counts_against_availability") else " (caller-side)"
        items.append(f'<li><span class="cls">{_e(f["error_class"])}</span>{status}{_e(side)} '
                     f'<span class="muted">{_e(f["at"])}</span><br>{_e(f["message"])}</li>')
    more = len(failures) - MAX_FAILURES_SHOWN
    tail = f'<li class="muted">and {more} more</li>' if more > 0 else ""
    return f"<ul>{''.join(items)}{tail}</ul>"


def _row(t: Mapping[str, Any]) -> str:
    provider = _e(t["provider"])
    if t["profile"] != "default":
        provider += f' <span class="muted">({_e(t["profile"])})</span>'
    state = _e(t["state"])
    cells = [
        f'<td data-provider="{_e(t["provider"])}">{provider}</td>',
        f'<td><span class="badge {state}">{state}</span></td>',
        f"<td>{_pct(t['uptime_1h'])}</td>",
        f"<td>{_pct(t['uptime_1d'])}</td>",
        f"<td>{_e(fmt_seconds(t['last_ttft_s']))}</td>",
        f"<td>{_e(fmt_seconds(t['median_ttft_s']))}</td>",
        f"<td>{_e(fmt_number(t['last_tokens_per_s']))}</td>",
        f"<td>{_e(fmt_number(t['median_tokens_per_s']))}</td>",
        f"<td>{_e(_age(t['last_probe_age_s']))}</td>",
        f'<td class="fail">{_failures(t["recent_failures"])}</td>',
    ]
    return f"<tr>{''.join(cells)}</tr>"


_HEAD = ("<tr><th>Provider</th><th>State</th><th>Uptime 1 h</th><th>Uptime 1 d</th><th>TTFT last</th>"
         "<th>TTFT median</th><th>tok/s last</th><th>tok/s median</th><th>Last probe</th>"
         '<th class="fail">Recent failures</th></tr>')


def render_status_page(doc: Mapping[str, Any]) -> str:
    """The whole page for a status document (see `tokenpulse.prober.status.status_document`)."""
    prober = doc["prober"]
    states = prober["states"]
    lag = prober["scheduler_lag_p99_s"]
    summary = (f"{prober['targets']} targets: {states['up']} up, {states['degraded']} degraded, "
               f"{states['down']} down, {states['unknown']} unknown · "
               f"{'ready' if doc['ready'] else 'first round in progress'} · "
               f"scheduler lag p99 {fmt_seconds(lag)} · generated {doc['generated_at']}")
    sections = []
    for group in doc["groups"]:
        rows = "".join(_row(t) for t in group["targets"])
        sections.append(f'<section><h2>{_e(group["model"])} <span class="muted">on {_e(group["endpoint"])}'
                        f"</span></h2><table><thead>{_HEAD}</thead><tbody>{rows}</tbody></table></section>")
    for pending in doc.get("pending_discovery", []):
        sections.append(f'<section><h2>{_e(pending["model"])} <span class="muted">on {_e(pending["endpoint"])}'
                        f'</span></h2><p class="muted">provider discovery pending: {_e(pending["error"])}</p>'
                        "</section>")
    if not sections:
        sections.append('<p class="muted">No targets yet.</p>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tokenpulse status</title><style>{_STYLE}</style></head><body>"
        "<h1>tokenpulse provider status</h1>"
        f'<p class="meta">{_e(summary)} · <a href="/api/status">JSON</a> · <a href="/metrics">metrics</a></p>'
        f"{''.join(sections)}"
        f'<p class="meta">tokenpulse {_e(doc["version"])}. Uptime counts provider-side failures only '
        "(rate limits and client errors are shown but not counted). Refreshes every "
        f"{REFRESH_S} s.</p></body></html>\n"
    )
