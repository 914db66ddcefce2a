"""Bounded GETs for the prober's housekeeping requests: provider discovery and key credits.

Why its own helper: httpx's timeouts are per phase (connect, each read), and the prober's transport
(`LeanTransport`) honours only the connect timeout, since the probe driver enforces its own deadlines.
A listing server that accepts and never answers, or that trickles bytes forever, used to hold such a
request, and with it the prober's start, forever. Here one total deadline covers the whole exchange
(connect, head, body) and the body is read raw (`Accept-Encoding: identity`, so no decompression can
multiply it) up to a byte cap; both failures are a `FetchError` with a message that holds no key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import httpx


class FetchError(Exception):
    """The request failed, timed out or its body was too large. Callers add where and redact."""


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def fetch(client: httpx.AsyncClient, url: str, headers: Mapping[str, str], *, total_s: float,
                max_bytes: int) -> Fetched:
    """GET `url`: the status and the whole body, within `total_s` seconds and `max_bytes` bytes."""
    request_headers = {**headers, "Accept-Encoding": "identity"}
    try:
        async with asyncio.timeout(total_s):
            async with client.stream("GET", url, headers=request_headers, timeout=total_s) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"response body of {declared} bytes exceeds the {max_bytes}-byte limit")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"response body exceeds the {max_bytes}-byte limit")
                    chunks.append(chunk)
                return Fetched(response.status_code, b"".join(chunks))
    except TimeoutError:
        raise FetchError(f"no complete response within {total_s:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from None
