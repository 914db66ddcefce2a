"""A canary key and its prefixes appear in no output and no file of a `measure`, a load run and a
prober round, even against a server that echoes the key back in every way a careless one could: in a
401 body (plain and JSON-`\\uXXXX`-escaped), in a mid-stream error, straddling the 120-character cut of
an invalid-JSON excerpt, and in a field that makes the recorder raise (so Locust's exception table,
`locust.log`, its CSVs and `locust.html` see the exception).

The canary is not key-shaped (`CANARYkey-...`, not `sk-...`), so only the registry of keys read from the
environment can catch it, not the redactor's patterns."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CANARY = "CANARYkey-4f2b9c7e1d3a5b6c8e0f2a4b6c8d0e1f9a8b7c6d5e4f"
KEY_ENV = "TP_CANARY_KEY"
#: Every model the echo server knows, each a different way of sending the key back.
MODELS = ("echo/http", "echo/stream", "echo/badjson", "echo/raise", "echo/fields")


def _escaped(text: str, backslashes: int = 1) -> str:
    return "".join("\\" * backslashes + f"u{ord(c):04x}" for c in text)


def leaks(text: str) -> list[str]:
    """The fragments of the canary (prefixes of 8+ characters, plain or \\u-escaped) found in text."""
    probes = [CANARY[:8], _escaped(CANARY[:8]), _escaped(CANARY[:8], 2), _escaped(CANARY[:8]).upper().replace(
        "\\U", "\\u")]
    return [p for p in probes if p in text]


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: EchoServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _token(self) -> str:
        auth = self.headers.get("Authorization", "")
        self.server.seen.append(auth)
        return auth.partition(" ")[2]

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # credits (/key) and discovery (one provider tag is the key itself)
        key = self._token()
        if self.path.endswith("/endpoints"):
            listing = {"data": {"endpoints": [{"tag": key}, {"tag": "careless"}]}}
            self._send(200, json.dumps(listing).encode())
            return
        self._send(500, json.dumps({"error": {"code": 500, "message": f"no {self.path} for {key}"}}).encode())

    def do_POST(self) -> None:
        key = self._token()
        model = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0")))).get("model")
        if model == "echo/http":
            body = ('{"error": {"code": 401, "message": "key rejected: ' + key + '", "metadata": {"escaped": "'
                    + _escaped(key) + '", "raw": "' + key + '"}}}')
            self._send(401, body.encode())
            return
        token = {"id": "gen-echo", "choices": [{"index": 0, "delta": {"content": "hello"}}]}
        if model == "echo/stream":
            events = [token, {"id": "gen-echo", "error": {"code": 502, "message": f"upstream choked on {key}"},
                              "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}]
            lines = [json.dumps(e) for e in events]
        elif model == "echo/badjson":
            # The key starts at character 110 of the data line: an excerpt cut at 120 keeps 10 of its chars.
            lines = [json.dumps(token), '{"x": "' + "a" * 103 + key + ' and the JSON never closes']
        elif model == "echo/fields":  # a successful answer whose provider, id and finish reason are the key
            lines = [json.dumps({"id": key, "provider": key, "choices": [{"index": 0, "delta": {"content": "hi"},
                                                                          "finish_reason": key}]})]
        else:  # echo/raise: a field the recorder converts with int(): ValueError quoting the key
            lines = [json.dumps({**token, "tokenpulse_truth": {"sent_ns": key, "recv_ns": key}})]
        body = "".join(f"data: {line}\n\n" for line in lines) + "data: [DONE]\n\n"
        self._send(200, body.encode(), "text/event-stream")


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.seen: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), KEY_ENV: CANARY, "PYTHONUNBUFFERED": "1"}


def _tp(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokenpulse", *args], capture_output=True, text=True,
                          env=_env(), timeout=timeout, cwd=cwd or ROOT)


def _config(tmp_path: Path, base_url: str, *, discover: bool = False) -> Path:
    models: list[dict[str, object]] = [{"id": m} for m in MODELS]
    if discover:
        models.append({"id": "echo/discover", "discover": True})
    config = {
        "endpoints": [{"name": "echo", "base_url": base_url, "kind": "openrouter", "api_key_env": KEY_ENV,
                       "models": models}],
        "profiles": {"default": {"prompt": "Say something short.", "max_tokens": 8}},
        "probe": {"interval_s": 0.5, "jitter_s": 0, "credits_interval_s": 1,
                  "timeouts": {"connect_s": 2, "ttft_s": 5, "idle_s": 5, "total_s": 10}},
        "load": {"workload": {"input_tokens_mean": 8, "output_tokens_mean": 8},
                 "timeouts": {"connect_s": 2, "ttft_s": 5, "idle_s": 5, "total_s": 10},
                 "error_backoff_s": 0.2, "start_stagger_s": 0,
                 # /generation lookups still run (they carry the key too), but the run's end waits for
                 # them 3 s, not 30 (the echo server's 404s would be retried for the whole deadline)
                 "generations": {"deadline_s": 3}},
    }
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _assert_clean(where: str, text: str) -> None:
    found = leaks(text)
    assert not found, f"{where}: {found}"


@pytest.mark.parametrize("model", MODELS)
def test_measure(echo: EchoServer, model: str) -> None:
    for fmt in ((), ("--json",)):
        sent = len(echo.seen)
        proc = _tp("measure", "--base-url", echo.base_url, "--model", model, "--api-key-env", KEY_ENV, *fmt,
                   timeout=60)
        assert echo.seen[sent:] == [f"Bearer {CANARY}"]  # the key was really sent, so it could be echoed
        assert proc.returncode in (1, 0), proc.stderr  # failed measurement, not a crash or a usage error
        _assert_clean(f"measure {model} {fmt} stdout", proc.stdout)
        _assert_clean(f"measure {model} {fmt} stderr", proc.stderr)
    assert "[REDACTED]" in proc.stdout or model == "echo/raise", proc.stdout


def test_load_run_folder(echo: EchoServer, tmp_path: Path) -> None:
    config = _config(tmp_path, echo.base_url)
    out = tmp_path / "run"
    sent = len(echo.seen)
    proc = _tp("load", "--config", str(config), "--out", str(out), "--users", "4", "--run-time", "3",
               "--metrics-port", "0", timeout=150)
    assert len(echo.seen) > sent and all(a == f"Bearer {CANARY}" for a in echo.seen[sent:])
    _assert_clean("load stdout", proc.stdout)
    _assert_clean("load stderr", proc.stderr)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {p.name for p in files}
    for expected in ("locust.log", "locust.html", "locust_stats.csv", "locust_failures.csv",
                     "locust_exceptions.csv", "summary.json", "report.md", "report.html", "meta.json"):
        assert expected in names, (expected, names)
    assert any(n.startswith("records-") for n in names), names
    for path in files:
        _assert_clean(str(path.relative_to(out)), path.read_text(encoding="utf-8", errors="replace"))
    records = [json.loads(line) for p in out.glob("records-*.jsonl") for line in p.read_text().splitlines()]
    messages = {r.get("error_message") or "" for r in records}
    assert any("[REDACTED]" in m for m in messages), messages
    # the exception the recorder raised on echo/raise reached Locust's table, redacted
    exceptions = (out / "locust_exceptions.csv").read_text(encoding="utf-8")
    if "ValueError" in exceptions:
        assert "[REDACTED]" in exceptions


def test_load_web_ui(echo: EchoServer, tmp_path: Path) -> None:
    """Locust's web UI while the run goes: its failures, its exceptions tab and their CSV downloads."""
    config = _config(tmp_path, echo.base_url)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "load", "--config", str(config), "--out",
                             str(tmp_path / "run"), "--users", "4", "--run-time", "4", "--metrics-port", "0", "--web",
                             "--web-port", str(port), "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), cwd=tmp_path)
    pages: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    errors = client.get("/stats/requests").json()["errors"]
                except (httpx.HTTPError, ValueError, KeyError):
                    time.sleep(0.2)
                    continue
                if errors:  # the recorder no longer raises, so the exceptions tab may stay empty
                    for path in ("/exceptions", "/stats/requests", "/", "/exceptions/csv", "/stats/failures/csv"):
                        pages[path] = client.get(path).text
                    break
                time.sleep(0.2)
    finally:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert pages, "the web UI showed no exception and no failure during the run"
    for path, body in pages.items():
        _assert_clean(f"web UI {path}", body)
    # what Locust's exception table does with a key is checked on its sinks directly
    # (test_locust_sinks_redact_in_a_locust_process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prober_round(echo: EchoServer, tmp_path: Path) -> None:
    config = _config(tmp_path, echo.base_url, discover=True)
    port = _free_port()
    log = tmp_path / "probe.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "tokenpulse", "probe", "--config", str(config), "--listen",
                                 f"127.0.0.1:{port}", "--log-level", "debug"], stdout=sink, stderr=subprocess.STDOUT,
                                env=_env(), cwd=tmp_path)
        pages: dict[str, str] = {}
        try:
            deadline = time.monotonic() + 60
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                while time.monotonic() < deadline:
                    try:
                        status = client.get("/api/status").json()
                    except (httpx.HTTPError, ValueError):
                        time.sleep(0.2)
                        continue
                    targets = [t for g in status["groups"] for t in g["targets"]]
                    # every model probed twice, the discovered one included (the key's tag was dropped)
                    if len(targets) == len(MODELS) + 1 and all(t["probes"] >= 2 for t in targets):
                        break
                    time.sleep(0.2)
                else:
                    pytest.fail("the prober did not probe every target twice within 60 s")
                for path in ("/metrics", "/", "/api/status", "/readyz", "/healthz"):
                    pages[path] = client.get(path).text
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for path, body in pages.items():
        _assert_clean(path, body)
    _assert_clean("probe log", log.read_text(encoding="utf-8", errors="replace"))
    assert "[REDACTED]" in pages["/api/status"]
    assert 'model="echo/discover",provider="careless"' in pages["/metrics"]  # the key was no provider
    once = _tp("probe", "--config", str(config), "--once", "--format", "json", "--log-level", "debug", timeout=60)
    _assert_clean("probe --once stdout", once.stdout)
    _assert_clean("probe --once stderr", once.stderr)
    assert "[REDACTED]" in once.stdout


