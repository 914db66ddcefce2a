"""Async driver over httpx, used by the prober and `tokenpulse measure`.

It only sends, reads bytes, stamps them with the monotonic clock at receipt and feeds the recorder.
Deadlines are enforced with one `asyncio.timeout` rescheduled per read (no task per read), and are chosen
by `DeadlineClock` so that an expiry is classified as TTFT, idle or total.

httpx's pool suits the prober's modest concurrency; DESIGN.md §6 shows it degrading past ~100 streams
in one pool, which is why the load-test path uses the sync driver instead.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from monitor.drivers.deadlines import DeadlineClock
from monitor.drivers.request import PreparedRequest, Timeouts
from monitor.outcomes import ErrorClass
from monitor.recorder import DEFAULT_MAX_RESPONSE_BYTES, StreamRecorder, StreamResult

_NS = 1e-9


def new_async_client(*, max_connections: int = 100) -> httpx.AsyncClient:
    """A client tuned for streaming probes: no overall httpx timeouts (ours are finer), keep-alive."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(timeout=httpx.Timeout(None), limits=limits, follow_redirects=False)


class AsyncStreamDriver:
    """Runs one streaming request at a time per call; safe to call concurrently."""

    def __init__(self, client: httpx.AsyncClient | None = None, *,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._client = client or new_async_client()
        self._owns_client = client is None
        self._max_bytes = max_response_bytes

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncStreamDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(self, request: PreparedRequest, timeouts: Timeouts, *, keep_text: bool = False) -> StreamResult:
        clock = time.monotonic_ns
        http_request = self._client.build_request(
            "POST", request.url, headers=dict(request.headers), content=request.body,
            extensions={"timeout": {"connect": timeouts.connect, "read": None, "write": timeouts.connect,
                                    "pool": timeouts.connect}},
        )
        t0 = clock()
        recorder = StreamRecorder(t0, secrets=request.secrets, max_response_bytes=self._max_bytes,
                                  keep_text=keep_text, prompt_tokens_hint=request.prompt_tokens_hint)
        deadlines = DeadlineClock(t0, timeouts)
        expiry = ErrorClass.TIMEOUT_TOTAL
        response: httpx.Response | None = None

        def arm(scope: asyncio.Timeout, now_ns: int) -> ErrorClass:
            deadline_ns, reason = deadlines.next_deadline(now_ns, recorder.first_token_seen)
            # loop.time() is time.monotonic(): the same clock as monotonic_ns.
            scope.reschedule(None if deadline_ns is None else deadline_ns * _NS)
            return reason

        try:
            async with asyncio.timeout(None) as scope:
                expiry = arm(scope, t0)
                response = await self._client.send(http_request, stream=True)
                recorder.on_headers(clock(), response.status_code, response.headers.multi_items())
                stream = response.aiter_raw()
                async for data in stream:
                    now = clock()
                    recorder.on_bytes(now, data)
                    if recorder.finished:
                        break
                    expiry = arm(scope, now)
                recorder.on_eof(clock())
        except TimeoutError:
            recorder.on_failure(clock(), expiry, DeadlineClock.describe(expiry, timeouts))
        except httpx.ConnectTimeout:
            recorder.on_failure(clock(), ErrorClass.TIMEOUT_CONNECT,
                                DeadlineClock.describe(ErrorClass.TIMEOUT_CONNECT, timeouts))
        except httpx.PoolTimeout:
            recorder.on_failure(clock(), ErrorClass.TIMEOUT_CONNECT, "no free connection in the client pool")
        except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
            recorder.on_failure(clock(), ErrorClass.CONNECT_ERROR, _describe(exc))
        except httpx.RemoteProtocolError as exc:
            # The peer closed before the HTTP body was complete (e.g. an unfinished chunked body):
            # the connection dropped. A properly ended body without [DONE] is the recorder's `truncated`.
            recorder.on_failure(clock(), ErrorClass.CONNECT_ERROR, _describe(exc))
        except (httpx.LocalProtocolError, httpx.DecodingError) as exc:
            recorder.on_failure(clock(), ErrorClass.PROTOCOL_ERROR, _describe(exc))
        except httpx.TransportError as exc:
            recorder.on_failure(clock(), ErrorClass.CONNECT_ERROR, _describe(exc))
        finally:
            if response is not None:
                await response.aclose()
        return recorder.result()


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
