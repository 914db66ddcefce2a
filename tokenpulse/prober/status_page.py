"""Server-rendered HTML status page, readable without JavaScript (and in a text browser).

Why plain HTML: the page is for a person glancing at provider health, like OpenRouter's per-provider
uptime and latency view; it must work behind any proxy, in headless Chromium for the test, and with
scripts disabled. It refreshes itself with a meta refresh. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from tokenpulse.core.format import fmt_number, fmt_seconds

REFRESH_S = 30
MAX_FAILURES_SHOWN = 5

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.6rem 0 .4rem}
.meta{color:#5b6475;margin:0 0 1rem}.meta a{color:#2457c5}
.banner{padding:.7rem 1rem;border-radius:.5rem;font-weight:600;margin:0 0 1rem}
.banner.up{background:#dcf5e3;color:#146c2e}.banner.degraded{background:#fff1c9;color:#8a5a00}
.banner.down{background:#fde0df;color:#a4161a}.banner.blind{background:#ebe2fb;color:#4b2a8c}
.banner.unknown{background:#eceef2;color:#5b6475}
.incidents{background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.06);padding:.6rem 1rem .6rem 2rem;margin:0 0 1rem}
.incidents li{margin:.15rem 0}.ongoing{font-weight:600}
table{border-collapse:collapse;width:100%;table-layout:fixed;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.06)}
th,td{padding:.45rem .6rem;border-bottom:1px solid #e6e8ee;text-align:right;vertical-align:top;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
th{background:#f1f3f7;font-weight:600;font-size:.85rem;width:5.2rem;white-space:normal}
th.prov{width:11rem}th.st{width:6.6rem}th.hist{width:12rem}th.fail{width:26%}
th.prov,td.prov,td.fail,th.fail,th.hist,td.hist{text-align:left}th.st,td.st{text-align:center}
td.prov{white-space:normal}td.fail{font-size:.85rem;color:#3b4252;white-space:normal}
.badge{display:inline-block;min-width:5.2rem;text-align:center;padding:.1rem .5rem;border-radius:1rem;
font-weight:600;font-size:.8rem}
.up{background:#dcf5e3;color:#146c2e}.degraded{background:#fff1c9;color:#8a5a00}
.down{background:#fde0df;color:#a4161a}.unknown{background:#eceef2;color:#5b6475}
.blind{background:#ebe2fb;color:#4b2a8c}
.muted{color:#8a93a5}.small{font-size:.78rem}.cls{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem}
.bars{display:flex;gap:1px;height:1.5rem;align-items:stretch}.bars span{flex:1;border-radius:1px;min-width:1px}
.b0{background:#e3e6ec}.b1{background:#2fa84f}.b2{background:#9bd16f}.b3{background:#f2c94c}.b4{background:#f2994a}
.b5{background:#d64545}.bc{background:#a58ad8}
.axis{display:flex;justify-content:space-between;font-size:.7rem;color:#8a93a5}
ul{margin:0;padding-left:1rem}
@media (max-width:760px){
body{margin:.8rem}table,thead,tbody,tr,td{display:block;width:100%;box-sizing:border-box}thead{display:none}
tr{border-bottom:2px solid #d5d9e2;padding:.3rem 0}td{border:0;padding:.2rem .5rem;text-align:left;white-space:normal}
td[data-label]::before{content:attr(data-label) ": ";color:#5b6475;font-size:.8rem}
td.st,td.prov,td.hist{text-align:left}td.hist::before{display:block}
}
"""

#: Bar colour classes by the share of good probes in a bucket (provider-side results only).
_SHARE_CLASSES = ((0.99, "b1"), (0.95, "b2"), (0.75, "b3"), (0.5, "b4"), (0.0, "b5"))


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_span(seconds)} ago"


def _hhmm(stamp: str | None) -> str:
    """`2030-01-01T20:46:00+00:00` -> `20:46` (the page states times in UTC)."""
    return "-" if not stamp else stamp[11:16]


def _uptime(value: float | None, covers_s: float | None, window_s: float) -> str:
    """The uptime, labelled with the time it covers when that is shorter than its window."""
    text = _pct(value)
    if value is not None and covers_s is not None and covers_s < window_s * 0.98:
        text += f'<br><span class="muted small">over {_e(_span(covers_s))}</span>'
    return text


