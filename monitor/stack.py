"""The observability stack without Docker: mock farm, prober, Prometheus, Alertmanager and (when installed)
Grafana as local processes on loopback ports, plus an Alertmanager webhook sink.

Why derive, not duplicate: the native configs are generated from the committed files (prometheus/,
alertmanager/, dashboards/provisioning/) with only addresses, paths and intervals rewritten, so
`tokenpulse stack up`, docker-compose and the tests all run the same scrape jobs, rules, routes and
dashboards. `tokenpulse stack up` (monitor/cli/stack.py) and tests/stack/test_e2e.py both use this module.

Processes are started in their own session (process group) and stopped in reverse order with SIGTERM,
then SIGKILL after a grace period; their output goes to one log file each in the run directory.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import yaml

__all__ = [
    "DEFAULT_PORTS",
    "Service",
    "Stack",
    "StackError",
    "WebhookSink",
    "alertmanager_argv",
    "alertmanager_config",
    "find_binary",
    "find_root",
    "free_port",
    "grafana_files",
    "port_free",
    "prometheus_argv",
    "prometheus_config",
]

DEFAULT_PORTS: dict[str, int] = {
    "mock": 8080,
    "prober": 9464,
    "prometheus": 9090,
    "alertmanager": 9093,
    "sink": 9095,
    "grafana": 3000,
}
#: Executable names, in order of preference (Debian ships Alertmanager as prometheus-alertmanager; Grafana
#: 10+ has one `grafana` binary with a `server` subcommand, older packages `grafana-server`).
PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
GRAFANA_BINARIES = ("grafana", "grafana-server")
GRAFANA_HOMES = ("/usr/share/grafana", "/opt/grafana")


class StackError(RuntimeError):
    """A service could not be configured, started or did not become ready."""


# ------------------------------------------------------------------------------------------ lookups
def find_root(start: Path | None = None) -> Path:
    """The tokenpulse checkout holding prometheus/, alertmanager/ and dashboards/: the first of `start`
    (default: the working directory) and its parents that has them, else the package's parent."""
    candidates = []
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    candidates.append(Path(__file__).resolve().parents[1])
    for path in candidates:
        if (path / "prometheus" / "prometheus.yml").is_file() and (path / "alertmanager" / "alertmanager.yml").is_file():
            return path
    raise StackError("cannot find the tokenpulse checkout (prometheus/prometheus.yml and "
                     "alertmanager/alertmanager.yml); run from it or pass --root")


def find_binary(names: Sequence[str]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


#: Where `free_port` looks first: below the kernel's ephemeral range, which the kernel draws from for the
#: source port of every outgoing connection and for every bind to port 0.
_LISTEN_PORTS_FROM = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Ports this process has handed out: a service is started some time after its port is picked, and a
#: second pick in between must not return the same port.
_handed_out: set[int] = set()
_pick = random.SystemRandom()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a child process that will listen on it soon after.

    Why not simply bind port 0: the kernel picks that from its ephemeral range, the same range it takes
    the source port of every outgoing connection from, so between our check and the service's own bind
    any connection on the machine can take the port (a `tokenpulse stack up` lost that race while
    tests ran beside it: "address already in use"). A port below the ephemeral range can only be taken
    by another explicit bind. Falls back to port 0 where the range is unknown or leaves no room below."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = _ephemeral_low()
    if low - _LISTEN_PORTS_FROM >= 1000:
        for _ in range(64):
            port = _pick.randrange(_LISTEN_PORTS_FROM, low)
            if port not in _handed_out and port_free(host, port):
                _handed_out.add(port)
                return port
    while True:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; 0 elsewhere, which disables the search)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def port_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def busy_ports(host: str, ports: Mapping[str, int]) -> list[str]:
    """`name port` of every non-zero port that cannot be bound on `host` right now."""
    busy = []
    for name, port in ports.items():
        if not port:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(f"{name} {port}")
    return busy


