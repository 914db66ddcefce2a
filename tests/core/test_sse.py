"""SSE decoder: WHATWG event-stream rules, and split-invariance (every way of cutting the bytes into
reads gives the same events)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenpulse.core.sse import SSEDecoder, SSEEvent


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


def test_openrouter_style_stream() -> None:
    events = decode(b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\n")
    assert [e.data for e in events] == ['{"a":1}', "[DONE]"]
    assert all(e.event == "message" for e in events)


def test_comments_are_counted_never_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": keep-alive\n:\n\n") == []
    assert decoder.comments == 2


def test_line_endings_lf_cr_crlf() -> None:
    for sep in (b"\n", b"\r", b"\r\n"):
        events = decode(b"data: x" + sep + b"data: y" + sep + sep)
        assert events == [SSEEvent(data="x\ny")], sep


def test_crlf_split_between_reads_is_one_line_end() -> None:
    # The CR ends the line at once (no waiting); the LF in the next read must not dispatch again.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r\n") == [SSEEvent(data="a")]


def test_event_is_emitted_as_soon_as_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n") == []
    assert decoder.feed(b"\n") == [SSEEvent(data="first")]


def test_fields_event_id_retry_and_no_colon() -> None:
    events = decode(b"event: ping\nid: 7\nretry: 1500\ndata\ndata:  two spaces\n\n")
    assert events == [SSEEvent(data="\n two spaces", event="ping", id="7", retry=1500)]


def test_invalid_retry_and_id_with_nul_are_ignored() -> None:
    events = decode(b"retry: 12a\nid: a\x00b\ndata: x\n\n")
    assert events == [SSEEvent(data="x", id=None, retry=None)]


def test_last_event_id_persists_across_events() -> None:
    events = decode(b"id: 1\ndata: a\n\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_empty_data_buffer_dispatches_nothing() -> None:
    assert decode(b"event: x\n\n") == []


def test_bom_is_stripped_even_when_split() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [SSEEvent(data="a")]
    # Only a leading BOM is special.
    assert decode(b"data: \xef\xbb\xbfa\n\n") == [SSEEvent(data="\ufeffa")]


def test_utf8_character_split_across_reads() -> None:
    payload = "data: héllo 🚀\n\n".encode()
    cut = payload.index("🚀".encode()) + 2
    assert decode(payload[:cut], payload[cut:]) == [SSEEvent(data="héllo 🚀")]


def test_unterminated_event_is_discarded_and_reported() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: partial") == []
    assert decoder.pending_data


# ----------------------------------------------------------------- property: split invariance
_text = st.text(alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=12)
_line = st.one_of(
    st.builds(lambda v: "data: " + v, _text),
    st.builds(lambda v: "data:" + v, _text),
    st.builds(lambda v: ":" + v, _text),
    st.builds(lambda v: "event: " + v, _text),
    st.builds(lambda v: "id: " + v, _text),
    st.builds(lambda v: "retry: " + v, st.from_regex(r"[0-9]{1,5}", fullmatch=True)),
    st.just("data"),
    st.just(""),
)


@st.composite
def streams_and_splits(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    lines = draw(st.lists(_line, max_size=25))
    seps = draw(st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=len(lines) + 1, max_size=len(lines) + 1))
    bom = draw(st.booleans())
    text = "".join(line + sep for line, sep in zip(lines, seps, strict=False)) + seps[-1]  # one sep more
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    return raw, cuts


@settings(max_examples=400, deadline=None)
@given(streams_and_splits())
def test_any_split_gives_the_same_events(case: tuple[bytes, list[int]]) -> None:
    raw, cuts = case
    whole = decode(raw)
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert decode(*pieces) == whole
    assert decode(*[raw[i:i + 1] for i in range(len(raw))]) == whole


@st.composite
def streams_split_at_line_ends(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """Reads that end where lines end, as a paced server's do (one event per read): the decoder's
    one-event fast path is taken on most of them."""
    raw, _ = draw(streams_and_splits())
    ends = [i + 1 for i, byte in enumerate(raw) if byte in b"\r\n"]
    cuts = sorted(set(draw(st.lists(st.sampled_from(ends), max_size=12)))) if ends else []
    return raw, cuts


@settings(max_examples=500, deadline=None)
@given(st.one_of(streams_and_splits(), streams_split_at_line_ends()))
def test_feed_data_gives_the_data_of_feed(case: tuple[bytes, list[int]]) -> None:
    # The recorder's fast method: the same data strings as the events of `feed`, however split.
    raw, cuts = case
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    decoder = SSEDecoder()
    data = [text for piece in pieces for text in decoder.feed_data(piece)]
    assert data == [e.data for e in decode(raw)]
    assert decoder.pending_data == _pending(pieces)


def test_feed_data_one_event_per_read_after_other_fields() -> None:
    # The fast path must not drop state left by earlier reads: an `event:` field, a data line, a CR.
    decoder = SSEDecoder()
    assert decoder.feed_data(b"event: x\n") == []
    assert decoder.feed_data(b"data: a\n\n") == ["a"]
    assert decoder.feed_data(b"data: b\n") == []
    assert decoder.feed_data(b"data: c\n\n") == ["b\nc"]
    assert decoder.feed_data(b"data: d\r") == []
    assert decoder.feed_data(b"\n") == []  # the rest of a CRLF, not a blank line
    assert decoder.feed_data(b"data: e\n\n") == ["d\ne"]
    assert decoder.feed_data(b"data: g\r") == [] and decoder.feed_data(b"\ndata: h\n\n") == ["g\nh"]
    assert decoder.feed_data(b"data:  f\n\n") == [" f"] and decoder.feed_data(b"data: \n\n") == [""]


def _pending(pieces: list[bytes]) -> bool:
    decoder = SSEDecoder()
    for piece in pieces:
        decoder.feed(piece)
    return decoder.pending_data


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\r\r"])
def test_a_line_arriving_in_many_reads_is_held_whole(end: bytes) -> None:
    """A read that ends no line is appended to what is held (linear in the bytes received, not re-joined
    and re-split: benchmarks/decoder_throughput.py); the line is whole when it ends."""
    decoder = SSEDecoder()
    parts = [b"\xef\xbb", b"\xbfda", b"ta: "] + [bytes([0x61 + i % 26]) * 997 for i in range(300)]
    for part in parts:
        assert decoder.feed_data(part) == []
        assert decoder.pending_data
    out = []
    for byte in end:  # the line end itself split byte by byte (a CR then its LF in the next read)
        out += decoder.feed_data(bytes([byte]))
    assert out == ["".join(chr(0x61 + i % 26) * 997 for i in range(300))]
    assert not decoder.pending_data
    assert decoder.feed(b"data: next\n\n")[0].data == "next"


def test_a_held_line_ends_inside_a_later_read() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": keep") == [] and decoder.feed(b"-alive") == []
    assert decoder.feed(b" still\ndata: a") == [] and decoder.comments == 1
    assert decoder.feed(b"bc") == []
    events = decoder.feed(b"d\n\ndata: e\n\n")
    assert [e.data for e in events] == ["abcd", "e"]
