"""The servers' own metrics in the report: per step, over the run, and checked against the records.

Read from server-metrics.jsonl (runfolder/servermetrics.py describes its lines; any line that is not a
sample is skipped, never fatal). Per /metrics URL:
- per measured step (its window, as the client figures): gauges as mean and max over the samples
  inside it (`n` samples); counters as a rate per second, the increase (resets counted from zero) from
  the last sample at or before the window's start to the first at or after its end, over that span;
- the token cross-check over the run: the increase of the server's generated-token counter from the
  first to the last successful scrape, against the output tokens of the records that started and ended
  between them (of the endpoints the URL serves, all records for a URL given by hand); a difference
  above TOKEN_MISMATCH_RATIO of the client's count is a warning (other clients of the same server,
  records whose counts are estimates because the server sent no usage, e.g. requests cut off at the
  drain, which the warning counts, or a server counting prompt or draft tokens as generated);
- warnings: scrapes that failed (absent or unparseable /metrics), bodies cut at the cap.
The time series (`server_series`) feed report.html's plots on the run's time axis (seconds since start).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from typing import Any

from tokenpulse.core.stats import finite_values
from tokenpulse.report.run import RunData, record_end
from tokenpulse.runfolder.records import iter_jsonl
from tokenpulse.runfolder.servermetrics import (
    COUNTER,
    QUANTITIES,
    QUANTITY,
    SERVER_METRICS_FILE,
    TOKEN_MISMATCH_RATIO,
    counter_increase,
)

Sample = tuple[float, dict[str, float]]


def _number(value: Any) -> float | None:
    got = finite_values((value,))
    return got[0] if got and type(value) is not bool else None


def read_samples(run: RunData) -> dict[str, dict[str, Any]]:
    """URL -> {"ok": [(time, values)] sorted, "errors": Counter-like dict, "server", "endpoints",
    "truncated"} from the run folder's server-metrics.jsonl (absent file: {})."""
    path = run.path / SERVER_METRICS_FILE
    if not path.exists():
        return {}
    sources: dict[str, dict[str, Any]] = {}
    for line in iter_jsonl(path):
        url, at = line.get("url"), _number(line.get("time"))
        if type(url) is not str or at is None:
            continue
        src = sources.setdefault(url, {"ok": [], "errors": defaultdict(int), "server": None, "endpoints": [],
                                       "truncated": 0, "samples": 0})
        src["samples"] += 1
        endpoints = line.get("endpoints")
        if type(endpoints) is list and not src["endpoints"]:
            src["endpoints"] = [e for e in endpoints if type(e) is str]
        values = line.get("values")
        if "error" in line or type(values) is not dict:
            src["errors"][str(line.get("error"))[:200]] += 1
            continue
        if type(line.get("server")) is str:
            src["server"] = line["server"]
        if line.get("truncated") is True:
            src["truncated"] += 1
        clean = {k: v for k, v in ((k, _number(v)) for k, v in values.items() if k in QUANTITY) if v is not None}
        src["ok"].append((at, clean))
    for src in sources.values():
        src["ok"].sort(key=lambda s: s[0])
    return sources


def _gauge(samples: list[Sample], key: str) -> dict[str, Any] | None:
    vs = [v[key] for _, v in samples if key in v]
    if not vs:
        return None
    return {"mean": sum(vs) / len(vs), "max": max(vs), "n": len(vs)}


def _counter(samples: list[Sample], key: str) -> dict[str, Any] | None:
    pts = [(t, v[key]) for t, v in samples if key in v]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    increase = counter_increase(v for _, v in pts)
    span = pts[-1][0] - pts[0][0]
    return {"increase": increase, "rate_per_s": increase / span, "span_s": span, "n": len(pts)}


def quantities(samples: list[Sample], counter_samples: list[Sample] | None = None) -> dict[str, Any]:
    """Gauges over `samples`, counters over `counter_samples` (default the same)."""
    out: dict[str, Any] = {}
    for q in QUANTITIES:
        got = _counter(counter_samples if counter_samples is not None else samples, q.key) \
            if q.kind == COUNTER else _gauge(samples, q.key)
        if got is not None:
            out[q.key] = got
    hits, queries = out.get("prefix_cache_hits"), out.get("prefix_cache_queries")
    if hits and queries and queries["increase"] > 0:
        out["prefix_cache_hit_ratio"] = {"value": hits["increase"] / queries["increase"],
                                         "queries": queries["increase"]}
    return out