def test_locust_sinks_redact_in_a_locust_process(tmp_path: Path) -> None:
    """Locust's exception table and failure table, fed directly (a worker's exception, a failure whose
    exception quotes the key), through the wrapped sinks; in a subprocess because importing Locust
    monkey-patches the interpreter."""
    script = f"""
import os
from locust.env import Environment
from locust import events
from tokenpulse.core.keys import read_api_key
from tokenpulse.load.redaction import sanitize_environment
key = read_api_key({KEY_ENV!r})
env = Environment(events=events)
env.create_local_runner()
sanitize_environment(env)
env.runner.log_exception("w1", "boom " + key, "File x, line 1\\n  " + key)
env.stats.log_error("E2E", "t", ValueError("bad " + key))
env.stats.log_error("E2E", "t", "plain " + key[:12])
rows = list(env.runner.exceptions.values())
errors = [e.to_name() for e in env.stats.errors.values()]
print(rows, errors)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("[REDACTED]") == 4, proc.stdout
    _assert_clean("locust sinks", proc.stdout + proc.stderr)


# ------------------------------------------------------------------------------ the rules, one by one
def test_redact_before_truncating_and_escaped_forms() -> None:
    from tokenpulse.core.redact import REDACTED, clip, redact

    key = "tpkey-0123456789abcdefXYZ"
    text = "x" * 290 + key  # a 300-character clip would keep 'tpkey-0123'
    assert key[:10] not in clip(text, 300, [key]) and REDACTED in clip(text, 300, [key])
    for form in (key, key[:12], _escaped(key), _escaped(key, 2), _escaped(key).upper().replace("\\U", "\\u"),
                 key.replace("-", "\\-"), "".join(f"%{ord(c):02X}" for c in key), json.dumps(key)[1:-1]):
        assert redact(f"a {form} b", [key]) == f"a {REDACTED} b", form
    assert redact("tpkey-0 is short", [key]) == "tpkey-0 is short"  # 7 characters: not a fragment
    assert redact("Authorization: Bearer abcdefgh12345678") == f"Authorization: Bearer {REDACTED}"
    assert redact("sk-or-v1-0123456789abcdef0123") == REDACTED


def test_every_log_record_and_traceback_is_redacted(tmp_path: Path) -> None:
    script = f"""
