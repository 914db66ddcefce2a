"""Where an HTTP/1.1 response body ends (RFC 9112 §6.3): sans-IO, shared by every transport (the load
test's raw socket under gevent, the prober's `LeanTransport` under asyncio), so all decide the same way
and raise the same wire errors.

A body is framed by `Transfer-Encoding: chunked`, by `Content-Length`, by nothing at all (HEAD, 1xx,
204, 304), or else by the server closing the connection. Bytes go in as the socket returns them and
come out as payload, nothing held back beyond an unfinished chunk header.

`reusable` says whether the connection may carry another request once the body is `complete`: never
after `Connection: close`, a close-delimited body, bytes past the end of the body (they would be read
as the next request's answer), or a head that framed itself twice (RFC 9112 §6.3 ¶3).
"""

from __future__ import annotations

from tokenpulse.core.wire.chunked import ChunkedDecoder
from tokenpulse.core.wire.errors import ConnectionDropped, ProtocolViolation
from tokenpulse.core.wire.head import ResponseHead

#: Content-Length digits accepted: far past any body, and short of int()'s 4,300-digit limit (which
#: would raise ValueError, not a wire error).
_MAX_LENGTH_DIGITS = 18


class FramingError(ProtocolViolation):
    """The body cannot be read: a malformed chunk or an invalid Content-Length."""


class IncompleteBody(ConnectionDropped):
    """The peer closed the connection before a chunked or Content-Length body was complete (the
    connection dropped; a close-delimited body ends this way by design)."""


class BodyFraming:
    """One response body's framing. `payload(data)` per read; `at_eof()` when the peer closed;
    `complete` once the body has ended; `reusable` while the connection may carry another request."""

    __slots__ = ("_chunked", "_left", "complete", "kind", "reusable")

    def __init__(self, status: int, *, connection: str = "", transfer_encoding: str = "",
                 content_length: str | None = None, head_request: bool = False) -> None:
        """Header values as received (None for a missing Content-Length; several values of one header
        joined with commas); names are the caller's job (`for_head` does it)."""
        self.reusable = "close" not in _tokens(connection)
        self._chunked: ChunkedDecoder | None = None
        self._left = 0
        codings = _tokens(transfer_encoding)
        if head_request or status in (204, 304) or 100 <= status < 200:
            self.kind = "none"
        elif codings:
            if content_length is not None:
                self.reusable = False  # framed twice: Transfer-Encoding wins, the connection goes
            if codings[-1] == "chunked":
                self.kind = "chunked"
                self._chunked = ChunkedDecoder()
            else:  # RFC 9112 §6.3 ¶4: chunked not last, the body runs until the close
                self.kind = "close"
                self.reusable = False
        elif content_length is not None:
            self.kind = "length"
            self._left = _content_length(content_length)
        else:
            self.kind = "close"
            self.reusable = False
        self.complete = self.kind == "none" or (self.kind == "length" and self._left == 0)

    @classmethod
    def for_head(cls, head: ResponseHead, *, head_request: bool = False) -> BodyFraming:
        """The framing a response head declares (repeated headers joined, as RFC 9110 §5.3 allows)."""
        connection: list[str] = []
        coding: list[str] = []
        length: list[str] = []
        for name, value in head.headers:
            lower = name.lower()
            if lower == "content-length":
                length.append(value)
            elif lower == "transfer-encoding":
                coding.append(value)
            elif lower == "connection":
                connection.append(value)
        return cls(head.status, connection=",".join(connection), transfer_encoding=",".join(coding),
                   content_length=",".join(length) if length else None, head_request=head_request)

    def payload(self, data: bytes) -> bytes:
        """The body bytes of one read, framing removed (raises `FramingError` on a malformed chunk).
        Bytes past the end of the body are dropped, and the connection is not reused."""
        chunked = self._chunked
        if chunked is not None:
            try:
                out = chunked.feed(data)
            except ValueError as exc:
                self.reusable = False
                raise FramingError(f"bad chunked body: {exc}") from None
            if chunked.done:
                self.complete = True
                if chunked.surplus:
                    self.reusable = False
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


def _tokens(value: str) -> list[str]:
    """The comma-separated tokens of a header value, lower-cased, empty ones dropped."""
    return [t for t in (part.strip(" \t").lower() for part in value.split(",")) if t] if value else []


def _content_length(value: str) -> int:
    """The one length a Content-Length declares: all values of a list must agree (RFC 9110 §8.6)."""
    values = {part.strip(" \t") for part in value.split(",")}
    if len(values) != 1:
        raise FramingError(f"conflicting Content-Length {value[:40]!r}")
    text = values.pop()
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_LENGTH_DIGITS):
        raise FramingError(f"invalid Content-Length {value[:40]!r}")
    return int(text)
