"""The wire layer, sans-IO: `BodyFraming` (where a response body ends) and `HeadReader` (the response head),
as every transport decides them."""

from __future__ import annotations

import pytest

from tokenpulse.core.wire import (
    MAX_HEAD_BYTES,
    ClosedBeforeResponse,
    ConnectionDropped,
    HeadReader,
    ProtocolViolation,
    ResponseHead,
)
from tokenpulse.core.wire.framing import BodyFraming, FramingError, IncompleteBody


def test_chunked_body_ends_with_its_last_chunk() -> None:
    framing = BodyFraming(200, transfer_encoding="chunked")
    assert framing.payload(b"5\r\nhello\r\n") == b"hello" and not framing.complete
    assert framing.payload(b"0\r\n\r\n") == b"" and framing.complete and framing.reusable


def test_content_length_body_and_bytes_past_its_end() -> None:
    framing = BodyFraming(200, content_length="5")
    assert framing.payload(b"hel") == b"hel" and not framing.complete
    assert framing.payload(b"lo!!") == b"lo" and framing.complete
    assert not framing.reusable  # the extra bytes make the connection's state unknown


@pytest.mark.parametrize(("status", "head", "length"), [(200, False, "0"), (429, False, "0"), (204, False, None),
                                                         (304, False, None), (200, True, "1234")])
def test_bodies_that_are_empty_are_complete_before_any_read(status: int, head: bool, length: str | None) -> None:
    """An error answer with `Content-Length: 0` must not make a transport wait for bytes that never come."""
    framing = BodyFraming(status, content_length=length, head_request=head)
    assert framing.complete and framing.reusable


def test_close_delimited_body_ends_at_eof_and_framed_ones_do_not() -> None:
    close = BodyFraming(200)
    assert close.kind == "close" and not close.reusable
    assert close.payload(b"anything") == b"anything"
    close.at_eof()
    assert close.complete
    for framed in (BodyFraming(200, transfer_encoding="chunked"), BodyFraming(200, content_length="10")):
        with pytest.raises(IncompleteBody):
            framed.at_eof()
        assert not framed.reusable


@pytest.mark.parametrize("value", ["ten", "-1", "1,2", "", "٣"])
def test_invalid_content_length_is_a_framing_error(value: str) -> None:
    with pytest.raises(FramingError, match="Content-Length"):
        BodyFraming(200, content_length=value)


def test_malformed_chunk_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="chunk"):
        BodyFraming(200, transfer_encoding="chunked").payload(b"zz\r\n")


def test_connection_close_is_not_reused() -> None:
    assert not BodyFraming(200, connection="close", content_length="0").reusable
    assert BodyFraming(200, connection="keep-alive", content_length="0").reusable


# ------------------------------------------------------------------------ the response-head reader
HEADS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\nbody",
    b"HTTP/1.1 200 OK\nA: b\n\nbody",  # bare LF
    b"HTTP/1.1 200 OK\r\nA: one,\r\n  two\r\n\tthree\r\n\r\n",  # obs-fold
    b"\r\n\r\nHTTP/1.1 204\r\n\r\n",  # empty lines before the status line; no reason phrase
]


@pytest.mark.parametrize("wire", HEADS)
def test_a_head_read_in_any_split_is_the_head_read_whole(wire: bytes) -> None:
    whole = HeadReader()
    head = whole.feed(wire)
    assert head is not None and head.status in (200, 204)
    bytewise = HeadReader()
    got = None
    for i in range(len(wire)):
        got = bytewise.feed(wire[i:i + 1])
        if got is not None:
            rest = bytewise.rest + wire[i + 1:]
            break
    assert got == head and rest == whole.rest


def test_interim_responses_obs_fold_and_bare_lf() -> None:
    reader = HeadReader()
    head = reader.feed(HEADS[1])
    assert head is not None and (head.status, head.interim, head.get("a"), reader.rest) == (200, 2, ["b"], b"body")
    folded = HeadReader().feed(HEADS[3])
    assert folded is not None and folded.get("A") == ["one, two three"]
    assert HeadReader().feed(HEADS[2]) == ResponseHead(200, "OK", [("A", "b")])


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 2OO OK\r\n\r\n", b"HTTP/2 200\r\n\r\n", b"ICY 200 OK\r\n\r\n", b"HTTP/1.1 099 x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded first\r\n\r\n", b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES, b"HTTP/1.1 100 Continue\r\n\r\n" * 17,
])
def test_what_is_not_an_http_head_is_a_protocol_violation(wire: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        HeadReader().feed(wire)


def test_a_close_inside_or_before_the_head() -> None:
    with pytest.raises(ClosedBeforeResponse):
        HeadReader().at_eof()
    partial = HeadReader()
    assert partial.feed(b"HTTP/1.1 200 OK\r\nContent-") is None
    with pytest.raises(ConnectionDropped) as raised:
        partial.at_eof()
    assert not isinstance(raised.value, ClosedBeforeResponse)


def test_framing_from_a_head() -> None:
    def framing(*headers: tuple[str, str]) -> BodyFraming:
        return BodyFraming.for_head(ResponseHead(200, "OK", list(headers)))

    assert framing(("Content-Length", "5"), ("Content-Length", "5")).kind == "length"
    with pytest.raises(FramingError):
        framing(("Content-Length", "5"), ("Content-Length", "6"))
    with pytest.raises(FramingError):
        framing(("Content-Length", "9" * 5000))
    both = framing(("Transfer-Encoding", "chunked"), ("Content-Length", "3"))
    assert both.kind == "chunked" and not both.reusable  # framed twice: never reused
    assert framing(("Transfer-Encoding", "gzip")).kind == "close"  # chunked not last: until the close
    assert not framing(("Connection", "keep-alive, close"), ("Content-Length", "0")).reusable


def test_bytes_after_the_last_chunk_make_the_connection_unusable() -> None:
    framing = BodyFraming(200, transfer_encoding="chunked")
    framing.payload(b"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert framing.complete and not framing.reusable
