"""The async driver's lean HTTP/1.1 transport: framing, keep-alive reuse, push mode, stale-connection retry, errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tokenpulse.core.wire import FramingError, IncompleteBody, WireError
from tokenpulse.transports.asyncio_loop.driver import new_async_client
from tokenpulse.transports.asyncio_loop.lean import LeanTransport

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


async def serve(reply: Reply) -> tuple[asyncio.Server, list[int]]:
    """A loopback server; `reply(reader, writer, n)` answers the n-th request of a connection and
    returns whether to keep the connection. The list counts connections."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                served += 1
                if not await reply(reader, writer, served):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x?y=1"


def test_framings_and_keep_alive_reuse() -> None:
    bodies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    ]
    calls = iter(bodies)

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        body = next(calls)
        writer.write(body)
        await writer.drain()
        return b"Connection: close" not in body

    async def scenario() -> tuple[list[bytes], list[int]]:
        server, connections = await serve(reply)
        async with server, httpx.AsyncClient(transport=LeanTransport()) as client:
            got = [(await client.post(url(server), content=b"{}")).content for _ in bodies]
        return got, connections

    got, connections = asyncio.run(scenario())
    assert got == [b"hello", b"abcde", b"", b"until the end"]
    assert len(connections) == 1  # one keep-alive connection served all four


def test_a_body_split_over_many_reads_is_reassembled_in_order() -> None:
    payloads = [f"event {i};".encode() * (i % 5 + 1) for i in range(40)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(wire), 7):  # 7-byte pieces: sizes, data and CRLFs split anywhere
            writer.write(wire[i:i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    async def scenario() -> tuple[list[bytes], int]:
        server, connections = await serve(reply)
        async with server, httpx.AsyncClient(transport=LeanTransport()) as client:
            async with client.stream("GET", url(server)) as response:
                pieces = [piece async for piece in response.aiter_raw()]
            again = (await client.get(url(server))).content
        assert again == b"".join(payloads)
        return pieces, len(connections)

    pieces, connections = asyncio.run(scenario())
    assert b"".join(pieces) == b"".join(payloads) and len(pieces) > 1 and connections == 1


async def pushed(client: httpx.AsyncClient, target: str, stop_after: int | None = None) -> list[bytes]:
    """The body through `LeanTransport.open` and `LeanResponse.push` (the driver's path), read by read,
    on the client's transport (so its pool is the one iterated requests use)."""
    pieces: list[bytes] = []

    def sink(data: bytes, received_ns: int) -> bool:
        pieces.append(data)
        return stop_after is None or len(pieces) < stop_after

    transport = client._transport
    assert isinstance(transport, LeanTransport)
    response = await transport.open(httpx.Request("GET", target))
    try:
        await response.push(sink)
    finally:
        await response.aclose()
    return pieces


def test_a_pushed_body_is_the_iterated_body() -> None:
    """Pushed from data_received or iterated, the same payloads in order, the same reuse of the
    connection, and a consumer that stops early gets its connection closed, not reused."""
    payloads = [f"event {i};".encode() * (i % 5 + 1) for i in range(40)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + wire[:5])  # some with the head
        await writer.drain()
        for i in range(5, len(wire), 7):
            writer.write(wire[i:i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes], int]:
        server, connections = await serve(reply)
        async with server, httpx.AsyncClient(transport=LeanTransport()) as client:
            first = await pushed(client, url(server))
            second = await pushed(client, url(server))  # the same kept-alive connection
            stopped = await pushed(client, url(server), stop_after=2)
            iterated = (await client.get(url(server))).content  # a new connection: the last was abandoned
        return first, second, [*stopped, iterated], len(connections)

    first, second, rest, connections = asyncio.run(scenario())
    assert b"".join(first) == b"".join(second) == rest[-1] == b"".join(payloads) and len(first) > 1
    assert len(rest) == 3 and connections == 2


def test_a_pushed_body_fails_as_an_iterated_one() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(0.05)  # the close comes after push mode began
        return False

    async def bad_chunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"zz\r\nabc\r\n")
        await writer.drain()
        return True

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"the end")
        await writer.drain()
        return False

    async def scenario() -> list[object]:
        outcomes: list[object] = []
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            for reply in (short, bad_chunk, until_close):
                server, _ = await serve(reply)
                async with server:
                    try:
                        outcomes.append(b"".join(await pushed(client, url(server))))
                    except WireError as exc:  # the driver's path raises the wire layer's errors
                        outcomes.append(type(exc))
        return outcomes

    assert asyncio.run(scenario()) == [IncompleteBody, FramingError, b"until the end"]


