"""A minimal HTTP/1.1 server on asyncio streams for the prober's few GET endpoints.

Why hand-written: the prober serves five read-only paths to Prometheus and to people; a framework
would be a dependency for ~100 lines. One request per connection (`Connection: close`), GET and HEAD
only, bounded request heads and read timeouts so a slow client cannot hold the server, and `close()`
drops the connections still open, so a slow client cannot hold the prober's shutdown either (from
Python 3.12 `Server.wait_closed` waits for every connection).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
READ_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 2.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[], Awaitable[Response]]


def text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode())


class HttpServer:
    """Serves `routes` (exact path -> handler) on host:port; port 0 picks a free port."""

    def __init__(self, routes: Mapping[str, Handler], host: str, port: int) -> None:
        self._routes = dict(routes)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port, limit=MAX_HEAD_BYTES)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            try:
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("HTTP server: connections still open after %.0f s; closing anyway", CLOSE_TIMEOUT_S)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            except asyncio.LimitOverrunError:
                await self._send(writer, "GET", text(431, "request head too large"))
                return
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            method, path = _request_line(head)
            if method is None or path is None:
                await self._send(writer, "GET", text(400, "bad request"))
                return
            handler = self._routes.get(path)
            if handler is None:
                response = text(404, "not found")
            elif method not in ("GET", "HEAD"):
                response = Response(405, b"method not allowed\n", headers={"Allow": "GET, HEAD"})
            else:
                try:
                    response = await handler()
                except Exception as exc:  # a handler bug is a 500, never a dead server
                    log.error("handler for %s failed: %s", path, type(exc).__name__)
                    response = text(500, "internal error")
            await self._send(writer, method, response)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, method: str, response: Response) -> None:
        lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
                 f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}",
                 "Cache-Control: no-store", "X-Content-Type-Options: nosniff", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in response.headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if method != "HEAD":
            writer.write(response.body)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)


def _request_line(head: bytes) -> tuple[str | None, str | None]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None, None
    target = parts[1]
    if not target.startswith("/"):
        return None, None
    return parts[0], target.split("?", 1)[0].split("#", 1)[0]