import logging, sys, threading
from tokenpulse.core.keys import read_api_key
from tokenpulse.core.redact import install
install()
key = read_api_key({KEY_ENV!r})
logging.basicConfig(stream=sys.stdout, format="%(message)s")
log = logging.getLogger("anything")
log.warning("a %s b", key)
try:
    raise ValueError("boom " + key)
except ValueError:
    log.exception("caught")
t = threading.Thread(target=lambda: int(key))
t.start(); t.join()
raise RuntimeError(key[:20])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 1
    assert proc.stdout.count("[REDACTED]") == 2 and "RuntimeError: [REDACTED]" in proc.stderr, proc
    assert "Exception in thread" in proc.stderr
    _assert_clean("logs", proc.stdout + proc.stderr)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
    ("localhost", True), ("api.localhost", True), ("10.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("gpu-box", False), ("localhost.example.com", False), ("0.0.0.0", False),
])
def test_loopback(host: str, loopback: bool) -> None:
    from tokenpulse.core.keys import is_loopback

    assert is_loopback(host) is loopback


def test_key_belongs_to_its_host() -> None:
    from tokenpulse.core.keys import belongs_to, insecure_key_problem

    assert belongs_to("OPENROUTER_API_KEY", "https://openrouter.ai/api/v1")
    assert belongs_to("OPENROUTER_API_KEY", "https://eu.openrouter.ai/api/v1")
    assert not belongs_to("OPENROUTER_API_KEY", "https://openrouter.ai.evil.example/api/v1")
    assert not belongs_to("OPENROUTER_API_KEY", "http://127.0.0.1:8000/v1")
    assert not belongs_to("MY_KEY", "https://openrouter.ai/api/v1")
    assert insecure_key_problem("http://[::ffff:127.0.0.1]:8000/v1", "K") is None
    assert insecure_key_problem("https://gpu-box:8000/v1", "K") is None
    assert "plain http to gpu-box" in (insecure_key_problem("http://gpu-box:8000/v1", "K") or "")


