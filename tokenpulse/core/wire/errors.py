"""The wire layer's errors, and the one map from any transport failure to an error class.

Why one map: the prober (asyncio) and the load test (gevent) must give the same bytes the same class
(DESIGN.md §4), so no transport or driver decides a class itself. Transports raise only `WireError`s
(or let the socket's own `OSError`s through); a driver hands whatever ended a request to `classify`,
as httpx maps every lower-level exception in one place (`httpx/_transports/default.py`).

The classes, by what the peer did:

- it could not be reached (refused, DNS, TLS handshake) or the connection broke after the request
  was sent (a reset, or a close before the head or inside a framed body): `connect_error`;
- the connection could not be made in time: `timeout_connect`;
- it sent bytes that are not HTTP/1.1 (a bad status line, a bad header line, an oversized head, a bad
  chunk size, an invalid Content-Length, an unrequested protocol switch): `protocol_error`.

A body that ended as framed but without `[DONE]` is not a wire error: the recorder calls it `truncated`.
"""

from __future__ import annotations

import sys

from tokenpulse.core.outcomes import ErrorClass


class WireError(Exception):
    """A transport failure, already classified."""

    error_class = ErrorClass.CONNECT_ERROR


class ConnectFailed(WireError):
    """The connection could not be made: refused, unresolvable, TLS handshake failed."""


class ConnectTimeout(WireError):
    """The TCP connect (and TLS handshake) did not complete within the connect timeout."""

    error_class = ErrorClass.TIMEOUT_CONNECT


class ConnectionDropped(WireError):
    """The connection broke after the request was sent: reset, or closed before the response (head or
    framed body) was complete."""


class ClosedBeforeResponse(ConnectionDropped):
    """The peer closed without sending a single byte of a response. On a reused keep-alive connection
    this is the server's idle timeout racing our request: transports retry once on a new connection."""


class ProtocolViolation(WireError):
    """The peer sent something that is not valid HTTP/1.1."""

    error_class = ErrorClass.PROTOCOL_ERROR


def classify(exc: BaseException) -> ErrorClass | None:
    """The error class of an exception that ended a request inside a transport.

    `WireError`s carry their class. What the socket layer raises: a timeout (only the connect phase
    has socket timeouts; the drivers' own deadlines are not exceptions of this kind) is
    `timeout_connect`; TLS and every other OS error `connect_error`. httpx's exceptions (the async
    driver's transport behind a proxy) map the same way, and a message that says the peer closed is a
    dropped connection, whatever exception type httpcore chose for it. None for anything else: a bug,
    which the driver lets through rather than book as the provider's failure."""
    if isinstance(exc, WireError):
        return exc.error_class
    if isinstance(exc, TimeoutError):
        return ErrorClass.TIMEOUT_CONNECT
    if isinstance(exc, (OSError, EOFError)):  # ssl.SSLError and CertificateError are OSErrors
        return ErrorClass.CONNECT_ERROR
    httpx = sys.modules.get("httpx")  # only when httpx is in use: the core does not import it
    if httpx is not None and isinstance(exc, httpx.RequestError):
        if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
            return ErrorClass.TIMEOUT_CONNECT
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.DecodingError)):
            text = str(exc).lower()
            if isinstance(exc, httpx.RemoteProtocolError) and ("peer closed" in text or "disconnected" in text):
                return ErrorClass.CONNECT_ERROR
            return ErrorClass.PROTOCOL_ERROR
        return ErrorClass.CONNECT_ERROR
    return None


def describe(exc: BaseException) -> str:
    """`Type: message` for the result's error message (the class says what, this says which)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