def window_quantities(samples: list[Sample], start: float, end: float) -> dict[str, Any]:
    """A window's gauges (samples inside) and counters (bracketing samples: the last at or before the
    start to the first at or after the end, so the increase covers the whole window)."""
    times = [t for t, _ in samples]
    inside = samples[bisect_left(times, start):bisect_right(times, end)]
    lo = max(0, bisect_right(times, start) - 1)
    hi = min(len(samples), bisect_left(times, end) + 1)
    return quantities(inside, samples[lo:hi])


def token_check(run: RunData, samples: list[Sample], endpoints: list[str]) -> dict[str, Any] | None:
    """The server's generated tokens over the scraped span against the records' output tokens."""
    counted = [(t, v) for t, v in samples if "generated_tokens" in v]
    if len(counted) < 2:
        return None
    first, last = counted[0][0], counted[-1][0]
    wanted = set(endpoints)
    client = inside = outside = estimated = estimated_tokens = 0
    for r in run.records:
        if wanted and r.get("endpoint") not in wanted:
            continue
        if float(r["start_time"]) >= first and record_end(r) <= last:
            tokens = r.get("output_tokens") or 0
            client += tokens
            inside += 1
            if r.get("tokens_estimated"):
                estimated += 1
                estimated_tokens += tokens
        else:
            outside += 1
    server = counter_increase(v["generated_tokens"] for _, v in counted)
    ratio = (server - client) / client if client else None
    return {"server_tokens": server, "client_tokens": client, "difference_ratio": ratio,
            "records": inside, "records_outside": outside, "span_s": last - first,
            "estimated_records": estimated, "estimated_tokens": estimated_tokens,
            "endpoints": sorted(wanted) or None,
            "mismatch": bool(ratio is None and server > 0 or ratio is not None and abs(ratio) > TOKEN_MISMATCH_RATIO)}


