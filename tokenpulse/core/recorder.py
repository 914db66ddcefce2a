"""Sans-IO chat-stream recorder: (monotonic timestamp, bytes) in, `StreamResult` out.

Every timing and token decision in tokenpulse is made here and nowhere else (DESIGN.md §2): the load
test and the prober both feed this class from their drivers, so their figures mean the same thing.

The driver's only duties are to read `t0` just before sending, to stamp every read with the monotonic
clock *at receipt* (before any parsing) and to report transport failures. The recorder decodes SSE,
parses each chunk and decides what counts as a token, when the stream ended and why it failed.

What counts as a token-carrying event (TTFT): a non-empty `delta.content`, `delta.reasoning` (or vLLM's
`reasoning_content`), a non-empty `reasoning_details` entry, or a non-empty `tool_calls` list. Role-only
chunks, empty strings, `null`, SSE comments and usage-only chunks do not count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from tokenpulse.core.errordetail import ErrorDetail, parse_error_detail, rate_limit_headers
from tokenpulse.core.outcomes import ErrorClass, ErrorOrigin, Outcome, error_class_for_status
from tokenpulse.core.reasoning_details import ReasoningDetailsMerger
from tokenpulse.core.redact import clip, redact
from tokenpulse.core.served import ProviderPin, served_matches_pin
from tokenpulse.core.sse import SSEDecoder
from tokenpulse.core.toolcalls import ToolCallAccumulator
from tokenpulse.core.usage import NO_USAGE, parse_usage

#: An error body (or any body that is not an event stream) is read up to this many bytes, then the
#: request ends with its error class: the first part is all a message needs, and an endless 500 body
#: must be a `server_error` at once, not a `timeout_ttft` after reading it for a minute.
ERROR_BODY_LIMIT = 64 * 1024
#: Identifiers taken from the server (provider, generation id, finish reason) are cut to this length.
MAX_ID_CHARS = 256
#: The message of a result whose response made the recorder itself fail (a bug: the recorder is meant
#: never to raise, whatever the bytes); the request still gets a record and an error class.
INTERNAL_ERROR_PREFIX = "recorder could not interpret the response"
#: Ground-truth stamps are monotonic nanoseconds: a non-negative int64, or the truth is dropped.
_MAX_NS = 2**63 - 1
#: Default cap on a streamed response: a runaway stream becomes a protocol_error, not an OOM.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Characters per token when the server sends no usage (a common rule of thumb for English text).
CHARS_PER_TOKEN_ESTIMATE = 4.0

_NS = 1e-9


@dataclass(slots=True)
class StreamResult:
    """Everything measured about one streamed chat completion.

    Times are seconds from t0 (just before the request was sent). `token_times_s` holds the arrival of
    each token-carrying event; its successive differences are the chunk gaps (inter-token latency per
    chunk, as vLLM defines ITL). The two series are rounded when they are made, in integer arithmetic
    (`token_times_s` to the microsecond, `truth_lags_s` to 0.1 µs): finer is noise, the shortest float
    text of such a value is short (a JSONL record per request stays small), and rounding 300 floats with
    `round()` afterwards cost a load test ~80 µs per request. Token counts come from the server's `usage`
    unless `tokens_estimated`.
    """

    outcome: Outcome
    error_class: ErrorClass | None
    error_message: str | None
    http_status: int | None
    t0_ns: int
    ttfb_s: float | None
    ttft_s: float | None
    ttfc_s: float | None
    e2e_s: float | None
    tpot_s: float | None
    output_tokens_per_s: float | None
    prompt_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    tokens_estimated: bool
    chunk_count: int
    token_times_s: list[float]
    provider: str | None
    generation_id: str | None
    finish_reason: str | None
    retry_after_s: float | None
    bytes_received: int
    keepalive_count: int
    #: The server sent a `usage` with a figure that is not a finite non-negative number in range
    #: (tokenpulse/core/usage.py): its tokens and cost are unknown (tokens estimated like absent usage).
    usage_invalid: bool = False
    #: Ground truth from a mock that stamps chunks (`tokenpulse_truth`): the server's own TTFT and the
    #: client lag of each token event (receipt minus send, same CLOCK_MONOTONIC). None otherwise.
    truth_ttft_s: float | None = None
    truth_lags_s: list[float] | None = None
    text: str | None = None
    #: The connection phase of this request (set by the driver from its transport, blackbox_exporter's
    #: `phase`): TCP connect with DNS, and TLS handshake, in seconds; both None on a reused kept-alive
    #: connection (`connection_reused`), `tls_s` None over plain TCP. TTFB, TTFT and E2E include them.
    connect_s: float | None = None
    tls_s: float | None = None
    connection_reused: bool | None = None
    #: OpenRouter's details of a failed request (tokenpulse/core/errordetail.py): who answered
    #: (`origin`), `error.metadata` / `error.availability` and the `X-RateLimit-*` headers. None when
    #: the failure carried none (a timeout, a reset) or the request succeeded.
    error_detail: ErrorDetail | None = None
    #: Time from t0 to the first delta carrying `tool_calls` (None when no tool was called); TTFT counts
    #: it as a token too, TTFC (first *content*) does not.
    first_tool_call_s: float | None = None
    #: The streamed tool calls, assembled by index (core/toolcalls.py): dicts of index, id, name,
    #: arguments, truncated. None when the response called no tool.
    tool_calls: list[dict[str, Any]] | None = None
    #: With `keep_text` (a conversation goes on): the merged `reasoning_details` to send back unmodified
    #: (core/reasoning_details.py), whether the merge had to cut them, and the `reasoning` text.
    reasoning_details: list[dict[str, Any]] | None = None
    reasoning_details_truncated: bool = False
    reasoning_text: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def error_origin(self) -> ErrorOrigin | None:
        """Who answered with the error (a bounded label value), when the response said."""
        return self.error_detail.origin if self.error_detail is not None else None

    @property
    def chunk_gaps_s(self) -> list[float]:
        t = self.token_times_s
        return [b - a for a, b in zip(t, t[1:], strict=False)]

    def to_dict(self, *, include_series: bool = False) -> dict[str, Any]:
        """JSON-ready dict using the field names of `tokenpulse measure --json`.

        Built field by field rather than with `dataclasses.asdict`, which deep-copies the series element
        by element: 0.2 ms per request with ground truth, paid for every record of a load test."""
        d = {name: getattr(self, name) for name in _RESULT_FIELDS}
        d["outcome"] = self.outcome.value
        d["error_class"] = self.error_class.value if self.error_class else None
        del d["t0_ns"]
        if include_series:
            d["token_times_s"] = list(self.token_times_s)
            if self.truth_lags_s is not None:
                d["truth_lags_s"] = list(self.truth_lags_s)
        else:
            del d["token_times_s"]
            del d["truth_lags_s"]
        if d["text"] is None:
            del d["text"]
        d["error_detail"] = self.error_detail.to_dict() if self.error_detail is not None else None
        # What a conversation sends back stays in memory: a record keeps its size, not its text.
        details = d.pop("reasoning_details")
        d["reasoning_details_count"] = None if details is None else len(details)
        del d["reasoning_text"]
        calls = d["tool_calls"]
        if calls is not None:
            d["tool_calls"] = [{"index": c["index"], "name": c["name"], "arguments_chars": len(c["arguments"]),
                                "truncated": c["truncated"]}
                               for c in calls]
        return d


_RESULT_FIELDS = tuple(f.name for f in fields(StreamResult))


class StreamRecorder:
    """Feed it the response of one streaming request; ask it for the `StreamResult`.

    Call order: `on_headers` once, `on_bytes` for every read, then `on_eof` (stream closed) or
    `on_failure` (transport error or timeout detected by the driver). `finished` turns true when the
    recorder needs no more bytes (terminal error, byte cap, or `[DONE]`); drivers should then stop
    reading and call `on_eof` (a no-op after a terminal error).
    """

    __slots__ = (
        "t0_ns", "_secrets", "_max_bytes", "_keep_text", "_prompt_tokens_hint", "_decoder",
        "status", "_content_type_ok", "_sse_body", "_t_headers", "_t_first_token", "_t_first_content",
        "_t_last_token", "_t_done", "_t_end", "_token_ns", "_truth_sent", "_truth_recv", "_truth_ok", "_usage",
        "_provider", "_generation_id", "_finish_reason", "_retry_after", "_bytes", "_error_body",
        "_error_class", "_error_message", "_content_chars", "_reasoning_chars", "_text", "_done",
        "finished", "first_token_seen", "_cancelled", "_pin", "_rate_limit", "_error_obj",
        "_t_first_tool", "_tools", "_details", "_reasoning_text", "_error_json",
    )

    def __init__(
        self,
        t0_ns: int,
        *,
        secrets: Sequence[str] = (),
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        keep_text: bool = False,
        prompt_tokens_hint: int | None = None,
        pin: ProviderPin | None = None,
    ) -> None:
        self.t0_ns = t0_ns
        #: The provider the request is pinned to: a result served by another is `wrong_provider`.
        self._pin = pin
        self._rate_limit: dict[str, str] | None = None
        self._error_obj: Any = None
        #: (body length, parsed JSON) of the error body: the message and the error details read it once.
        self._error_json: tuple[int, Any] | None = None
        self._secrets = tuple(secrets)
        self._max_bytes = max_response_bytes
        self._keep_text = keep_text
        self._prompt_tokens_hint = prompt_tokens_hint
        self._decoder = SSEDecoder()
        self.status: int | None = None
        self._content_type_ok = False
        self._sse_body = False  # status < 300 and an event-stream content type: decode the body
        self._t_headers: int | None = None
        self._t_first_token: int | None = None
        self._t_first_content: int | None = None
        self._t_last_token: int | None = None
        self._t_done: int | None = None
        self._t_end: int | None = None
        self._token_ns: list[int] = []
        self._truth_sent: list[int] = []
        self._truth_recv: int | None = None
        self._truth_ok = True  # false once a ground-truth stamp was not a valid int64
        self._usage: Any = None
        self._provider: str | None = None
        self._generation_id: str | None = None
        self._finish_reason: str | None = None
        self._retry_after: float | None = None
        self._bytes = 0
        self._error_body = bytearray()
        self._error_class: ErrorClass | None = None
        self._error_message: str | None = None
        self._content_chars = 0
        self._reasoning_chars = 0
        self._text: list[str] | None = [] if keep_text else None
        self._done = False
        self.finished = False
        #: Drivers switch from the TTFT deadline to the idle timeout once this is true. A plain attribute
        #: (not a property over `_t_first_token`): the sync driver reads it after every read.
        self.first_token_seen = False
        self._cancelled: str | None = None
        self._t_first_tool: int | None = None
        self._tools: ToolCallAccumulator | None = None
        self._details: ReasoningDetailsMerger | None = None
        self._reasoning_text: list[str] | None = [] if keep_text else None

    # ------------------------------------------------------------------------------ events in
    def on_headers(self, t_ns: int, status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        """The response head arrived at `t_ns` (TTFB)."""
        try:
            self._on_headers(t_ns, status, headers)
        except Exception as exc:  # noqa: BLE001 - a bug, see INTERNAL_ERROR_PREFIX
            self._internal_error(t_ns, exc)

    def _on_headers(self, t_ns: int, status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        self._t_headers = t_ns
        self.status = status
        items = headers.items() if isinstance(headers, Mapping) else headers
        lower = {k.lower(): v for k, v in items}
        content_type = lower.get("content-type", "")
        self._content_type_ok = content_type.split(";", 1)[0].strip().lower() == "text/event-stream"
        self._sse_body = status < 300 and self._content_type_ok
        gen_id = lower.get("x-generation-id")
        self._generation_id = gen_id[:MAX_ID_CHARS] if gen_id and isinstance(gen_id, str) else None
        self._retry_after = _parse_retry_after(lower.get("retry-after"))
        if status >= 400:
            self._rate_limit = rate_limit_headers(lower)

    def on_bytes(self, t_ns: int, data: bytes) -> None:
        """Bytes of the body were received at `t_ns` (stamped before any parsing)."""
        if self.finished or not data:
            return
        self._bytes += len(data)
        if not self._sse_body:
            room = ERROR_BODY_LIMIT - len(self._error_body)
            self._error_body += data[:room]
            if len(data) > room:  # past the cap: the rest cannot change the verdict
                self._end(t_ns, f" (body cut at {ERROR_BODY_LIMIT} bytes)")
            return
        if self._bytes > self._max_bytes:
            self._fail(t_ns, ErrorClass.PROTOCOL_ERROR, f"response exceeded {self._max_bytes} bytes")
            return
        try:  # free unless it raises (Python 3.11+): the guarantee, not a per-event cost
            for text in self._decoder.feed_data(data):
                self._on_event(t_ns, text)
                if self.finished:
                    return
        except Exception as exc:  # noqa: BLE001 - a bug, see INTERNAL_ERROR_PREFIX
            self._internal_error(t_ns, exc)

    def on_eof(self, t_ns: int) -> None:
        """The body ended (connection closed or final chunk of a chunked body) at `t_ns`."""
        if self._t_end is not None:
            return
        try:
            self._end(t_ns, "")
        except Exception as exc:  # noqa: BLE001 - a bug, see INTERNAL_ERROR_PREFIX
            self._internal_error(t_ns, exc)

    def _end(self, t_ns: int, cut: str) -> None:
        """The body ended (or was cut at the error-body cap, `cut` saying so): decide its class."""
        self._t_end = t_ns
        self.finished = True
        if self._error_class is not None:
            return
        status = self.status
        if status is None:
            self._set_error(ErrorClass.PROTOCOL_ERROR, "connection closed before a response head")
            return
        http_class = error_class_for_status(status)
        if http_class is not None or status >= 300:
            self._set_error(http_class or ErrorClass.PROTOCOL_ERROR, self._error_body_message() + cut)
            return
        if not self._content_type_ok:
            message = self._error_body_message() if self._error_body else "no body"
            self._set_error(ErrorClass.PROTOCOL_ERROR, f"expected text/event-stream: {message}{cut}")
            return
        if self._done or self._finish_reason is not None:
            if self._t_first_token is None:
                self._set_error(ErrorClass.EMPTY_RESPONSE, "stream ended without any token")
            return
        if self._decoder.pending_data:
            self._set_error(ErrorClass.TRUNCATED, "stream closed inside an event, without [DONE]")
        else:
            self._set_error(ErrorClass.TRUNCATED, "stream closed without [DONE] or a finish reason")

    def on_failure(self, t_ns: int, error_class: ErrorClass, message: str) -> None:
        """A transport error or a timeout ended the request at `t_ns`."""
        if self._error_class is None:
            self._fail(t_ns, error_class, message)
        if self._t_end is None:
            self._t_end = t_ns

    def cancel(self, t_ns: int, reason: str) -> None:
        """The caller gave up on the request at `t_ns` (a load test that stopped waiting for it). The
        result is `cancelled` with the timings reached so far, unless the request had already ended
        (its end and class stand)."""
        if self._t_end is None and not self.finished and self._error_class is None:
            self._t_end = t_ns
            self._cancelled = reason

    def _internal_error(self, t_ns: int, exc: Exception) -> None:
        """The recorder itself failed on this response (a bug): end the request as a protocol error, so
        that it still gets a record, an error class and the error backoff."""
        self._fail(t_ns, ErrorClass.PROTOCOL_ERROR, f"{INTERNAL_ERROR_PREFIX}: {type(exc).__name__}")

    # ----------------------------------------------------------------------------- internals
    def _on_event(self, t_ns: int, data: str) -> None:
        if data == "[DONE]":
            self._done = True
            self._t_done = t_ns
            self.finished = True  # the answer is complete: drivers stop, even if the body stays open
            return
        if self._done:
            return  # nothing after [DONE] is part of the answer
        obj = _parse_json(data)
        if obj is _INVALID:
            self._fail(t_ns, ErrorClass.PROTOCOL_ERROR, f"invalid JSON in data line: {data[:120]!r}")
            return
        if type(obj) is not dict:
            self._fail(t_ns, ErrorClass.PROTOCOL_ERROR, "data line is not a JSON object")
            return
        if self._provider is None:
            provider = obj.get("provider")
            if isinstance(provider, str) and provider:
                self._provider = provider[:MAX_ID_CHARS]
        if self._generation_id is None:
            gen_id = obj.get("id")
            if isinstance(gen_id, str) and gen_id:
                self._generation_id = gen_id[:MAX_ID_CHARS]
        carries_token = False
        carries_content = False
        choices = obj.get("choices")
        if choices and type(choices) is list:
            for choice in choices:
                if type(choice) is not dict:
                    continue
                delta = choice.get("delta")
                if delta and type(delta) is dict:
                    content = delta.get("content")
                    if content and isinstance(content, str):
                        carries_token = carries_content = True
                        self._content_chars += len(content)
                        if self._text is not None:
                            self._text.append(content)
                    # Most deltas carry only `role` and `content`: one set test instead of four lookups.
                    if not _OTHER_TOKEN_KEYS.isdisjoint(delta):
                        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                        details = delta.get("reasoning_details")
                        if reasoning and isinstance(reasoning, str):
                            carries_token = True
                            self._reasoning_chars += len(reasoning)
                            if self._reasoning_text is not None:
                                self._reasoning_text.append(reasoning)
                        else:  # some providers send only the structured form
                            detail_chars = _reasoning_details_chars(details) if details else 0
                            if detail_chars:
                                carries_token = True
                                self._reasoning_chars += detail_chars
                        if details and self._text is not None:  # kept to send back (a conversation)
                            if self._details is None:
                                self._details = ReasoningDetailsMerger()
                            self._details.feed(details)
                        tool_calls = delta.get("tool_calls")
                        if tool_calls and isinstance(tool_calls, list):
                            carries_token = True
                            if self._tools is None:
                                self._tools = ToolCallAccumulator()
                                self._t_first_tool = t_ns
                            self._content_chars += max(self._tools.feed(tool_calls), 1)  # a token at least
                finish = choice.get("finish_reason")
                if finish and isinstance(finish, str):  # any other type is no finish reason
                    self._finish_reason = finish[:MAX_ID_CHARS]
        usage = obj.get("usage")
        if usage:  # validated once, in result(): it arrives in the last chunk
            self._usage = usage
        truth = obj.get("tokenpulse_truth")
        if carries_token:
            if self._t_first_token is None:
                self._t_first_token = t_ns
                self.first_token_seen = True
            if carries_content and self._t_first_content is None:
                self._t_first_content = t_ns
            self._t_last_token = t_ns
            self._token_ns.append(t_ns)
            if truth is not None and self._truth_ok:
                self._take_truth(truth)
        error = obj.get("error")
        if error:
            self._error_obj = error
            self._fail(t_ns, ErrorClass.MID_STREAM_ERROR, _error_text(error))
        elif self._finish_reason == "error":
            self._fail(t_ns, ErrorClass.MID_STREAM_ERROR, "finish_reason: error")

    def _take_truth(self, truth: Any) -> None:
        """One token event's ground-truth stamps; any stamp that is not an int64 drops the request's
        truth (a mock's own figures are only worth having whole)."""
        sent = truth.get("sent_ns") if type(truth) is dict else None
        if type(sent) is int and 0 <= sent <= _MAX_NS:
            self._truth_sent.append(sent)
            if self._truth_recv is None:
                recv = truth.get("recv_ns")
                if type(recv) is int and 0 <= recv <= _MAX_NS:
                    self._truth_recv = recv
                else:
                    self._truth_ok = False
        else:
            self._truth_ok = False

    def _fail(self, t_ns: int, error_class: ErrorClass, message: str) -> None:
        self._set_error(error_class, message)
        self.finished = True
        if self._t_end is None:
            self._t_end = t_ns

    def _set_error(self, error_class: ErrorClass, message: str) -> None:
        if self._error_class is None:
            self._error_class = error_class
            self._error_message = clip(redact(message, self._secrets))

    def _error_body_json(self) -> Any:
        """The error body parsed as JSON (`_INVALID` when it is not), parsed once per body length."""
        n = len(self._error_body)
        if self._error_json is None or self._error_json[0] != n:
            self._error_json = (n, _parse_json_stdlib(bytes(self._error_body).decode("utf-8", "replace")))
        return self._error_json[1]

    def _error_body_message(self) -> str:
        body = bytes(self._error_body)
        prefix = f"HTTP {self.status}" if self.status is not None else "response"
        if not body:
            return prefix
        obj = self._error_body_json()
        if obj is _INVALID:
            title = _html_title(body)
            text = (body[:200] if title is None else title).decode("utf-8", "replace")
            return f"{prefix}: {text}"
        if isinstance(obj, dict) and obj.get("error"):
            return f"{prefix}: {_error_text(obj['error'])}"
        return f"{prefix}: {body[:200].decode('utf-8', 'replace')}"

    # ------------------------------------------------------------------------------- result
    def _redacted(self, text: str | None) -> str | None:
        return None if text is None else redact(text, self._secrets)

    def result(self) -> StreamResult:
        """Build the result. Safe to call once the request has ended (after on_eof/on_failure)."""
        try:
            return self._result()
        except Exception as exc:  # noqa: BLE001 - a bug, see INTERNAL_ERROR_PREFIX
            self._internal_error(self._t_end if self._t_end is not None else self.t0_ns, exc)
            return self._bare_result()

    def _bare_result(self) -> StreamResult:
        """A failed result from plain attributes only: what `result` returns if building it failed."""
        t0 = self.t0_ns
        return StreamResult(
            outcome=Outcome.ERROR, error_class=self._error_class or ErrorClass.PROTOCOL_ERROR,
            error_message=self._error_message, http_status=self.status, t0_ns=t0,
            ttfb_s=None if self._t_headers is None else (self._t_headers - t0) * _NS, ttft_s=None, ttfc_s=None,
            e2e_s=None if self._t_end is None else (self._t_end - t0) * _NS, tpot_s=None,
            output_tokens_per_s=None, prompt_tokens=None, output_tokens=None, reasoning_tokens=None,
            cached_tokens=None, cost_usd=None, tokens_estimated=False, chunk_count=len(self._token_ns),
            token_times_s=[], provider=None, generation_id=None, finish_reason=None, retry_after_s=None,
            bytes_received=self._bytes, keepalive_count=self._decoder.comments,
        )

    def _judged(self, result: StreamResult) -> StreamResult:
        """The error details of a failed result, and the pin's verdict: a request served by another
        provider than its pin (the stream's `provider`, else the error's `metadata.provider_name`) is
        `wrong_provider` whatever its outcome, unless it was cancelled (tokenpulse/core/served.py)."""
        if result.outcome is Outcome.ERROR:
            error = self._error_obj if self._error_obj is not None else self._body_error()
            if error is not None or self._rate_limit:
                result.error_detail = parse_error_detail(error, self._rate_limit, secrets=self._secrets)
        if self._pin is None or result.outcome is Outcome.CANCELLED:
            return result
        detail = result.error_detail
        served = result.provider or (detail.provider_name if detail is not None else None)
        if served_matches_pin(self._pin, served) is False:
            was = f" ({result.error_message})" if result.error_message else ""
            result.outcome = Outcome.ERROR
            result.error_class = ErrorClass.WRONG_PROVIDER
            result.error_message = clip(redact(f"served by {served}, pinned to {self._pin.slug}{was}",
                                               self._secrets))
        return result

    def _body_error(self) -> Any:
        """The `error` object of a JSON error body, or None."""
        if not self._error_body:
            return None
        obj = self._error_body_json()
        return obj.get("error") if isinstance(obj, dict) else None

    def _result(self) -> StreamResult:
        t0 = self.t0_ns
        end = self._t_done if self._t_done is not None else self._t_end

        def secs(t: int | None) -> float | None:
            return None if t is None else (t - t0) * _NS

        usage = NO_USAGE if self._usage is None else parse_usage(self._usage)
        output_tokens = usage.output_tokens
        prompt_tokens = usage.prompt_tokens
        reasoning_tokens = usage.reasoning_tokens
        cached_tokens = usage.cached_tokens
        # Estimate only what a provider evidently processed: a request that failed before its first
        # token (an HTTP error, a timeout) has no token counts at all, rather than invented ones.
        estimated = output_tokens is None and self._t_first_token is not None
        if estimated:
            output_tokens = _estimate_tokens(self._content_chars + self._reasoning_chars)
            reasoning_tokens = _estimate_tokens(self._reasoning_chars)
            if prompt_tokens is None:
                prompt_tokens = self._prompt_tokens_hint

        tpot = speed = None
        first, last = self._t_first_token, self._t_last_token
        if first is not None and last is not None and last > first and output_tokens:
            decode_s = (last - first) * _NS
            if output_tokens > 1:
                tpot = decode_s / (output_tokens - 1)
            speed = output_tokens / decode_s

        truth_ttft = truth_lags = None
        if self._truth_ok and self._truth_sent and len(self._truth_sent) == len(self._token_ns):
            if self._truth_recv:
                truth_ttft = (self._truth_sent[0] - self._truth_recv) * _NS
            truth_lags = [(r - s + 50) // 100 / 1e7 for r, s in zip(self._token_ns, self._truth_sent, strict=True)]

        ok = self._error_class is None and self.finished
        cancelled = self._cancelled is not None
        return self._judged(StreamResult(
            outcome=Outcome.OK if ok else Outcome.CANCELLED if cancelled else Outcome.ERROR,
            error_class=None if ok or cancelled else (self._error_class or ErrorClass.TRUNCATED),
            error_message=None if ok else self._cancelled if cancelled else (
                self._error_message or "request did not finish"),
            http_status=self.status,
            t0_ns=t0,
            ttfb_s=secs(self._t_headers),
            ttft_s=secs(first),
            ttfc_s=secs(self._t_first_content),
            e2e_s=secs(end),
            tpot_s=tpot,
            output_tokens_per_s=speed,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            cached_tokens=cached_tokens,
            cost_usd=usage.cost_usd,
            tokens_estimated=estimated,
            chunk_count=len(self._token_ns),
            token_times_s=[(t - t0 + 500) // 1000 / 1e6 for t in self._token_ns],
            # Strings the server chose go to records, pages and logs like error messages do: redacted.
            provider=self._redacted(self._provider),
            generation_id=self._redacted(self._generation_id),
            finish_reason=self._redacted(self._finish_reason),
            retry_after_s=self._retry_after,
            bytes_received=self._bytes,
            keepalive_count=self._decoder.comments,
            usage_invalid=usage.invalid,
            truth_ttft_s=truth_ttft,
            truth_lags_s=truth_lags,
            text="".join(self._text) if self._text is not None else None,
            first_tool_call_s=secs(self._t_first_tool),
            tool_calls=None if self._tools is None else [
                {**c.to_dict(), "name": self._redacted(c.name)} for c in self._tools.calls()],
            reasoning_details=None if self._details is None else self._details.details(),
            reasoning_details_truncated=bool(self._details and self._details.truncated),
            reasoning_text="".join(self._reasoning_text) if self._reasoning_text else None,
        ))


def failure_result(t0_ns: int, t_ns: int, error_class: ErrorClass, message: str, *,
                   secrets: Sequence[str] = ()) -> StreamResult:
    """The result of a request that ended at `t_ns` without a response the recorder saw (the client
    itself failed): built by a recorder like any other, so its message is redacted and clipped."""
    recorder = StreamRecorder(t0_ns, secrets=secrets)
    recorder.on_failure(t_ns, error_class, message)
    return recorder.result()


_INVALID = object()
#: Delta fields other than `content` that can carry a token (reasoning, structured reasoning, tool calls).
_OTHER_TOKEN_KEYS = frozenset(("reasoning", "reasoning_content", "reasoning_details", "tool_calls"))
_raw_decode = json.JSONDecoder().raw_decode

try:
    from orjson import loads as _fast_loads
except ImportError:  # orjson is a dependency; without it every chunk takes the stdlib path
    def _fast_loads(data: bytes | bytearray | memoryview | str, /) -> Any:  # orjson.loads' signature
        raise ValueError("orjson is not installed")


def _parse_json(data: str) -> Any:
    """The JSON value of a data line, or `_INVALID` when it is not JSON.

    orjson parses a typical chunk in under half the stdlib's time, and the recorder parses every chunk.
    What orjson rejects goes to `_parse_json_stdlib`, which decides exactly as before: the stdlib
    accepts a superset (NaN, Infinity, 1e999, lone surrogates, trailing Unicode whitespace), so no
    chunk that parsed before is refused now. One difference is left on purpose: an integer literal
    outside [-2**63, 2**64) becomes a float (RFC 8259 §6 calls such numbers non-interoperable; no LLM
    API sends one), because finding such literals first would cost more than orjson saves.
    """
    try:
        return _fast_loads(data)
    except ValueError:  # orjson.JSONDecodeError (or no orjson)
        return _parse_json_stdlib(data)


def _parse_json_stdlib(data: str) -> Any:
    """json.loads, minus its per-call whitespace regex on the hot path; `_INVALID` when not JSON.

    Nesting deeper than the interpreter's recursion limit (`[[[[...` 100,000 deep) is not JSON we can
    use: RecursionError is a verdict like ValueError (orjson refuses past 1,024 levels, and sends it here)."""
    try:
        obj, end = _raw_decode(data)
        if end == len(data) or not data[end:].strip():
            return obj
    except (ValueError, RecursionError):
        pass
    try:
        return json.loads(data)  # leading whitespace, or a genuine error
    except (ValueError, RecursionError):
        return _INVALID


def _reasoning_details_chars(details: Any) -> int:
    """Characters of reasoning in an OpenRouter `reasoning_details` list (0 when it carries none)."""
    if not details or not isinstance(details, list):
        return 0
    total = 0
    for item in details:
        if isinstance(item, dict):
            for key in ("text", "summary", "data"):
                value = item.get(key)
                if value and isinstance(value, str):
                    total += len(value)
                    break
    return total


def _error_text(error: Any) -> str:
    """`code: message` of an error object; only strings and numbers are turned into text (the str() of
    a container nested a thousand deep raises RecursionError)."""
    if isinstance(error, dict):
        code = error.get("code")
        message = _scalar_text(error.get("message")) or ""
        return f"{_scalar_text(code)}: {message}" if code is not None else message
    return _scalar_text(error) or ""


def _scalar_text(value: Any) -> str | None:
    """A JSON scalar as text; a container as its kind only; None for null."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value) if not isinstance(value, int) or value.bit_length() < 1000 else "(a huge integer)"
    return f"(a JSON {'object' if isinstance(value, dict) else 'array'})"


def _html_title(body: bytes) -> bytes | None:
    """The text of an HTML page's <title>, or None. By `find`, in linear time: the regex
    `<title[^>]*>(.*?)</title>` took 2 s of CPU on a 64 KiB body of repeated `<title>`."""
    lower = body.lower()
    start = lower.find(b"<title")
    if start == -1:
        return None
    open_end = lower.find(b">", start)
    if open_end == -1:
        return None
    close = lower.find(b"</title>", open_end)
    return None if close == -1 else body[open_end + 1:close]


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta-seconds form; an HTTP date is rare from API gateways)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


def _estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN_ESTIMATE) if chars else 0
