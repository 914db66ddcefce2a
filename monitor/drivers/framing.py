"""Where an HTTP/1.1 response body ends (RFC 9112 §6.3), read by read: sans-IO, shared by our own
transports (the load test's raw socket under gevent, the prober's `LeanTransport` under asyncio), so
both decide the same way; each maps the two failures to its own errors.

A body is framed by `Transfer-Encoding: chunked`, by `Content-Length`, by nothing at all (HEAD, 1xx,
204, 304), or else by the server closing the connection. Bytes go in as the socket returns them and
come out as payload, nothing held back beyond an unfinished chunk header.
"""

from __future__ import annotations

from monitor.drivers.chunked import ChunkedDecoder


class FramingError(ValueError):
    """The body cannot be read: a malformed chunk or an invalid Content-Length (a protocol error)."""


class IncompleteBody(Exception):
    """The peer closed the connection before a chunked or Content-Length body was complete (the
    connection dropped; a close-delimited body ends this way by design)."""


class BodyFraming:
    """One response body's framing. `payload(data)` per read; `at_eof()` when the peer closed;
    `complete` once the body has ended; `reusable` while the connection may carry another request."""

    __slots__ = ("_chunked", "_left", "complete", "kind", "reusable")

    def __init__(self, status: int, *, connection: str = "", transfer_encoding: str = "",
                 content_length: str | None = None, head_request: bool = False) -> None:
        """Header values as received (None for a missing Content-Length); names are the caller's job."""
        self.reusable = "close" not in connection.lower()
        self._chunked: ChunkedDecoder | None = None
        self._left = 0
        if head_request or status in (204, 304) or 100 <= status < 200:
            self.kind = "none"
        elif "chunked" in transfer_encoding.lower():
            self.kind = "chunked"
            self._chunked = ChunkedDecoder()
        elif content_length is not None:
            text = content_length.strip()
            if not (text.isascii() and text.isdigit()):
                self.reusable = False
                raise FramingError(f"invalid Content-Length {content_length[:40]!r}")
            self.kind = "length"
            self._left = int(text)
        else:
            self.kind = "close"
            self.reusable = False
        self.complete = self.kind == "none" or (self.kind == "length" and self._left == 0)

    def payload(self, data: bytes) -> bytes:
        """The body bytes of one read, framing removed (raises `FramingError` on a malformed chunk).
        Bytes past the end of a Content-Length body are dropped, and the connection is not reused."""
        chunked = self._chunked
        if chunked is not None:
            try:
                out = chunked.feed(data)
            except ValueError as exc:
                raise FramingError(f"bad chunked body: {exc}") from None
            self.complete = chunked.done
            return out
        if self.kind == "length":
            if len(data) > self._left:
                data = data[: self._left]
                self.reusable = False
            self._left -= len(data)
            self.complete = self._left == 0
            return data
        if self.kind == "none":
            self.reusable = self.reusable and not data
            return b""
        return data

    def at_eof(self) -> None:
        """The peer closed the connection: the end of a close-delimited body, else `IncompleteBody`."""
        self.reusable = False
        if self.complete:
            return
        if self.kind != "close":
            raise IncompleteBody("connection closed before the body was complete")
        self.complete = True