def _measure(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokenpulse", "measure", "--model", "echo/stream", *args],
                          capture_output=True, text=True, env={**_env(), **env}, timeout=60)


def test_measure_sends_the_default_key_only_to_its_host(echo: EchoServer) -> None:
    sent = len(echo.seen)
    proc = _measure("--base-url", echo.base_url, env={"OPENROUTER_API_KEY": CANARY})
    assert echo.seen[sent:] == [""]  # no Authorization header at all
    assert "not sending OPENROUTER_API_KEY to 127.0.0.1" in proc.stderr
    assert "--api-key-env OPENROUTER_API_KEY" in proc.stderr
    proc = _measure("--base-url", echo.base_url, "--api-key-env", "OPENROUTER_API_KEY",
                    env={"OPENROUTER_API_KEY": CANARY})
    assert echo.seen[-1] == f"Bearer {CANARY}" and proc.returncode == 1
    _assert_clean("measure", proc.stdout + proc.stderr)


def test_measure_refuses_a_key_in_clear_text_to_a_remote_host() -> None:
    # gpu-box.invalid never resolves: the refusal must come before any connection attempt
    proc = _measure("--base-url", "http://gpu-box.invalid:8000/v1", "--api-key-env", KEY_ENV, env={})
    assert proc.returncode == 2 and proc.stdout == ""
    assert ("error: plain http to gpu-box.invalid, which is not a loopback address, would send the key in "
            f"{KEY_ENV} unencrypted over the network; use https, or pass --allow-insecure-key") in proc.stderr
    proc = _measure("--base-url", "http://gpu-box.invalid:8000/v1", "--api-key-env", KEY_ENV,
                    "--allow-insecure-key", "--connect-timeout", "2", "--json", env={})
    assert proc.returncode == 1 and json.loads(proc.stdout)["error_class"] == "connect_error"