def test_a_stale_keep_alive_connection_is_retried_on_a_fresh_one() -> None:
    """The server takes the second request of each connection and hangs up without answering, as a
    server whose keep-alive timeout fired at that moment would."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n > 1:
            return False
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async def scenario() -> tuple[list[int], list[int]]:
        server, connections = await serve(reply)
        async with server, httpx.AsyncClient(transport=LeanTransport()) as client:
            statuses = [(await client.get(url(server))).status_code for _ in range(3)]
        return statuses, connections

    statuses, connections = asyncio.run(scenario())
    assert statuses == [200, 200, 200] and len(connections) == 3


def test_errors_map_to_httpx_exceptions() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()
        return False

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        return False

    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        return False

    async def bad_chunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")
        await writer.drain()
        return True

    async def scenario() -> list[type[BaseException]]:
        raised: list[type[BaseException]] = []
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            try:
                await client.get(f"http://127.0.0.1:{closed_port()}/")
            except httpx.HTTPError as exc:
                raised.append(type(exc))
            for reply in (garbage, hang_up, short, bad_chunk):
                server, _ = await serve(reply)
                async with server:
                    try:
                        await client.get(url(server))
                    except httpx.HTTPError as exc:
                        raised.append(type(exc))
        return raised

    assert asyncio.run(scenario()) == [httpx.ConnectError, *[httpx.RemoteProtocolError] * 4]


def test_probes_never_store_or_send_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            seen.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: sticky=backend-7; Path=/\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            for proxy in ("", "http://127.0.0.1:9"):  # the lean transport, then httpx's (proxy env set)
                for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
                    monkeypatch.delenv(name, raising=False)
                monkeypatch.setenv("NO_PROXY", "127.0.0.1")
                if proxy:
                    monkeypatch.setenv("HTTP_PROXY", proxy)
                async with new_async_client(max_connections=4) as client:
                    assert isinstance(client._transport, LeanTransport) == (not proxy)
                    for _ in range(2):
                        assert (await client.get(url(server))).status_code == 200

    asyncio.run(scenario())
    assert len(seen) == 4 and not any(b"cookie:" in h.lower() for h in seen)


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("head_with_token", [False, True], ids=["token-alone", "token-with-head"])
def test_a_busy_loop_does_not_delay_the_stamps_of_bytes_already_delivered(monkeypatch: pytest.MonkeyPatch,
                                                                           head_with_token: bool) -> None:
    """The prober's loop is busy for 120 ms (other probes' work) right after the response head was
    delivered and before the request's coroutine resumes: the head is stamped when it was delivered, and
    so is a first token that came in the same read (servers that hold the head until the first chunk).
    A token that arrives while the loop is blocked is read after it: asyncio gives no kernel receive
    times (the Locust path's raw transport has them), so that case checks the head only."""
    import time

    from paced_server import paced_server

    from tokenpulse.core.recorder import StreamResult
    from tokenpulse.core.request import ChatRequest, Timeouts, prepare
    from tokenpulse.transports.asyncio_loop import lean as lean_transport
    from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver

    original = lean_transport._PushReader.feed_data
    stalls: list[int] = []

    def feed_then_stall(self: lean_transport._PushReader, data: bytes) -> None:
        if not stalls and not isinstance(self.sink, lean_transport._Sink):  # the head's delivery
            stalls.append(1)
            # Queued before the reader wakes the request's task: the loop runs it first.
            asyncio.get_running_loop().call_soon(time.sleep, 0.12)
        original(self, data)

    monkeypatch.setattr(lean_transport._PushReader, "feed_data", feed_then_stall)
    sent_ns: list[int] = []
    listener, port = paced_server(sent_ns, head_with_token=head_with_token)
    request = prepare(f"http://127.0.0.1:{port}/v1", ChatRequest(model="m", messages=[], max_tokens=2))

    async def scenario() -> StreamResult:
        async with AsyncStreamDriver(new_async_client()) as driver:
            return await driver.run(request, Timeouts(connect=5, ttft=10, idle=5, total=20))

    try:
        result = asyncio.run(scenario())
    finally:
        listener.close()
    assert stalls and result.ok and result.ttfb_s is not None and result.ttft_s is not None and sent_ns
    if head_with_token:
        error_s = result.ttft_s - (sent_ns[0] - result.t0_ns) * 1e-9
        assert -0.001 < error_s < 0.01
        assert abs(result.ttfb_s - result.ttft_s) < 0.01
    else:
        assert result.ttfb_s < 0.06  # the head is sent at once; the stall came after it
