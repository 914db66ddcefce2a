"""httpx (sync) transport: the portable baseline. Needs gevent monkey-patching (Locust applies it) so
that the driver's gevent deadlines can interrupt its blocking reads."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx

from monitor.drivers.request import PreparedRequest, Timeouts
from monitor.drivers.sync import TransportError
from monitor.outcomes import ErrorClass


class _HttpxResponse:
    __slots__ = ("_response", "_chunks", "status", "headers")
    received_ns = None  # the head is stamped by the driver when `open` returns

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_raw()
        self.status = response.status_code
        self.headers = response.headers.multi_items()

    def read_some(self) -> tuple[bytes, int]:
        try:
            data = next(self._chunks, b"")
            return data, time.monotonic_ns()
        except httpx.TransportError as exc:  # includes a peer that closed mid-body: the connection dropped
            raise TransportError(ErrorClass.CONNECT_ERROR, f"{type(exc).__name__}: {exc}") from None

    def close(self, *, complete: bool) -> None:
        self._response.close()


class HttpxSyncTransport:
    name = "httpx"

    def __init__(self) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(None), follow_redirects=False,
                                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))

    def open(self, request: PreparedRequest, timeouts: Timeouts) -> _HttpxResponse:
        http_request = self._client.build_request(
            "POST", request.url, headers=dict(request.headers), content=request.body,
            extensions={"timeout": {"connect": timeouts.connect, "read": None, "write": timeouts.connect,
                                    "pool": timeouts.connect}},
        )
        try:
            response = self._client.send(http_request, stream=True)
        except httpx.ConnectTimeout:
            raise TransportError(ErrorClass.TIMEOUT_CONNECT, f"connect timeout after {timeouts.connect:g} s") from None
        except (httpx.RemoteProtocolError, httpx.LocalProtocolError) as exc:
            raise TransportError(ErrorClass.PROTOCOL_ERROR, f"{type(exc).__name__}: {exc}") from None
        except httpx.TransportError as exc:
            raise TransportError(ErrorClass.CONNECT_ERROR, f"{type(exc).__name__}: {exc}") from None
        return _HttpxResponse(response)

    def close(self) -> None:
        self._client.close()
