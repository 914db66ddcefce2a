"""A bounded smoke test of concurrency: 300 simultaneous streams over raw sockets all complete."""

from __future__ import annotations

import asyncio
import json

from mock_helpers import PLAIN, chat_body, make_farm, parse_sse, profile

from tokenpulse.mock import MockServerThread

STREAMS = 300


async def _one_stream(port: int, body: bytes) -> tuple[int, int, bool]:
    """Raw HTTP/1.1: returns (content tokens received, completion_tokens from usage, saw [DONE])."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: mock\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
        payload = bytearray()
        while True:  # chunked framing
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                await reader.readexactly(2)
                break
            payload += (await reader.readexactly(size + 2))[:-2]
    finally:
        writer.close()
    data, _ = parse_sse(bytes(payload))
    chunks = [json.loads(d) for d in data if d != "[DONE]"]
    tokens = sum(len((c["choices"][0]["delta"].get("content") or "").split())
                 for c in chunks if c["choices"])
    usage = next(c["usage"] for c in chunks if c.get("usage"))
    return tokens, usage["completion_tokens"], data[-1] == "[DONE]"


def test_300_concurrent_streams_complete() -> None:
    prof = profile(capacity=1000, ttft={"median_ms": 50, "p99_ms": 100},
                   decode={"tokens_per_s": 100, "request_jitter": 0.1, "chunk_jitter": 0.2})
    farm = make_farm({"bulk": {"name": "Bulk", "profile": prof}}, output=(40, 60))
    body = json.dumps(chat_body(PLAIN, stream=True)).encode()
    with MockServerThread(farm) as srv:
        async def main() -> list[tuple[int, int, bool]]:
            return await asyncio.wait_for(
                asyncio.gather(*(_one_stream(srv.port, body) for _ in range(STREAMS))), 20)

        results = asyncio.run(main())
        stats = srv.stats()
    assert len(results) == STREAMS
    for tokens, completion, done in results:
        assert done and tokens == completion and 40 <= tokens <= 60
    assert stats["providers"]["bulk"]["served"] == STREAMS
    assert stats["providers"]["bulk"]["in_flight"] == 0 and stats["requests_in_flight"] == 0