def _failures(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return '<span class="muted">none</span>'
    items = []
    for f in failures[:MAX_FAILURES_SHOWN]:
        status = f" HTTP {_e(f['http_status'])}" if f.get("http_status") is not None else ""
        side = ("" if f.get("counts_against_availability") else " (served by another provider)"
                if f.get("error_class") == "wrong_provider" else " (caller-side)")
        count = int(f.get("count") or 1)
        when = _e(f["at"])
        times = ""
        if count > 1:
            times = f" <b>×{count}</b>"
            when = f"{_e(_hhmm(f.get('first_at')))}–{_e(_hhmm(f['at']))} UTC"
        items.append(f'<li><span class="cls">{_e(f["error_class"])}</span>{status}{_e(side)}{times} '
                     f'<span class="muted">{when}</span><br>{_e(f["message"])}</li>')
    more = len(failures) - MAX_FAILURES_SHOWN
    tail = f'<li class="muted">and {more} more</li>' if more > 0 else ""
    return f"<ul>{''.join(items)}{tail}</ul>"


def _bar_class(ok: int, failed: int, caller: int) -> str:
    if ok + failed == 0:
        return "bc" if caller else "b0"
    share = ok / (ok + failed)
    return next(cls for bound, cls in _SHARE_CLASSES if share >= bound)


def _bar_labels(bars: Mapping[str, Any]) -> list[str]:
    """`HH:MM` of each bucket's start (every target's buckets share the grid, so computed once a page)."""
    first = bars.get("first_start")
    if not first:
        return []
    start = datetime.fromisoformat(first).timestamp()
    width = float(bars["width_s"])
    return [datetime.fromtimestamp(start + i * width, UTC).strftime("%H:%M") for i in range(len(bars["ok"]))]


def _bars(bars: Mapping[str, Any], labels: Sequence[str]) -> str:
    """One span per bucket; titles hold only digits and fixed words, so they need no escaping."""
    spans = []
    for label, ok, failed, caller in zip(labels, bars["ok"], bars["failed"], bars["caller_side"], strict=False):
        if ok + failed + caller == 0:
            spans.append(f'<span class="b0" title="{label} UTC: no probes"></span>')
            continue
        extra = f", {int(caller)} caller-side" if caller else ""
        spans.append(f'<span class="{_bar_class(ok, failed, caller)}" title="{label} UTC: {int(ok)}/'
                     f'{int(ok + failed)} ok{extra}"></span>')
    return (f'<div class="bars" role="img" aria-label="share of good probes per 15 minutes, last 24 h">'
            f'{"".join(spans)}</div><div class="axis"><span>24 h ago</span><span>now</span></div>')


def _price(price: Mapping[str, Any] | None) -> str:
    """`$0.09 / $0.45 per M tokens` (prompt / completion), three significant digits."""
    if not price:
        return ""
    return f"${price['prompt_per_mtok']:.3g} / ${price['completion_per_mtok']:.3g} per M tokens"


def _provider_cell(t: Mapping[str, Any]) -> str:
    provider = _e(t["provider"])
    if t["profile"] != "default":
        provider += f' <span class="muted">({_e(t["profile"])})</span>'
    details = [d for d in (t.get("quantization"), _price(t.get("price"))) if d]
    if details:
        provider += f'<br><span class="muted small">{_e(" · ".join(details))}</span>'
    return provider


def _row(t: Mapping[str, Any], labels: dict[str, list[str]]) -> str:
    state = _e(t["state"])
    reason = f'<br><span class="muted small">{_e(t["blind_reason"])}</span>' if t.get("blind_reason") else ""
    cells = [
        f'<td class="prov" data-provider="{_e(t["provider"])}">{_provider_cell(t)}</td>',
        f'<td class="st" data-label="State"><span class="badge {state}">{state}</span>{reason}</td>',
        f'<td class="hist" data-label="Last 24 h">{_history(t.get("history_bars"), labels)}</td>',
        f'<td data-label="Uptime 1 h">{_uptime(t["uptime_1h"], t.get("uptime_1h_covers_s"), 3600)}</td>',
        f'<td data-label="Uptime 1 d">{_uptime(t["uptime_1d"], t.get("uptime_1d_covers_s"), 86400)}</td>',
        f'<td data-label="TTFT last · median">{_e(fmt_seconds(t["last_ttft_s"]))}<br>'
        f'<span class="muted">{_e(fmt_seconds(t["median_ttft_s"]))}</span></td>',
        f'<td data-label="tok/s last · median">{_e(fmt_number(t["last_tokens_per_s"]))}<br>'
        f'<span class="muted">{_e(fmt_number(t["median_tokens_per_s"]))}</span></td>',
        f'<td data-label="Last probe">{_e(_age(t["last_probe_age_s"]))}</td>',
        f'<td class="fail" data-label="Recent failures">{_failures(t["recent_failures"])}</td>',
    ]
    return f"<tr>{''.join(cells)}</tr>"


def _history(bars: Mapping[str, Any] | None, labels: dict[str, list[str]]) -> str:
    if not bars or not bars.get("first_start"):
        return '<span class="muted">no history</span>'
    key = f"{bars['first_start']}/{len(bars['ok'])}"
    if key not in labels:
        labels[key] = _bar_labels(bars)
    return _bars(bars, labels[key])


_HEAD = ('<tr><th class="prov">Provider</th><th class="st">State</th><th class="hist">Last 24 h</th>'
         "<th>Uptime 1 h</th><th>Uptime 1 d</th><th>TTFT last<br>median 1 h</th><th>tok/s last<br>median 1 h</th>"
         '<th>Last probe</th><th class="fail">Recent failures</th></tr>')


def _incidents(incidents: Sequence[Mapping[str, Any]]) -> str:
    if not incidents:
        return ""
    items = []
    for i in incidents:
        what = _e(i["state"]) + (f" ({_e(i['reason'])})" if i.get("reason") else "")
        where = f'<span class="muted">{_e(i["model"])} on {_e(i["endpoint"])}</span>'
        if i["ongoing"]:
            items.append(f'<li class="ongoing">{_e(i["provider"])} {what} since {_e(_hhmm(i["since"]))} UTC, '
                         f'{_e(_span(i["duration_s"]))} · {where}</li>')
        else:
            items.append(f'<li>{_e(i["provider"])} was {what} {_e(_hhmm(i["since"]))}–{_e(_hhmm(i["until"]))} '
                         f'UTC ({_e(_span(i["duration_s"]))}) · {where}</li>')
    return f'<h2>Incidents, last 24 h</h2><ul class="incidents">{"".join(items)}</ul>'


def render_status_page(doc: Mapping[str, Any]) -> str:
    """The whole page for a status document (see `tokenpulse.prober.status.status_document`)."""
    prober = doc["prober"]
    states = prober["states"]
    lag = prober["scheduler_lag_p99_s"]
    counts = ", ".join(f"{states.get(s, 0)} {s}" for s in ("up", "degraded", "down", "blind", "unknown"))
    summary = (f"{prober['targets']} targets: {counts} · "
               f"{'ready' if doc['ready'] else 'first round in progress'} · "
               f"scheduler lag p99 {fmt_seconds(lag)} · prober errors {prober.get('prober_errors', 0)} · "
               f"generated {doc['generated_at']}")
    banner = doc.get("banner") or {"level": "unknown", "text": ""}
    sections = [_incidents(doc.get("incidents") or [])]
    for failed in doc.get("failed_discovery", []):
        sections.append(f'<p class="banner degraded">Provider discovery of {_e(failed["model"])} on '
                        f'{_e(failed["endpoint"])} failed (probing the providers found before): '
                        f'{_e(failed["error"])}</p>')
    labels: dict[str, list[str]] = {}
    for group in doc["groups"]:
        rows = "".join(_row(t, labels) for t in group["targets"])
        sections.append(f'<section><h2>{_e(group["model"])} <span class="muted">on {_e(group["endpoint"])}'
                        f"</span></h2><table><thead>{_HEAD}</thead><tbody>{rows}</tbody></table></section>")
    for pending in doc.get("pending_discovery", []):
        sections.append(f'<section><h2>{_e(pending["model"])} <span class="muted">on {_e(pending["endpoint"])}'
                        f'</span></h2><p class="muted">provider discovery pending: {_e(pending["error"])}</p>'
                        "</section>")
    if not doc["groups"] and not doc.get("pending_discovery"):
        sections.append('<p class="muted">No targets yet.</p>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tokenpulse status</title><style>{_STYLE}</style></head><body>"
        "<h1>tokenpulse provider status</h1>"
        f'<p class="banner {_e(banner["level"])}">{_e(banner["text"])}</p>'
        f'<p class="meta">{_e(summary)} · <a href="/api/status">JSON</a> · <a href="/metrics">metrics</a></p>'
        f"{''.join(sections)}"
        f'<p class="meta">tokenpulse {_e(doc["version"])}. Times in UTC. Uptime counts provider-side failures '
        "only (rate limits and client errors are shown but not counted); bars are 15-minute buckets coloured "
        "by the share of good probes (purple: only caller-side errors, grey: no probes). Refreshes every "
        f"{REFRESH_S} s.</p></body></html>\n"
    )
