"""`BodyFraming`: where a response body ends, as both of our HTTP/1.1 transports decide it."""

from __future__ import annotations

import pytest

from monitor.wire.framing import BodyFraming, FramingError, IncompleteBody


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
