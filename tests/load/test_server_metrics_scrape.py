"""Scraping the servers' own /metrics during a run: URL resolution, the scraper against hostile bodies
(in-process), and one real `tokenpulse load` against the mock's vLLM-style /metrics with the token
cross-check, next to a /metrics that is absent (404) and a server that is not there (refused)."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import yaml

from tests.load.load_helpers import records, summary, tokenpulse, write_config
from tokenpulse.load.servermetrics import ServerMetricsScraper, metrics_url_of, resolve_urls, scrape_once
from tokenpulse.mock import MockServerProcess
from tokenpulse.runfolder.servermetrics import SERVER_METRICS_FILE

LLAMACPP = b"# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"


def test_auto_is_the_server_root_of_each_endpoint() -> None:
    assert metrics_url_of("http://gpu-box:8000/v1") == "http://gpu-box:8000/metrics"
    assert metrics_url_of("https://h.example/api/v1/") == "https://h.example/metrics"
    urls = resolve_urls("auto", [("a", "http://h:8000/v1"), ("b", "http://h:8000/v1"), ("c", "http://g:8080/v1")])
    assert urls == {"http://h:8000/metrics": ("a", "b"), "http://g:8080/metrics": ("c",)}
    assert resolve_urls(["http://x:9/metrics", "http://x:9/metrics"], [("a", "http://h/v1")]) == {
        "http://x:9/metrics": ()}


def test_hostile_bodies_and_failures_are_samples_with_one_warning_each(tmp_path: Path) -> None:
    def fetch(url: str) -> bytes:
        if "huge" in url:
            return LLAMACPP + b"# pad\n" * 100_000
        if "html" in url:
            return b"<html>nope</html>"
        raise ConnectionRefusedError(111, "Connection refused")

    stream = io.StringIO()
    urls = {"http://a/huge": (), "http://a/html": (), "http://a/down": ()}
    scraper = ServerMetricsScraper(urls, tmp_path, stream=stream, cap=4096, fetcher=fetch)
    scraper.scrape_all()
    scraper.scrape_all()
    lines = [json.loads(line) for line in (tmp_path / SERVER_METRICS_FILE).read_text().splitlines()]
    assert len(lines) == 6
    huge = [s for s in lines if s["url"] == "http://a/huge"]
    assert all(s["truncated"] and s["values"] == {"running": 2.0} and s["bytes"] > 4096 for s in huge)
    assert all("error" in s for s in lines if s["url"] != "http://a/huge")
    warned = stream.getvalue().splitlines()
    assert len(warned) == 3, warned  # one per URL, not one per scrape
    assert any("http://a/down" in w and "refused" in w for w in warned)
    assert all("time" in s and "t_s" not in s for s in lines)  # no meta.json yet: no run start


def test_a_sample_counts_from_the_run_start_in_meta(tmp_path: Path) -> None:
    sample = scrape_once("http://x/metrics", 1000.0, fetcher=lambda url: LLAMACPP)
    assert sample["t_s"] == round(float(sample["time"]) - 1000.0, 6)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_load_run_scrapes_the_mock_and_its_tokens_match_the_records(mock: MockServerProcess, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", mock.base_url, ["swiftinfer"])
    config = yaml.safe_load(cfg.read_text())
    good, absent = metrics_url_of(mock.base_url), mock.base_url.replace("/api/v1", "/no-metrics")
    down = f"http://127.0.0.1:{_closed_port()}/metrics"
    config["load"]["server_metrics"] = [good, absent, down]
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    proc = tokenpulse("load", "--config", str(cfg), "--users", "6", "--run-time", "4", "--out", str(out),
                      "--metrics-port", "0", "--quiet")
    assert proc.returncode == 0
    assert f"server metrics {absent}: HTTP 404" in proc.stderr and f"server metrics {down}:" in proc.stderr
    s = summary(out)
    sources = {src["url"]: src for src in s["server_metrics"]["sources"]}
    mine = sources[good]
    assert mine["server"] == "vllm" and mine["errors"] == {} and mine["ok"] >= 4
    check = mine["token_check"]
    recs = records(out)
    assert check["records"] == len(recs) and check["records_outside"] == 0  # first scrape before, last after
    assert check["client_tokens"] == sum(r.get("output_tokens") or 0 for r in recs) > 0
    assert not check["mismatch"] and abs(check["difference_ratio"]) <= 0.01, check
    assert mine["run"]["running"]["max"] >= 1
    assert sources[absent]["ok"] == 0 and sources[down]["ok"] == 0
    assert any(f"server metrics {absent}: none of" in w for w in s["warnings"])
    lines = [json.loads(line) for line in (out / SERVER_METRICS_FILE).read_text().splitlines()]
    meta = json.loads((out / "meta.json").read_text())
    timed = [line for line in lines if "t_s" in line]
    assert timed and all(abs(line["t_s"] - (line["time"] - meta["run_start"])) < 1e-5 for line in timed)
    assert "Server: requests running" in (out / "report.html").read_text()
