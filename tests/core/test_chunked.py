"""`ChunkedDecoder`: every way of cutting a chunked body into reads gives the same payload, whether
the reads end on chunk boundaries (its fast paths: one whole chunk per read, several whole chunks) or
anywhere (the state machine)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenpulse.core.wire.chunked import ChunkedDecoder


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    """(wire, payload, chunk boundaries): random chunks, some with extensions and upper-case sizes,
    a last chunk with optional trailers."""
    payloads = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=8))
    wire = b""
    ends = []
    for payload in payloads:
        size = b"%x" % len(payload)
        if draw(st.booleans()):
            size = size.upper()
        ext = draw(st.sampled_from([b"", b";name=value", b";x"]))
        wire += size + ext + b"\r\n" + payload + b"\r\n"
        ends.append(len(wire))
    trailer = draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"]))
    wire += b"0\r\n" + trailer + b"\r\n"
    return wire, b"".join(payloads), ends


def _feed_all(wire: bytes, cuts: list[int]) -> tuple[bytes, bool]:
    decoder = ChunkedDecoder()
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    out = b"".join(decoder.feed(piece) for piece in pieces)
    return out, decoder.done


@settings(max_examples=300, deadline=None)
@given(chunked_bodies(), st.data())
def test_any_split_gives_the_payload(body: tuple[bytes, bytes, list[int]], data: st.DataObject) -> None:
    wire, payload, _ = body
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    assert _feed_all(wire, cuts) == (payload, True)


@settings(max_examples=300, deadline=None)
@given(chunked_bodies(), st.data())
def test_reads_on_chunk_boundaries_give_the_payload(body: tuple[bytes, bytes, list[int]],
                                                    data: st.DataObject) -> None:
    wire, payload, ends = body
    cuts = sorted(set(data.draw(st.lists(st.sampled_from(ends), max_size=8)))) if ends else []
    assert _feed_all(wire, cuts) == (payload, True)
    assert _feed_all(wire, ends) == (payload, True)  # one whole chunk per read


@pytest.mark.parametrize("bad", [b"zz\r\n", b"3\r\nabcX\r\n", b"-3\r\nabc\r\n"])
def test_bad_framing_raises(bad: bytes) -> None:
    with pytest.raises(ValueError):
        ChunkedDecoder().feed(bad)
