"""geventhttpclient transport: the fastest correct reader measured under gevent (DESIGN.md §6).

It reads with `response.readline(b"\\n")`, which returns each SSE line the moment its newline arrives.
Locust's `FastHttpSession.iter_lines` and geventhttpclient's chunk iterator hold events back until a
block fills, which inflates TTFT; they are never used here.
"""

from __future__ import annotations

import socket
import ssl
import time
from urllib.parse import urlsplit

from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from monitor.drivers.request import PreparedRequest, Timeouts
from monitor.drivers.sync import TransportError
from monitor.outcomes import ErrorClass

#: Socket-level ceiling only; the driver's own deadlines (the `_Watchdog` in sync.py) are what end a request.
_NETWORK_TIMEOUT_S = 3600.0


class _GeventResponse:
    __slots__ = ("_response", "_client_owner", "status", "headers")
    received_ns = None  # the head is stamped by the driver when `open` returns

    def __init__(self, response, owner: GeventHttpTransport) -> None:  # type: ignore[no-untyped-def]
        self._response = response
        self._client_owner = owner
        self.status: int = response.status_code
        self.headers = list(response.items())  # `response.headers` is already an items() iterator

    def read_some(self) -> tuple[bytes, int]:
        try:
            data = self._response.readline(b"\n")
            return data, time.monotonic_ns()
        except HTTPParseError as exc:
            # The C parser reports an EOF inside the body as "Incomplete response.": the connection
            # dropped (DESIGN §4 connect_error), as httpx's RemoteProtocolError says on the async path.
            if str(exc).startswith("Incomplete"):
                raise TransportError(ErrorClass.CONNECT_ERROR, "connection closed before the body was complete") from None
            raise TransportError(ErrorClass.PROTOCOL_ERROR, f"HTTP parse error: {exc}") from None
        except (HTTPConnectionClosed, ConnectionError, OSError) as exc:
            # Closed before the HTTP body was complete: the connection dropped.
            raise TransportError(ErrorClass.CONNECT_ERROR, f"{type(exc).__name__}: {exc}") from None

    def close(self, *, complete: bool) -> None:
        if complete:
            self._response.release()
        else:
            # A half-read body leaves the connection unusable: drop the client and its socket.
            self._client_owner.reset()


class GeventHttpTransport:
    """One HTTP client (one kept-alive connection) per origin, owned by one Locust user."""

    name = "geventhttpclient"

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, int], HTTPClient] = {}

    def _client(self, scheme: str, host: str, port: int, connect_timeout: float | None) -> HTTPClient:
        key = (scheme, host, port)
        client = self._clients.get(key)
        if client is None:
            client = HTTPClient(host, port, ssl=scheme == "https", concurrency=1,
                                connection_timeout=connect_timeout or _NETWORK_TIMEOUT_S,
                                network_timeout=_NETWORK_TIMEOUT_S, block_size=16384)
            self._clients[key] = client
        return client

    def open(self, request: PreparedRequest, timeouts: Timeouts) -> _GeventResponse:
        parts = urlsplit(request.url)
        scheme = parts.scheme or "http"
        port = parts.port or (443 if scheme == "https" else 80)
        host = parts.hostname or "127.0.0.1"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        client = self._client(scheme, host, port, timeouts.connect)
        try:
            response = client.request("POST", path, body=request.body, headers=dict(request.headers))
        except (socket.timeout, TimeoutError):
            self.reset()
            raise TransportError(ErrorClass.TIMEOUT_CONNECT, f"connect timeout after {timeouts.connect:g} s") from None
        except HTTPParseError as exc:
            self.reset()
            raise TransportError(ErrorClass.PROTOCOL_ERROR, f"HTTP parse error: {exc}") from None
        except (HTTPConnectionClosed, ConnectionError, ssl.SSLError, OSError) as exc:
            self.reset()
            raise TransportError(ErrorClass.CONNECT_ERROR, f"{type(exc).__name__}: {exc}") from None
        return _GeventResponse(response, self)

    def reset(self) -> None:
        """Close every connection (after an abandoned body or an error)."""
        self.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
