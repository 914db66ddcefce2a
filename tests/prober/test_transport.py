"""The prober's lean HTTP/1.1 transport: framing, keep-alive reuse, stale-connection retry, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from monitor.prober.transport import LeanTransport, client_for

from prober_support import closed_port

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
                async with client_for(4) as client:
                    assert isinstance(client._transport, LeanTransport) == (not proxy)
                    for _ in range(2):
                        assert (await client.get(url(server))).status_code == 200

    asyncio.run(scenario())
    assert len(seen) == 4 and not any(b"cookie:" in h.lower() for h in seen)
