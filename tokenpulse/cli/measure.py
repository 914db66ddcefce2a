"""`tokenpulse measure`: one streaming request, measured like curl measures a download.

Uses the async driver and the recorder, so its figures mean exactly what the prober's and the load
test's mean. Exit 0 when the outcome is ok, 1 when the request failed (the result is still printed),
2 for a usage error (a key that is not ASCII, or one that would cross the network in clear text).
The key goes only where it is meant to (tokenpulse.core.keys): OPENROUTER_API_KEY to openrouter.ai, any other
host only the variable named with --api-key-env.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from tokenpulse.cli.argtypes import positive_int, positive_seconds
from tokenpulse.config import split_pinned_routing
from tokenpulse.core.format import fmt_number, fmt_seconds, fmt_usd, render_fields
from tokenpulse.core.jsonwire import dumps_pretty
from tokenpulse.core.keys import DEFAULT_KEY_ENV, belongs_to, insecure_key_problem, read_api_key, url_host
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.request import (
    DEFAULT_CONNECT_S,
    DEFAULT_IDLE_S,
    DEFAULT_TOTAL_S,
    DEFAULT_TTFT_S,
    REASONING_EFFORTS,
    ChatRequest,
    Timeouts,
    prepare,
)
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver

DEFAULT_BASE_URL = "http://127.0.0.1:8080/api/v1"
DEFAULT_MODEL = "nvidia/nemotron-3-super-120b-a12b"
DEFAULT_PROMPT = "Explain in three sentences why the sky is blue."


def reasoning_setting(effort: str | None) -> dict[str, object] | None:
    """The request's `reasoning` object for a CLI effort level ("none" turns reasoning off)."""
    if effort is None:
        return None
    if effort == "none":
        return {"enabled": False}
    return {"effort": effort}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure",
        help="send one streaming chat request and print its TTFT, throughput and outcome",
        description="Send one streaming chat completion and measure it (TTFB, TTFT, TTFC, E2E, TPOT, "
                    "tokens/s, usage, outcome). Exit 0 if ok, 1 if the request failed, 2 on usage errors.",
    )
    p.add_argument("--base-url", default=DEFAULT_BASE_URL,
                   help="API root as written for the openai SDK, e.g. https://openrouter.ai/api/v1 or "
                        f"http://127.0.0.1:8000/v1 (default: {DEFAULT_BASE_URL}, the embedded mock)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model id (default: {DEFAULT_MODEL})")
    p.add_argument("--provider", help="pin one OpenRouter provider (provider.only, no fallbacks, "
                   "require_parameters)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="user message to send")
    p.add_argument("--max-tokens", type=positive_int, default=256, help="max output tokens (default: 256)")
    p.add_argument("--reasoning-effort", choices=REASONING_EFFORTS,
                   help="pin the reasoning setting (none turns reasoning off); default: the model's own")
    p.add_argument("--api-key-env", metavar="NAME",
                   help=f"environment variable holding the API key, sent to --base-url whatever its host. "
                        f"Without it, {DEFAULT_KEY_ENV} is sent only to its own host (openrouter.ai) and no "
                        "key goes anywhere else (a local vLLM or mock needs none; name the variable to "
                        "send one). The key itself is never printed")
    p.add_argument("--allow-insecure-key", action="store_true",
                   help="allow sending the key over plain http to a host that is not a loopback address "
                        "(anyone on the network path can read it); without it that is an error")
    p.add_argument("--connect-timeout", type=positive_seconds, default=DEFAULT_CONNECT_S,
                   help=f"seconds (default: {DEFAULT_CONNECT_S:g})")
    p.add_argument("--ttft-timeout", type=positive_seconds, default=DEFAULT_TTFT_S,
                   help=f"seconds until the first token (default: {DEFAULT_TTFT_S:g})")
    p.add_argument("--idle-timeout", type=positive_seconds, default=DEFAULT_IDLE_S,
                   help=f"longest silence between reads after the first token, seconds "
                        f"(default: {DEFAULT_IDLE_S:g})")
    p.add_argument("--total-timeout", type=positive_seconds, default=DEFAULT_TOTAL_S,
                   help=f"seconds (default: {DEFAULT_TOTAL_S:g})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def choose_key_env(base_url: str, api_key_env: str | None) -> tuple[str | None, str | None]:
    """(the variable whose key is sent, a note for stderr). An explicit `--api-key-env` is sent to any
    host; the default variable only to the host it belongs to, so `--base-url http://gpu-box:8000/v1`
    never receives an OpenRouter key by accident."""
    if api_key_env:
        return api_key_env, None
    if belongs_to(DEFAULT_KEY_ENV, base_url):
        return DEFAULT_KEY_ENV, None
    note = None
    if os.environ.get(DEFAULT_KEY_ENV):
        note = (f"note: not sending {DEFAULT_KEY_ENV} to {url_host(base_url) or base_url}, which is not its host "
                f"(openrouter.ai); pass --api-key-env {DEFAULT_KEY_ENV} to send it there")
    return None, note


def run(args: argparse.Namespace) -> int:
    key_env, note = choose_key_env(args.base_url, args.api_key_env)
    if note:
        print(note, file=sys.stderr)
    api_key = read_api_key(key_env)  # ApiKeyError (not ASCII): exit 2 in cli.main
    if key_env and api_key is None and not args.json:
        print(f"note: {key_env} is not set; sending no Authorization header", file=sys.stderr)
    if api_key is not None and not args.allow_insecure_key:
        problem = insecure_key_problem(args.base_url, key_env or "")
        if problem:
            print(f"error: {problem}, or pass --allow-insecure-key", file=sys.stderr)
            return 2
    request = ChatRequest(
        model=args.model,
        messages=[{"role": "user", "content": args.prompt}],
        max_tokens=args.max_tokens,
        reasoning=reasoning_setting(args.reasoning_effort),
        provider=args.provider,
        # A pinned measurement asks for require_parameters, as the prober's and load tests' do.
        provider_routing=split_pinned_routing({}, args.provider, require_parameters=True)[0],
    )
    prepared = prepare(args.base_url, request, api_key=api_key)
    timeouts = Timeouts(connect=args.connect_timeout, ttft=args.ttft_timeout, idle=args.idle_timeout,
                        total=args.total_timeout)

    async def once() -> StreamResult:
        async with AsyncStreamDriver() as driver:
            return await driver.run(prepared, timeouts)

    result = asyncio.run(once())
    if args.json:
        print(dumps_pretty(result.to_dict()))
    else:
        print(render_result(result))
    return 0 if result.ok else 1


def render_result(result: StreamResult) -> str:
    est = " (estimated)" if result.tokens_estimated else ""
    if result.usage_invalid:  # the server's usage held NaN, a negative or absurd number: not used
        est = " (estimated: the server's usage was invalid)" if result.tokens_estimated else " (usage invalid)"
    outcome = result.outcome.value if result.ok else f"{result.outcome.value}: {result.error_class}"
    pairs = [
        ("outcome", outcome),
        *([("error", result.error_message or "")] if not result.ok else []),
        ("http status", str(result.http_status or "-")),
        ("provider", result.provider or "-"),
        ("generation id", result.generation_id or "-"),
        ("TTFB", fmt_seconds(result.ttfb_s)),
        ("TTFT", fmt_seconds(result.ttft_s)),
        ("TTFC (first content)", fmt_seconds(result.ttfc_s)),
        ("E2E", fmt_seconds(result.e2e_s)),
        ("TPOT", fmt_seconds(result.tpot_s)),
        ("output tokens/s", fmt_number(result.output_tokens_per_s)),
        ("prompt tokens", fmt_number(result.prompt_tokens) + est),
        ("output tokens", fmt_number(result.output_tokens) + est),
        ("reasoning tokens", fmt_number(result.reasoning_tokens) + est),
        ("token events", fmt_number(result.chunk_count)),
        ("finish reason", result.finish_reason or "-"),
        ("cost", fmt_usd(result.cost_usd)),
    ]
    return render_fields(pairs)