# ------------------------------------------------------------------------------- generated configs
def prometheus_config(root: Path, *, prober: str, alertmanager: str, prometheus: str, locust: str | None = None,
                      rule_files: Sequence[Path] | None = None, scrape_interval: str | None = None,
                      evaluation_interval: str | None = None) -> dict[str, Any]:
    """prometheus/prometheus.yml with every target rewritten to the given HOST:PORT addresses.

    The `tokenpulse-locust` job is dropped when `locust` is None. Rule files default to the committed
    rules (absolute paths). A `scrape_interval` applies to every job (and the scrape timeout follows it).
    """
    base = yaml.safe_load((root / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {"tokenpulse-prober": prober, "tokenpulse-locust": locust, "prometheus": prometheus,
               "alertmanager": alertmanager}
    jobs = []
    for job in base["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            raise StackError(f"prometheus.yml: job {name!r} has no native address (known: {', '.join(targets)})")
        address = targets[name]
        if address is None:
            continue
        job = dict(job)
        labels = (job.get("static_configs") or [{}])[0].get("labels")
        job["static_configs"] = [{"targets": [address], **({"labels": labels} if labels else {})}]
        if scrape_interval:
            job.pop("scrape_interval", None)
            job.pop("scrape_timeout", None)
        jobs.append(job)
    base["scrape_configs"] = jobs
    base["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    if rule_files is None:
        rule_files = [root / "prometheus" / "rules" / "*.yml"]
    base["rule_files"] = [str(Path(p).resolve()) if "*" not in str(p) else str(p) for p in rule_files]
    glob = base.setdefault("global", {})
    if scrape_interval:
        glob["scrape_interval"] = scrape_interval
        glob["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        glob["evaluation_interval"] = evaluation_interval
    return base


def alertmanager_config(root: Path, sink_url: str, *, group_wait: str | None = None,
                        group_interval: str | None = None, repeat_interval: str | None = None) -> dict[str, Any]:
    """alertmanager/alertmanager.yml with every webhook pointed at `sink_url` (keeping each URL's path),
    and optionally shorter timings on every route (tests)."""
    base = yaml.safe_load((root / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    sink = sink_url.rstrip("/")
    for receiver in base.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = sink + (urlsplit(hook["url"]).path or f"/{receiver['name']}")
    timings = {"group_wait": group_wait, "group_interval": group_interval, "repeat_interval": repeat_interval}

    def retime(route: dict[str, Any]) -> None:
        for key, value in timings.items():
            if value is not None and (key in route or route is base["route"]):
                route[key] = value
        for child in route.get("routes", []):
            retime(child)

    retime(base["route"])
    return base


def grafana_files(root: Path, out: Path, *, host: str, port: int, prometheus_url: str, alertmanager_url: str,
                  admin_password: str) -> Path:
    """Write a grafana.ini and provisioning tree under `out` (from dashboards/provisioning, with local
    URLs and the absolute path of dashboards/json); returns the ini's path."""
    prov = out / "provisioning"
    for sub in ("datasources", "dashboards", "plugins", "alerting"):
        (prov / sub).mkdir(parents=True, exist_ok=True)
    datasources = yaml.safe_load((root / "dashboards" / "provisioning" / "datasources" / "tokenpulse.yml")
                                 .read_text(encoding="utf-8"))
    for ds in datasources["datasources"]:
        ds["url"] = {"prometheus": prometheus_url, "alertmanager": alertmanager_url}[ds["type"]]
    (prov / "datasources" / "tokenpulse.yml").write_text(yaml.safe_dump(datasources, sort_keys=False), encoding="utf-8")
    providers = yaml.safe_load((root / "dashboards" / "provisioning" / "dashboards" / "tokenpulse.yml")
                               .read_text(encoding="utf-8"))
    for provider in providers["providers"]:
        provider["options"]["path"] = str((root / "dashboards" / "json").resolve())
    (prov / "dashboards" / "tokenpulse.yml").write_text(yaml.safe_dump(providers, sort_keys=False), encoding="utf-8")
    ini = out / "grafana.ini"
    ini.write_text("\n".join([
        "[paths]",
        f"data = {out / 'data'}",
        f"logs = {out / 'logs'}",
        f"plugins = {out / 'plugins'}",
        f"provisioning = {prov}",
        "[server]",
        f"http_addr = {host}",
        f"http_port = {port}",
        "[security]",
        "admin_user = admin",
        f"admin_password = {admin_password}",
        "[users]",
        "allow_sign_up = false",
        "[analytics]",
        "reporting_enabled = false",
        "check_for_updates = false",
        "[dashboards]",
        f"default_home_dashboard_path = {(root / 'dashboards' / 'json' / 'provider-overview.json').resolve()}",
        "",
    ]), encoding="utf-8")
    return ini


def prometheus_argv(binary: str, config: Path, data: Path, listen: str) -> list[str]:
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address={listen}",
            "--web.enable-lifecycle"]


def alertmanager_argv(binary: str, config: Path, data: Path, listen: str) -> list[str]:
    # --cluster.listen-address= disables gossip: one local instance needs no peers (and no port 9094).
    return [binary, f"--config.file={config}", f"--storage.path={data}", f"--web.listen-address={listen}",
            "--cluster.listen-address="]


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- webhook sink
@dataclass
class Notification:
    path: str
    received_at: float
    payload: dict[str, Any]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.payload.get("alerts", []))


class WebhookSink:
    """A minimal Alertmanager webhook receiver: keeps every notification in memory, optionally prints one
    line per alert and appends the JSON to a file. GET / returns what it received, as JSON."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, echo: TextIO | None = None,
                 log_path: Path | None = None, keep: int = 1000) -> None:
        self.notifications: list[Notification] = []
        self._cond = threading.Condition()
        self._echo = echo
        self._log_path = log_path
        self._keep = keep
        sink = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "tokenpulse-sink"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body or b"{}")
                    if not isinstance(payload, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    self.send_error(400, f"invalid JSON: {exc}")
                    return
                sink._record(Notification(self.path, time.time(), payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                with sink._cond:
                    data = [{"path": n.path, "received_at": n.received_at, "payload": n.payload}
                            for n in sink.notifications]
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's naming)
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{url_host(str(self._server.server_address[0]))}:{self.port}"

    def start(self) -> WebhookSink:
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _record(self, note: Notification) -> None:
        with self._cond:
            self.notifications.append(note)
            del self.notifications[:-self._keep]
            self._cond.notify_all()
        if self._log_path is not None:
            with self._log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"path": note.path, "received_at": note.received_at, "payload": note.payload}) + "\n")
        if self._echo is not None:
            for alert in note.alerts():
                labels = alert.get("labels", {})
                target = " ".join(f"{k}={labels[k]}" for k in ("endpoint", "model", "provider") if k in labels)
                summary = alert.get("annotations", {}).get("summary", "")
                print(f"alert {note.path} {str(alert.get('status', '?')).upper():8} {labels.get('alertname', '?')} "
                      f"{target} {summary}".rstrip(), file=self._echo, flush=True)

    def wait_for(self, predicate: Callable[[Notification, dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The first alert (of any notification so far or to come) for which predicate(note, alert) holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for note in self.notifications:
                    for alert in note.alerts():
                        if predicate(note, alert):
                            return alert
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching alert within {timeout:.0f} s "
                                       f"({len(self.notifications)} notifications received)")
                self._cond.wait(remaining)


# ---------------------------------------------------------------------------------------- processes
@dataclass
class Service:
    """One child process: how to start it, where it logs, how to tell it is ready, what to print."""

    name: str
    argv: list[str]
    ready_url: str
    url: str
    env: Mapping[str, str] | None = None
    note: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None


class Stack:
    """Starts services one by one (each must answer its ready URL) and stops them all in reverse order."""

    def __init__(self, run_dir: Path, *, ready_timeout: float = 60.0, stop_timeout: float = 15.0) -> None:
        self.run_dir = run_dir
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.services: list[Service] = []
        run_dir.mkdir(parents=True, exist_ok=True)

    def start(self, service: Service) -> Service:
        log_path = self.run_dir / f"{service.name}.log"
        env = dict(os.environ)
        env.update(service.env or {})
        with log_path.open("ab") as log:
            service.proc = subprocess.Popen(service.argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
        service.log_path = log_path
        self.services.append(service)
        self._wait_ready(service)
        return service

    def _wait_ready(self, service: Service) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last_error = ""
        assert service.proc is not None
        while time.monotonic() < deadline:
            code = service.proc.poll()
            if code is not None:
                raise StackError(f"{service.name} exited with code {code} while starting:\n{self.log_tail(service)}")
            try:
                with urllib.request.urlopen(service.ready_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.2)
        raise StackError(f"{service.name} not ready at {service.ready_url} within {self.ready_timeout:.0f} s "
                         f"({last_error}):\n{self.log_tail(service)}")

    def exited(self) -> Service | None:
        """The first service whose process has ended, if any."""
        for service in self.services:
            if service.proc is not None and service.proc.poll() is not None:
                return service
        return None

    def stop(self) -> None:
        for service in reversed(self.services):
            self._stop(service)
        self.services.clear()

    def _stop(self, service: Service) -> None:
        proc = service.proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        service.proc = None

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        try:
            os.killpg(proc.pid, sig)  # the child leads its own session: its group id is its pid
        except ProcessLookupError:
            pass

    @staticmethod
    def log_tail(service: Service, lines: int = 20) -> str:
        if service.log_path is None or not service.log_path.exists():
            return ""
        text = service.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join("    " + line for line in text[-lines:])

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------- the stack
@dataclass
class StackOptions:
    root: Path
    run_dir: Path
    config: Path
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    mock: bool = True
    grafana: bool = True
    probe_interval: float | None = None
    scrape_interval: str | None = None
    evaluation_interval: str | None = None


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", *args]


def bring_up(stack: Stack, opts: StackOptions, *, echo: TextIO | None = None) -> tuple[WebhookSink, list[str]]:
    """Start every service of the native stack into `stack`; returns the sink (the caller stops it) and
    warnings about services left out."""
    host, hurl = opts.host, url_host(opts.host)
    wanted = {name: port for name, port in opts.ports.items()
              if (name != "mock" or opts.mock) and (name != "grafana" or opts.grafana)}
    busy = busy_ports(host, wanted)
    if busy:
        raise StackError(f"ports in use on {host}: {', '.join(busy)} (a system Prometheus or Alertmanager "
                         "service? stop it, or pass --<service>-port with another port, 0 for any free one)")
    ports = {name: (port or free_port(host)) for name, port in opts.ports.items()}
    warnings: list[str] = []
    prometheus_bin = find_binary(PROMETHEUS_BINARIES)
    alertmanager_bin = find_binary(ALERTMANAGER_BINARIES)
    missing = [name for name, path in (("prometheus", prometheus_bin), ("alertmanager", alertmanager_bin)) if not path]
    if missing:
        raise StackError(f"not installed: {', '.join(missing)} (Debian/Ubuntu: apt-get install prometheus "
                         "prometheus-alertmanager)")
    assert prometheus_bin and alertmanager_bin
    run = opts.run_dir

    sink = WebhookSink(host, ports["sink"], echo=echo, log_path=run / "alerts.jsonl").start()
    try:
        am_config = write_yaml(run / "alertmanager.yml", alertmanager_config(opts.root, sink.url))
        stack.start(Service("alertmanager", alertmanager_argv(alertmanager_bin, am_config, run / "alertmanager-data",
                                                              f"{host}:{ports['alertmanager']}"),
                            ready_url=f"http://{hurl}:{ports['alertmanager']}/-/ready",
                            url=f"http://{hurl}:{ports['alertmanager']}/"))
        env = {}
        if opts.mock:
            stack.start(Service("mock", python_module("mock", "--host", host, "--port", str(ports["mock"])),
                                ready_url=f"http://{hurl}:{ports['mock']}/healthz",
                                url=f"http://{hurl}:{ports['mock']}/api/v1"))
            env["TOKENPULSE_MOCK_URL"] = f"http://{hurl}:{ports['mock']}/api/v1"
        prober_argv = python_module("probe", "--config", str(opts.config), "--listen", f"{host}:{ports['prober']}")
        if opts.probe_interval:
            prober_argv += ["--interval", str(opts.probe_interval)]
        stack.start(Service("prober", prober_argv, ready_url=f"http://{hurl}:{ports['prober']}/healthz",
                            url=f"http://{hurl}:{ports['prober']}/", env=env, note="status page; /metrics"))
        prom_config = write_yaml(run / "prometheus.yml", prometheus_config(
            opts.root, prober=f"{hurl}:{ports['prober']}", alertmanager=f"{hurl}:{ports['alertmanager']}",
            prometheus=f"{hurl}:{ports['prometheus']}", scrape_interval=opts.scrape_interval,
            evaluation_interval=opts.evaluation_interval))
        stack.start(Service("prometheus", prometheus_argv(prometheus_bin, prom_config, run / "prometheus-data",
                                                          f"{host}:{ports['prometheus']}"),
                            ready_url=f"http://{hurl}:{ports['prometheus']}/-/ready",
                            url=f"http://{hurl}:{ports['prometheus']}/", note="alerts: /alerts"))
        if opts.grafana:
            grafana_bin = find_binary(GRAFANA_BINARIES)
            home = next((h for h in (os.environ.get("GRAFANA_HOME"), *GRAFANA_HOMES) if h and Path(h).is_dir()), None)
            if grafana_bin and home:
                password = os.environ.get("GF_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
                ini = grafana_files(opts.root, run / "grafana", host=host, port=ports["grafana"],
                                    prometheus_url=f"http://{hurl}:{ports['prometheus']}",
                                    alertmanager_url=f"http://{hurl}:{ports['alertmanager']}",
                                    admin_password=password)
                argv = [grafana_bin, *(["server"] if Path(grafana_bin).name == "grafana" else []),
                        f"--homepath={home}", f"--config={ini}"]
                stack.start(Service("grafana", argv, ready_url=f"http://{hurl}:{ports['grafana']}/api/health",
                                    url=f"http://{hurl}:{ports['grafana']}/",
                                    note=f"admin / {'$GF_ADMIN_PASSWORD' if 'GF_ADMIN_PASSWORD' in os.environ else password}"))
            else:
                warnings.append("Grafana is not installed (no grafana or grafana-server with a home directory): "
                                "skipped. The dashboards are in dashboards/json; docker compose runs Grafana.")
    except BaseException:
        sink.stop()
        raise
    return sink, warnings
