"""What every transport hands its driver about a response before the body: the one response shape that
the gevent and asyncio drivers extend with their own way of reading the body (pull or push, blocking or
awaited). The bytes' meaning is the core's (tokenpulse.core.wire); this is only the hand-over."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class ReceivedHead(Protocol):
    """A response head as a transport received it, with how the connection was set up."""

    status: int
    headers: Iterable[tuple[str, str]]
    #: When the response head arrived (`time.monotonic_ns`; the kernel's receive time where the
    #: transport has it), or None: the driver then stamps the head itself.
    received_ns: int | None
    #: This request's TCP connect (DNS included) and TLS handshake in ns; None on a reused connection
    #: (and `tls_ns` None over plain TCP).
    connect_ns: int | None
    tls_ns: int | None
    #: Whether the request went over a kept-alive connection (None: the transport cannot tell).
    reused: bool | None
