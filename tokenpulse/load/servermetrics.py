"""Scrape the servers' own /metrics once a second during a load run (`load.server_metrics`).

Where it runs: a thread of the `tokenpulse load` process, which only watches files while Locust runs
in its own processes: the scrape (an HTTP GET, a parse of up to MAX_BODY_BYTES) is never on a
request's path and never takes a Locust user's CPU. It scrapes once before Locust starts (the
baseline of the counters), every `period_s` while it runs, and once after it exits, so every request of
the run lies between the first and the last scrape and the token cross-check covers the whole run.

The clock: each sample is stamped with `time.time()` read when its body has been received, the clock
of the records' `start_time`, and `t_s = time - run_start` like the records' `t_s` (run_start from
meta.json, once the Locust controller has written it). Pacing uses the monotonic clock.

Nothing here can fail a run: an absent server, a 404, a body that is not Prometheus text, one that is
huge (cut at the cap) each give a sample with `error` (or `truncated`) in server-metrics.jsonl and one
warning line on the console per URL and kind of problem; the report repeats them.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from tokenpulse.core.redact import redact
from tokenpulse.runfolder.records import META_FILE, JsonlAppender
from tokenpulse.runfolder.servermetrics import (
    MAX_BODY_BYTES,
    SERVER_METRICS_FILE,
    ExpositionError,
    parse_scrape,
)

PERIOD_S = 1.0
TIMEOUT_S = 2.0
AUTO = "auto"


def metrics_url_of(base_url: str) -> str:
    """`auto`: the server root of an API base URL with /metrics (`http://h:8000/v1` -> `http://h:8000/metrics`):
    vLLM, llama.cpp, SGLang and TGI serve /metrics at the root, not under /v1."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))


def resolve_urls(setting: str | Sequence[str], endpoints: Sequence[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """The URLs to scrape, each with the endpoint names whose traffic it counts: `auto` -> one per
    distinct server root of the (name, base_url) endpoints; a list as given, counting every endpoint
    (an empty tuple: the report's token cross-check then compares all of the run's tokens)."""
    if setting == AUTO:
        out: dict[str, list[str]] = {}
        for name, base_url in endpoints:
            names = out.setdefault(metrics_url_of(base_url), [])
            if name not in names:
                names.append(name)
        return {url: tuple(names) for url, names in out.items()}
    return dict.fromkeys(setting, ())


def fetch(url: str, timeout_s: float = TIMEOUT_S, cap: int = MAX_BODY_BYTES) -> bytes:
    """GET the URL and read at most cap + 1 bytes (so a larger body is known to be larger). Raises
    OSError (urllib's errors are OSErrors) or ValueError."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain", "User-Agent": "tokenpulse"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (http(s) from config)
        return bytes(response.read(cap + 1))


def scrape_once(url: str, run_start: float | None, cap: int = MAX_BODY_BYTES,
                fetcher: Callable[[str], bytes] | None = None,
                endpoints: Sequence[str] = ()) -> dict[str, object]:
    """One sample line for server-metrics.jsonl (never raises for what the server does)."""
    t0 = time.monotonic()
    sample: dict[str, object] = {"url": redact(url)}
    if endpoints:
        sample["endpoints"] = list(endpoints)
    try:
        body = (fetcher or fetch)(url)
        received = time.time()
        sample.update(parse_scrape(body, cap))
    except urllib.error.HTTPError as exc:
        received = time.time()
        sample["error"] = f"HTTP {exc.code}"
    except ExpositionError as exc:
        received = time.time()
        sample["error"] = str(exc)
    except (OSError, ValueError) as exc:  # refused, timeout, DNS, a bad URL
        received = time.time()
        sample["error"] = redact(str(getattr(exc, "reason", None) or exc))[:200]
    sample["time"] = round(received, 6)
    if run_start is not None:
        sample["t_s"] = round(received - run_start, 6)
    sample["scrape_s"] = round(time.monotonic() - t0, 6)
    return sample


def _run_start_from_meta(out: Path) -> Callable[[], float | None]:
    cached: list[float] = []

    def read() -> float | None:
        if cached:
            return cached[0]
        try:
            start = json.loads((out / META_FILE).read_text(encoding="utf-8")).get("run_start")
        except (OSError, ValueError, AttributeError):
            return None
        if isinstance(start, int | float):
            cached.append(float(start))
            return float(start)
        return None

    return read


class ServerMetricsScraper:
    """A daemon thread scraping `urls` (URL -> the endpoint names it counts, see resolve_urls) every
    `period_s` into the run folder's server-metrics.jsonl."""

    def __init__(self, urls: Mapping[str, Sequence[str]], out: Path, *, stream: IO[str] | None = None,
                 period_s: float = PERIOD_S, cap: int = MAX_BODY_BYTES,
                 fetcher: Callable[[str], bytes] | None = None) -> None:
        self.urls = dict(urls)
        self.out = out
        self.stream = stream
        self.period_s = period_s
        self.cap = cap
        self.fetcher = fetcher
        self.run_start = _run_start_from_meta(out)
        self.file: JsonlAppender | None = None
        self.samples = 0
        self._warned: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scrape_all(self) -> None:
        if self.file is None:
            self.file = JsonlAppender(self.out / SERVER_METRICS_FILE)
        for url, endpoints in self.urls.items():
            sample = scrape_once(url, self.run_start(), self.cap, self.fetcher, endpoints)
            self.file.write(sample)
            self.samples += 1
            self._warn(sample)

    def _warn(self, sample: dict[str, object]) -> None:
        if self.stream is None:
            return
        url = str(sample["url"])
        if "error" in sample and (url, "error") not in self._warned:
            self._warned.add((url, "error"))
            self.stream.write(f"tokenpulse load: warning: server metrics {url}: {sample['error']} (the run goes "
                              "on; the report shows what was scraped)\n")
        elif sample.get("truncated") and (url, "truncated") not in self._warned:
            self._warned.add((url, "truncated"))
            self.stream.write(f"tokenpulse load: warning: server metrics {url}: body of {sample.get('bytes')} bytes "
                              f"passed the cap of {self.cap} bytes; only its first part is read\n")

    def start(self) -> None:
        """The baseline scrape (before Locust starts), then the thread."""
        if not self.urls:
            return
        self.scrape_all()
        self._thread = threading.Thread(target=self._loop, name="server-metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_at = time.monotonic() + self.period_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self.scrape_all()
            next_at = max(next_at + self.period_s, time.monotonic())

    def stop(self) -> None:
        """Stop the thread and take the final scrape (after Locust exited: every request is before it)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(TIMEOUT_S * len(self.urls) + self.period_s + 1.0)
        self._thread = None
        self.scrape_all()
        if self.file is not None:
            self.file.close()
            self.file = None