@pytest.mark.parametrize(("bad", "position"), [("sk-caf\u00e9-0123456789", 7), ("sk-tab\t0123456789", 7),
                                               ("sk-space 0123456789", 9)])
def test_a_key_that_is_not_ascii_is_a_clear_error(echo: EchoServer, tmp_path: Path, bad: str, position: int) -> None:
    proc = _measure("--base-url", echo.base_url, "--api-key-env", "TP_BAD_KEY", env={"TP_BAD_KEY": bad})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert ("error: environment variable TP_BAD_KEY holds a key with a character that is not printable ASCII at "
            f"position {position} (of {len(bad)})") in proc.stderr, proc.stderr
    assert bad not in proc.stderr
    config = tmp_path / "bad-key.yaml"
    config.write_text(yaml.safe_dump({"endpoints": [{"name": "e", "base_url": echo.base_url,
                                                     "api_key_env": "TP_BAD_KEY",
                                                     "models": [{"id": "echo/stream"}]}]}), encoding="utf-8")
    for cmd in (["probe", "--config", str(config), "--once"],
                ["load", "--config", str(config), "--out", str(tmp_path / "run"), "--metrics-port", "0"]):
        proc = subprocess.run([sys.executable, "-m", "tokenpulse", *cmd], capture_output=True, text=True,
                              env={**_env(), "TP_BAD_KEY": bad}, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "TP_BAD_KEY holds a key with a character that is not printable ASCII" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_header_from_the_environment_is_a_secret_and_config_errors_are_redacted(tmp_path: Path) -> None:
    """`headers: {X-API-Key: ${VAR}}` is how some servers take a key: it is redacted like one; and a
    config error that quotes a value (here the key put into a URL by mistake) prints no key."""
    config = tmp_path / "header-key.yaml"
    config.write_text(yaml.safe_dump({"endpoints": [
        {"name": "e", "base_url": "http://127.0.0.1:9/v1", "kind": "openai",
         "headers": {"X-API-Key": "${TP_HEADER_KEY}"}, "models": [{"id": "m"}]},
        {"name": "f", "base_url": "${TP_CANARY_KEY}", "api_key_env": KEY_ENV, "models": [{"id": "m"}]}]}),
        encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "tokenpulse", "probe", "--config", str(config), "--once"],
                          capture_output=True, text=True, env={**_env(), "TP_HEADER_KEY": "hdrkey-0123456789abcdef"},
                          timeout=60)
    assert proc.returncode == 2 and "endpoints.1.base_url: must be an http(s) URL" in proc.stderr, proc.stderr
    _assert_clean("config error", proc.stdout + proc.stderr)
    from tokenpulse.config import parse_config
    from tokenpulse.core.redact import redact

    parse_config(yaml.safe_load(config.read_text().replace("${TP_CANARY_KEY}", "http://127.0.0.1:9/v1")),
                 env={"TP_HEADER_KEY": "hdrkey-0123456789abcdef"})
    assert redact("echo hdrkey-0123456789abcdef") == "echo [REDACTED]"
