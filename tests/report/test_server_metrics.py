"""The server-metrics vocabulary on real-looking expositions of each server (names from their docs), the
per-step summary, the token cross-check and the warnings (sans-IO and synthetic run folders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.report.synth import T0, closed_loop, write_run
from tokenpulse.report.build import write_report
from tokenpulse.runfolder.servermetrics import (
    SERVER_METRICS_FILE,
    ExpositionError,
    counter_increase,
    parse_scrape,
)

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.3
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1000.0
vllm:generation_tokens_total{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 234.0
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 400.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 100.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 9.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 9.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.5
"""

VLLM_V0 = """\
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 2.0
"""

LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 6886
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 3469
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.63
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""

SGLANG = """\
# HELP sglang:generation_tokens_total Number of generation tokens processed.
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.557572e+06
# HELP sglang:token_usage The token usage
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.28
# HELP sglang:cache_hit_rate The cache hit rate
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0075
# HELP sglang:num_running_reqs The number of running requests
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
"""

TGI = """\
# TYPE tgi_queue_size gauge
tgi_queue_size 6
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 16
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="1"} 0
tgi_request_generated_tokens_bucket{le="+Inf"} 30
tgi_request_generated_tokens_sum 4200
tgi_request_generated_tokens_count 30
"""


@pytest.mark.parametrize(("text", "server", "expected"), [
    (VLLM, "vllm", {"running": 12.0, "waiting": 3.0, "kv_cache_usage": 0.4, "generated_tokens": 1234.0,
                    "prefix_cache_hits": 100.0, "prefix_cache_queries": 400.0}),
    (VLLM_V0, "vllm", {"running": 2.0, "kv_cache_usage": 0.25}),
    (LLAMACPP, "llamacpp", {"running": 2.0, "waiting": 1.0, "kv_cache_usage": 0.63, "generated_tokens": 3469.0,
                            "prompt_tokens": 6886.0}),
    (SGLANG, "sglang", {"running": 8.0, "waiting": 4.0, "kv_cache_usage": 0.28, "prefix_cache_hit_rate": 0.0075,
                        "generated_tokens": 7557572.0}),
    (TGI, "tgi", {"running": 16.0, "waiting": 6.0, "generated_tokens": 4200.0}),
], ids=["vllm", "vllm-v0", "llamacpp", "sglang", "tgi"])
def test_each_servers_names_map_to_the_common_quantities(text: str, server: str, expected: dict[str, float]) -> None:
    got = parse_scrape(text.encode())
    assert got["server"] == server
    assert got["values"] == pytest.approx(expected)
    assert "truncated" not in got


def test_a_body_past_the_cap_is_cut_at_a_line_and_marked() -> None:
    body = LLAMACPP.encode() + b"# padding\n" * 1000
    got = parse_scrape(body, cap=len(LLAMACPP.encode()) + 5)
    assert got["truncated"] is True and got["values"]["running"] == 2.0 and got["bytes"] == len(body)
    cut = parse_scrape(LLAMACPP.encode(), cap=LLAMACPP.index("llamacpp:kv_cache_usage_ratio 0.63") + 10)
    assert "kv_cache_usage" not in cut["values"] and "running" not in cut["values"] and cut["truncated"]


@pytest.mark.parametrize("body", [b"<html>not found</html>", b"\xff\xfe\x00", b"vllm:num_requests_running{x=\"1\" 3\n",
                                  b"some_other_metric 1\n", b""])
def test_what_is_not_a_known_exposition_is_an_error_not_an_exception(body: bytes) -> None:
    with pytest.raises(ExpositionError):
        parse_scrape(body)


def test_counter_increase_counts_a_reset_from_zero() -> None:
    assert counter_increase([10, 15, 20]) == 10
    assert counter_increase([10, 15, 3, 8]) == 5 + 3 + 5
    assert counter_increase([5]) == 0


def _scrapes(folder: Path, per_s: float, *, running: float = 4.0, errors: int = 0, url: str = "http://gpu:8000/metrics",
             start: float = -1.0, end: float | None = None, bias: float = 1.0) -> None:
    """One sample a second from `start` to the run's end (+1 s), the token counter growing by the records'
    tokens (x `bias`)."""
    meta = json.loads((folder / "meta.json").read_text())
    records = [json.loads(line) for line in (folder / "records-local.jsonl").read_text().splitlines()]
    stop = (end if end is not None else meta["run_end"] - T0 + 1.0)
    lines = []
    t = start
    while t <= stop:
        at = T0 + t
        tokens = sum(r["output_tokens"] for r in records if r["start_time"] + r["e2e_s"] <= at) * bias
        values = {"running": running, "waiting": 1.0, "kv_cache_usage": 0.5, "generated_tokens": tokens}
        lines.append({"url": url, "server": "vllm", "time": at, "t_s": t, "values": values})
        t += 1.0 / per_s
    lines += [{"url": url, "time": T0 + i, "error": "HTTP 503"} for i in range(errors)]
    with open(folder / SERVER_METRICS_FILE, "a") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)


def test_per_step_figures_and_a_matching_token_count(tmp_path: Path) -> None:
    meta, records = closed_loop([2, 4], step_s=10)
    folder = write_run(tmp_path, meta, records)
    _scrapes(folder, per_s=1.0)
    summary = write_report(folder)
    src = summary["server_metrics"]["sources"][0]
    assert src["server"] == "vllm" and src["errors"] == {}
    step = src["steps"]["0"]
    assert step["running"] == {"mean": 4.0, "max": 4.0, "n": step["running"]["n"]} and step["running"]["n"] >= 8
    assert step["generated_tokens"]["rate_per_s"] > 0
    check = src["token_check"]
    assert check["server_tokens"] == check["client_tokens"] == sum(r["output_tokens"] for r in records)
    assert check["records"] == len(records) and not check["mismatch"]
    assert not [w for w in summary["warnings"] if "server metrics" in w]
    html = (tmp_path / "report.html").read_text()
    assert "The server&#x27;s own metrics" in html or "The server's own metrics" in html
    assert "Server: requests running" in html and "Client: TTFT over the run" in html
    md = (tmp_path / "report.md").read_text()
    assert "## The server's own metrics" in md and "within the 1% tolerance" in md


def test_a_token_difference_above_one_percent_and_failed_scrapes_are_warned(tmp_path: Path) -> None:
    meta, records = closed_loop([2, 4], step_s=10)
    folder = write_run(tmp_path, meta, records)
    _scrapes(folder, per_s=1.0, bias=1.05, errors=3)
    summary = write_report(folder)
    warnings = [w for w in summary["warnings"] if "server metrics" in w]
    assert any("+5.0%" in w and "above 1%" in w for w in warnings), warnings
    assert any("3 of" in w and "HTTP 503" in w for w in warnings), warnings


def test_a_server_without_metrics_is_a_warning_and_the_report_is_written(tmp_path: Path) -> None:
    meta, records = closed_loop([2, 4], step_s=10)
    folder = write_run(tmp_path, meta, records)
    (folder / SERVER_METRICS_FILE).write_text("".join(
        json.dumps({"url": "http://gpu:8000/metrics", "time": T0 + i, "error": "HTTP 404"}) + "\n" for i in range(20))
        + "not json\n")
    summary = write_report(folder)
    assert any("none of 20 scrapes gave metrics (HTTP 404)" in w for w in summary["warnings"])
    src = summary["server_metrics"]["sources"][0]
    assert src["ok"] == 0 and src["token_check"] is None
    assert "none of 20 scrapes" in (tmp_path / "report.html").read_text()
