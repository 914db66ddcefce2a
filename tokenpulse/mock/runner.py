"""Running the mock: in the current thread, in a background thread, or in a child process.

- `run_mock_server` blocks until SIGINT/SIGTERM (the CLI and `python -m tokenpulse.mock`);
- `MockServerThread` is for tests: its own event loop in a daemon thread, controlled directly;
- `MockServerProcess` is for benchmarks: `python -m tokenpulse.mock` in a subprocess, so the mock has a
  core of its own and its CPU can be measured separately from the client's.

All three bind port 0 to an ephemeral port and report the real one, and stop cleanly: the listener
closes, every connection is aborted and every request task is awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tokenpulse.mock.farm import MockFarm, default_farm
from tokenpulse.mock.http import ConnectionLimits, Connections, HttpConnection
from tokenpulse.mock.server import MockApp

__all__ = ["MockServer", "MockServerProcess", "MockServerThread", "new_event_loop", "run_mock_server"]

T = TypeVar("T")
_URL_LINE = re.compile(r"http://(?P<host>\[[^\]]+\]|[^\s:/]+):(?P<port>\d+)/api/v1")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when importable (DESIGN.md §6: it is what makes one core carry 1,000 streams)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one: 1,000 streams need 1,000+ sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):  # best effort: a container may forbid it
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


#: Descriptors kept free for the listener, logs and the process itself when connections are capped.
FD_HEADROOM = 64


def connection_cap() -> int:
    """Open connections allowed: the soft open-files limit less some headroom (at least 16)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, soft - FD_HEADROOM)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class MockServer:
    """The listening server on the running event loop: `await start()`, later `await close()`."""

    def __init__(self, farm: MockFarm, host: str = "127.0.0.1", port: int = 0, *,
                 max_connections: int | None = None) -> None:
        self.farm = farm
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.app: MockApp | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections = Connections()

    async def start(self) -> int:
        """Bind and listen; returns the actual port (port 0 picks an ephemeral one)."""
        loop = asyncio.get_running_loop()
        app = MockApp(self.farm, loop)
        self.app = app
        self._connections = Connections(ConnectionLimits(
            idle_timeout_s=self.farm.idle_timeout_s,
            max_connections=self.max_connections or connection_cap()))
        self._server = await loop.create_server(
            lambda: HttpConnection(app, self._connections), self.host, self.port,
            backlog=4096, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        tasks = [c.task for c in self._connections.open if c.task is not None]
        for conn in list(self._connections.open):
            conn.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None


def run_mock_server(farm: MockFarm, host: str, port: int, *,
                    ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. `ready(port)` runs once listening (port 0 binds an ephemeral one).

    Meant for a process's main thread, where the signal handlers can be installed; to run the mock
    beside other code in one process, use MockServerThread.
    """
    raise_fd_limit()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = MockServer(farm, host, port)
        actual = await server.start()
        stop = asyncio.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in signals:
                loop.add_signal_handler(sig, stop.set)
        try:
            if ready is not None:
                ready(actual)
            await stop.wait()
        finally:
            if in_main:
                for sig in signals:
                    loop.remove_signal_handler(sig)
            await server.close()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


class _Endpoint:
    """The URL attributes shared by the thread and process runners."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        """OpenRouter-style base: http://HOST:PORT/api/v1."""
        return f"http://{url_host(self.host)}:{self.port}/api/v1"

    @property
    def openai_base_url(self) -> str:
        """OpenAI-compatible base: http://HOST:PORT/v1."""
        return f"http://{url_host(self.host)}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"


class MockServerThread(_Endpoint):
    """The mock on its own event loop in a daemon thread; a context manager.

    `set_outage` and `stats` act on the server's state directly, on the server's loop.
    """

    def __init__(self, farm: MockFarm | None = None, host: str = "127.0.0.1", port: int = 0,
                 seed: int | None = None, *, max_connections: int | None = None) -> None:
        farm = farm or default_farm()
        self.farm = farm if seed is None else farm.model_copy(update={"seed": seed})
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self._server: MockServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> MockServerThread:
        raise_fd_limit()
        self._thread = threading.Thread(target=self._run, name="tokenpulse-mock", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock server thread did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"mock server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(self._main())
        except BaseException as exc:  # surfaced to start(); a thread has nowhere else to report
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._server = MockServer(self.farm, self.host, self.port, max_connections=self.max_connections)
        self.port = await self._server.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.close()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already finished
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._thread = None

    def _call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop and return its result (state is loop-confined)."""
        if self._loop is None:
            raise RuntimeError("mock server is not running")

        async def call() -> T:
            return fn()

        coro: Coroutine[Any, Any, T] = call()
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(10)

    def set_outage(self, slug: str, active: bool, status: int = 502) -> None:
        """Start or end a runtime outage of a provider (all its models)."""
        assert self._server is not None and self._server.app is not None
        state = self._server.app.state
        self._call(lambda: state.set_outage(slug, active, status))

    def stats(self) -> dict[str, Any]:
        """The /_mock/stats document."""
        assert self._server is not None and self._server.app is not None and self._loop is not None
        state, loop = self._server.app.state, self._loop
        return self._call(lambda: state.snapshot(loop.time()))

    def __enter__(self) -> MockServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class MockServerProcess(_Endpoint):
    """`python -m tokenpulse.mock` in a child process; a context manager. `pid` is for CPU accounting."""

    def __init__(self, config_path: str | Path | None = None, port: int = 0, host: str = "127.0.0.1",
                 seed: int | None = None, start_timeout: float = 20.0) -> None:
        self.config_path = config_path
        self.host = host
        self.port = port
        self.seed = seed
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("mock process is not running")
        return self._proc.pid

    def start(self) -> MockServerProcess:
        cmd = [sys.executable, "-m", "tokenpulse.mock", "--host", self.host, "--port", str(self.port)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])  # so an uninstalled checkout works too
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(self.start_timeout):
                raise RuntimeError(f"mock process printed no URL within {self.start_timeout} s")
        line = self._proc.stdout.readline().decode(errors="replace")
        match = _URL_LINE.search(line)
        if match is None:
            code = self._proc.poll()
            raise RuntimeError(f"mock process did not start (exit code {code}); first line: {line!r}")
        return int(match.group("port"))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def set_outage(self, slug: str, active: bool, status: int = 502) -> None:
        self._control("POST", "/_mock/outage", {"provider": slug, "active": active, "status": status})

    def stats(self) -> dict[str, Any]:
        return dict(self._control("GET", "/_mock/stats"))

    def __enter__(self) -> MockServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