def server_metrics_summary(run: RunData, steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """summary.json's `server_metrics` (None when the run scraped nothing); `steps` are the summary's."""
    sources = read_samples(run)
    if not sources:
        return None
    start = run.run_start
    out = []
    for url, src in sources.items():
        samples: list[Sample] = src["ok"]
        per_step = {str(s["index"]): window_quantities(samples, start + s["window"][0], start + s["window"][1])
                    for s in steps if s.get("measured")}
        out.append({
            "url": url, "server": src["server"], "samples": src["samples"], "ok": len(samples),
            "errors": dict(src["errors"]), "truncated": src["truncated"], "endpoints": src["endpoints"] or None,
            "run": quantities(samples), "steps": per_step,
            "token_check": token_check(run, samples, src["endpoints"]),
        })
    return {"file": SERVER_METRICS_FILE, "mismatch_ratio": TOKEN_MISMATCH_RATIO, "sources": out}


def server_warnings(block: dict[str, Any] | None) -> list[str]:
    """Plain sentences for summary.json's warnings."""
    if not block:
        return []
    out: list[str] = []
    for src in block["sources"]:
        url, errors = src["url"], src["errors"]
        failed = sum(errors.values())
        if failed:
            first = next(iter(errors))
            if not src["ok"]:
                out.append(f"server metrics {url}: none of {src['samples']} scrapes gave metrics ({first}): the "
                           "report has no server figures for it (is /metrics enabled, e.g. llama.cpp --metrics, "
                           "SGLang --enable-metrics?)")
            else:
                out.append(f"server metrics {url}: {failed} of {src['samples']} scrapes failed ({first}); the "
                           "figures use the other samples")
        if src["truncated"]:
            out.append(f"server metrics {url}: {src['truncated']} bodies passed the size cap and were read only "
                       "in part: quantities listed after the cap are missing")
        check = src.get("token_check")
        if check and check["mismatch"]:
            ratio = check["difference_ratio"]
            diff = "the client counted none" if ratio is None else f"{ratio:+.1%}"
            estimated = (f", {check['estimated_records']} of them with estimated counts ({check['estimated_tokens']} "
                         "tokens: no usage from the server, e.g. cut off at the drain)" if check["estimated_records"]
                         else "")
            out.append(f"server metrics {url}: the server generated {check['server_tokens']:.0f} tokens while the "
                       f"run's records hold {check['client_tokens']} output tokens ({check['records']} requests"
                       f"{estimated}; {diff}, above {TOKEN_MISMATCH_RATIO:.0%}): other clients of the server, "
                       "estimated counts, or tokens one side did not count")
    return out


def server_series(run: RunData) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """URL -> [(seconds since the run start, values)] for the plots."""
    start = run.run_start
    return {url: [(t - start, v) for t, v in src["ok"]] for url, src in read_samples(run).items() if src["ok"]}


SERVER_HEADERS = ("step", "level", "samples", "running mean", "running max", "waiting mean", "waiting max",
                  "KV cache mean", "KV cache max", "generated tok/s", "prefix hit rate")


def _g(q: dict[str, Any], key: str, stat: str, pct: bool = False) -> str:
    v = (q.get(key) or {}).get(stat)
    if v is None:
        return "-"
    return f"{v * 100:.0f}%" if pct else f"{v:.1f}"


def _hit(q: dict[str, Any]) -> str:
    ratio = q.get("prefix_cache_hit_ratio")
    if ratio:
        return f"{ratio['value'] * 100:.0f}%"
    return _g(q, "prefix_cache_hit_rate", "mean", pct=True)


def server_rows(summary: dict[str, Any], source: dict[str, Any]) -> list[list[str]]:
    """Per measured step of one /metrics source: the gauges' mean and max over its samples (`samples`
    = the n behind them) and the counters' rates; a last row for the whole run."""
    rows = []
    levels = {str(s["index"]): s["level"] for s in summary["steps"]}
    for index, q in source["steps"].items():
        n = max((v.get("n", 0) for v in q.values() if isinstance(v, dict)), default=0)
        rows.append([str(int(index) + 1), f"{levels.get(index, 0):g}", str(n), _g(q, "running", "mean"),
                     _g(q, "running", "max"), _g(q, "waiting", "mean"), _g(q, "waiting", "max"),
                     _g(q, "kv_cache_usage", "mean", True), _g(q, "kv_cache_usage", "max", True),
                     _g(q, "generated_tokens", "rate_per_s"), _hit(q)])
    q = source["run"]
    rows.append(["run", "", str(source["ok"]), _g(q, "running", "mean"), _g(q, "running", "max"),
                 _g(q, "waiting", "mean"), _g(q, "waiting", "max"), _g(q, "kv_cache_usage", "mean", True),
                 _g(q, "kv_cache_usage", "max", True), _g(q, "generated_tokens", "rate_per_s"), _hit(q)])
    return rows


def source_text(source: dict[str, Any]) -> str:
    """One sentence: what the source is, how many scrapes worked, and the token cross-check."""
    failed = sum(source["errors"].values())
    text = (f"{source['url']} ({source['server'] or 'unknown server'}): {source['ok']} of {source['samples']} "
            f"scrapes parsed" + (f", {failed} failed" if failed else ""))
    check = source.get("token_check")
    if check:
        ratio = check["difference_ratio"]
        diff = "-" if ratio is None else f"{ratio:+.2%}"
        text += (f". Tokens: server generated {check['server_tokens']:.0f}, records hold {check['client_tokens']} "
                 f"output tokens in {check['records']} requests ({diff}; "
                 + ("above" if check["mismatch"] else "within") + f" the {TOKEN_MISMATCH_RATIO:.0%} tolerance)")
    return text + "."


def server_markdown(summary: dict[str, Any], table: Any) -> list[str]:
    """report.md's section (`table` renders headers and rows as Markdown)."""
    block = summary.get("server_metrics")
    if not block:
        return []
    out = ["## The server's own metrics", "",
           "Scraped once a second on the records' clock; gauges: mean and max of the samples in each step's "
           "measured window (samples = n); counters: rate over the window.", ""]
    for src in block["sources"]:
        out += [source_text(src), ""]
        if src["ok"]:
            out += [table(SERVER_HEADERS, server_rows(summary, src)), ""]
    return out
