"""The HTTP/1.1 response-head reader shared by every transport: bytes in, one final head out.

Sans-IO like h11's readers (`h11/_readers.py`): a transport feeds it what each read returned and gets
back, once the final head is complete, its status, reason and headers, with `rest` holding the body
bytes that came in the same reads. It runs once per response, so it can afford to be thorough:

- interim responses (1xx but 101) are read and dropped, RFC 9110 §15.2: a `100 Continue` followed by
  the real response must not leave that response in the socket for the next request to read (one
  target's answer booked to another, since all OpenRouter targets share one connection origin);
- line ends may be CRLF or a bare LF (RFC 9112 §2.2); empty lines before the status line are skipped;
- a header line that starts with a space or tab continues the previous value (obs-fold, RFC 9112
  §5.2), replaced by one space; before any header it is an error;
- the status line must be `HTTP/1.x NNN [reason]`; a header line `token ":" value`;
- limits: the head (`max_head_bytes`, interim heads included), the number of header lines and of
  interim responses; past them the head is a `ProtocolViolation`, never an unbounded buffer;
- `101 Switching Protocols` is a violation: we never ask to switch.

A close before the head is complete is `at_eof`: `ClosedBeforeResponse` when no byte came at all (a
kept-alive connection the server had closed), else `ConnectionDropped`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tokenpulse.core.wire.errors import (
    ClosedBeforeResponse,
    ConnectionDropped,
    ProtocolViolation,
)

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256
MAX_INTERIM = 16

_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?:[ \t]([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = b" \t"


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A final response head. Header names and values are latin-1 text, as received (names keep
    their case; compare them lower-cased)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    #: Interim (1xx) responses read and dropped before this one.
    interim: int = 0

    def get(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive), in order."""
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


class HeadReader:
    """Feed it reads until `feed` returns the final `ResponseHead`; `rest` is what followed it."""

    __slots__ = ("_buf", "_interim", "_max", "_seen", "rest")

    def __init__(self, *, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_head_bytes
        self._seen = 0  # head bytes consumed so far (interim heads count against the limit)
        self._interim = 0
        #: The bytes after the final head (the start of the body), once `feed` has returned it.
        self.rest = b""

    @property
    def received(self) -> bool:
        """True once any byte of a response has arrived."""
        return bool(self._buf) or self._seen > 0

    def feed(self, data: bytes) -> ResponseHead | None:
        """Take one read; the final head once it is complete (then stop feeding), else None."""
        buf = self._buf
        buf += data
        while True:
            start = _skip_blank_lines(buf)
            if start:
                del buf[:start]
                self._seen += start
            end, after = _find_head_end(buf)
            if end < 0:
                if self._seen + len(buf) > self._max:
                    raise ProtocolViolation(f"response head larger than {self._max} bytes")
                return None
            self._seen += after
            if self._seen > self._max:
                raise ProtocolViolation(f"response head larger than {self._max} bytes")
            head = _parse(bytes(buf[:end]))
            del buf[:after]
            if head.status >= 200:
                self.rest = bytes(buf)
                buf.clear()
                return ResponseHead(head.status, head.reason, head.headers, self._interim)
            if head.status == 101:
                raise ProtocolViolation("101 Switching Protocols, which was not asked for")
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise ProtocolViolation(f"more than {MAX_INTERIM} interim (1xx) responses")

    def at_eof(self) -> None:
        """The peer closed before the final head was complete: always raises."""
        if not self.received:
            raise ClosedBeforeResponse("connection closed before a response")
        raise ConnectionDropped("connection closed inside the response head")


def _skip_blank_lines(buf: bytearray) -> int:
    """How many leading bytes are empty lines (CR or LF) before a status line."""
    i = 0
    n = len(buf)
    while i < n and buf[i] in (13, 10):
        i += 1
    return i


def _find_head_end(buf: bytearray) -> tuple[int, int]:
    """(end of the head's last line, offset just past the empty line that ends it), or (-1, -1).
    The empty line is CRLF or a bare LF, after a line that ended in either."""
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf < 0 and lf < 0:
        return -1, -1
    if lf < 0 or 0 <= crlf < lf:
        return crlf, crlf + 3
    return lf, lf + 2


def _parse(raw: bytes) -> ResponseHead:
    lines = raw.split(b"\n")
    status_line = lines[0].removesuffix(b"\r")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise ProtocolViolation(f"bad status line {status_line[:80]!r}")
    status = int(match.group(1))
    if status < 100:
        raise ProtocolViolation(f"bad status code {status}")
    if len(lines) - 1 > MAX_HEADERS:
        raise ProtocolViolation(f"more than {MAX_HEADERS} header lines")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):  # obs-fold: continues the previous value
            if not headers:
                raise ProtocolViolation("header continuation line before any header")
            name, value = headers[-1]
            folded = line.strip(_OWS)
            headers[-1] = (name, value + b" " + folded if value and folded else value + folded)
            continue
        name, sep, value = line.partition(b":")
        if not sep or _TOKEN.fullmatch(name) is None:
            raise ProtocolViolation(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip(_OWS)))
    reason = (match.group(2) or b"").decode("latin-1")
    return ResponseHead(status, reason, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
