"""Incremental `Transfer-Encoding: chunked` decoding, shared by every HTTP/1.1 transport (the wire layer).

Sans-IO like the SSE decoder: bytes in, payload bytes out, nothing held back. Both the load test's
raw-socket transport (gevent) and the prober's asyncio transport feed it what a socket returned, so
one decoder serves both event loops.
"""

from __future__ import annotations


class ChunkedDecoder:
    """Incremental `Transfer-Encoding: chunked` decoder: `feed(bytes) -> payload bytes`; `done` at the end."""

    __slots__ = ("_buf", "_remaining", "_state", "done")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self._buf = bytearray()
        self._remaining = 0
        self._state = self._SIZE
        self.done = False

    @property
    def surplus(self) -> bool:
        """True when bytes followed the last chunk's trailer in what was fed (the connection then holds
        something that is not this response: it must not be reused)."""
        return self.done and bool(self._buf)

    def feed(self, data: bytes) -> bytes:
        if not self._buf and self._state == self._SIZE:
            # Fastest path: the read is exactly one whole chunk (one SSE event per read, what a reader
            # that keeps up receives): one slice, no loop.
            end = data.find(b"\r\n")
            if 0 < end <= 16 and data[-2:] == b"\r\n":
                try:
                    size = int(data[:end], 16)
                except ValueError:
                    size = 0
                if size > 0 and end + size + 4 == len(data):
                    return data[end + 2:-2]
            # Fast path: whole chunks at the start of a read (a paced SSE stream sends one chunk per
            # event, and a reader that fell behind gets several per read), taken as slices of the read
            # without copying it into the buffer. What is left (a partial chunk, an extension, the last
            # chunk) goes through the state machine below from the same state.
            pos = 0
            parts: list[bytes] | None = None
            total = len(data)
            while True:
                end = data.find(b"\r\n", pos)
                if not 0 < end - pos <= 16:
                    break
                try:
                    size = int(data[pos:end], 16)
                except ValueError:
                    break
                start = end + 2
                stop = start + size
                if size <= 0 or stop + 2 > total or data[stop:stop + 2] != b"\r\n":
                    break
                payload = data[start:stop]
                pos = stop + 2
                if pos == total:
                    if parts is None:
                        return payload
                    parts.append(payload)
                    return b"".join(parts)
                if parts is None:
                    parts = [payload]
                else:
                    parts.append(payload)
            if parts is not None:
                return b"".join(parts) + self._feed_slow(data[pos:])
        return self._feed_slow(data)

    def _feed_slow(self, data: bytes) -> bytes:
        """The general state machine: any framing, any split, chunk extensions and trailers."""
        buf = self._buf
        buf += data
        out = bytearray()
        pos = 0
        while not self.done:
            state = self._state
            if state == self._DATA:
                take = min(self._remaining, len(buf) - pos)
                if take <= 0:
                    break
                out += buf[pos:pos + take]
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                self._state = self._DATA_END
            elif state == self._DATA_END:
                if len(buf) - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
                pos += 2
                self._state = self._SIZE
            else:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if len(buf) - pos > 4096:
                        raise ValueError("chunk size line too long")
                    break
                line = bytes(buf[pos:end])
                pos = end + 2
                if state == self._TRAILER:
                    if not line:
                        self.done = True
                    continue
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ValueError(f"bad chunk size {size_text[:20]!r}") from None
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    self._state = self._TRAILER
                else:
                    self._remaining = size
                    self._state = self._DATA
        del buf[:pos]
        return bytes(out)
