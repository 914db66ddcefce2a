"""Child processes of the native stack: started one by one in their own session (process group), each
ready before the next starts, stopped in reverse order with SIGTERM then SIGKILL after a grace period, by
PID (never by name); their output goes to one log file each in the run directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tokenpulse.ops.stack.errors import StackError

#: Executable names, in order of preference (Debian ships Alertmanager as prometheus-alertmanager; Grafana
#: 10+ has one `grafana` binary with a `server` subcommand, older packages `grafana-server`).
PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
GRAFANA_BINARIES = ("grafana", "grafana-server")
GRAFANA_HOMES = ("/usr/share/grafana", "/opt/grafana")


def find_binary(names: Sequence[str]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def prometheus_argv(binary: str, config: Path, data: Path, listen: str, external_url: str | None = None) -> list[str]:
    """`external_url` is where people reach this Prometheus: the "source" link of every alert it sends."""
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address={listen}",
            "--web.enable-lifecycle", *([f"--web.external-url={external_url}"] if external_url else [])]


def alertmanager_argv(binary: str, config: Path, data: Path, listen: str, external_url: str | None = None) -> list[str]:
    """`external_url` is where people reach this Alertmanager: the links in its notifications."""
    # --cluster.listen-address= disables gossip: one local instance needs no peers (and no port 9094).
    return [binary, f"--config.file={config}", f"--storage.path={data}", f"--web.listen-address={listen}",
            "--cluster.listen-address=", *([f"--web.external-url={external_url}"] if external_url else [])]


def python_module(*args: str) -> list[str]:
    """argv that runs `tokenpulse ARGS` with this interpreter (no reliance on the console script's PATH)."""
    return [sys.executable, "-m", "tokenpulse", *args]


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
