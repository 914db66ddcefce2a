"""The sans-IO HTTP/1.1 wire layer under every transport: one response-head reader (head.py), body
framing (framing.py) and chunked decoding (chunked.py), and one exception -> error-class map
(errors.py). No I/O and no clock reads: transports feed it bytes, it says what they mean."""

from tokenpulse.core.wire.chunked import ChunkedDecoder
from tokenpulse.core.wire.errors import (
    ClosedBeforeResponse,
    ConnectFailed,
    ConnectionDropped,
    ConnectTimeout,
    ProtocolViolation,
    WireError,
    classify,
    describe,
)
from tokenpulse.core.wire.framing import BodyFraming, FramingError, IncompleteBody
from tokenpulse.core.wire.head import MAX_HEAD_BYTES, HeadReader, ResponseHead

__all__ = ["MAX_HEAD_BYTES", "BodyFraming", "ChunkedDecoder", "ClosedBeforeResponse", "ConnectFailed",
           "ConnectTimeout", "ConnectionDropped", "FramingError", "HeadReader", "IncompleteBody",
           "ProtocolViolation", "ResponseHead", "WireError", "classify", "describe"]
