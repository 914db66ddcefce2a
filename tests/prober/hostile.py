"""A loopback HTTP server that misbehaves the way a broken listing or /key endpoint can.

The first path segment picks the behaviour, so one server can stand behind several endpoints
(`base_url = server.url("silent") + "/api/v1"`):

- `silent`: reads the request and never answers (the connection stays open);
- `trickle`: sends a 200 head with a chunked body, then one byte every 20 ms, forever;
- `flood`: sends a 200 head with a chunked body, then 64 KiB chunks as fast as the client reads.

It runs its own event loop in a daemon thread, counts the requests it has seen per behaviour, and
closes every connection when stopped (a context manager), so a test that uses it stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from types import TracebackType

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
_FLOOD_CHUNK = b"%x\r\n%b\r\n" % (64 * 1024, b"[" * (64 * 1024))


class HostileServer:
    def __init__(self) -> None:
        self.port = 0
        self.seen: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.port}/{behaviour}"

    def requests(self, behaviour: str) -> int:
        with self._lock:
            return self.seen[behaviour]

    def wait_for(self, behaviour: str, count: int = 1, timeout_s: float = 20.0) -> bool:
        """Wait (bounded) until `count` requests of `behaviour` have arrived."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.requests(behaviour) >= count:
                return True
            time.sleep(0.02)
        return False

    def start(self) -> HostileServer:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="hostile", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._serve(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode("latin-1")
        behaviour = target.lstrip("/").split("/", 1)[0]
        with self._lock:
            self.seen[behaviour] += 1
        if behaviour == "silent":
            await reader.read()  # until the client gives up and closes
            return
        writer.write(_HEAD)
        if behaviour == "trickle":
            while True:
                writer.write(b"1\r\n \r\n")
                await writer.drain()
                await asyncio.sleep(0.02)
        elif behaviour == "flood":
            while True:
                writer.write(_FLOOD_CHUNK)
                await writer.drain()
        else:
            writer.write(b"0\r\n\r\n")

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
