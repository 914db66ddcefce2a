"""Wire shapes of the mock: stream ordering, non-stream bodies, headers, usage, catalogue, errors."""

from __future__ import annotations

import json
import math

import httpx
from mock_helpers import PLAIN, REASONER, chat_body, stream_chat, words

from tokenpulse.mock import MockServerThread

PIN_ALPHA = {"only": ["alpha"], "allow_fallbacks": False}


def test_stream_order_role_reasoning_content_finish_usage_done(client: httpx.Client) -> None:
    res = stream_chat(client, chat_body(REASONER, provider=PIN_ALPHA))
    assert res.status == 200 and res.done
    chunks = res.chunks
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    kinds = []
    for c in chunks[1:]:
        if not c["choices"]:
            kinds.append("usage")
        elif c["choices"][0]["finish_reason"]:
            kinds.append("finish")
        elif c["choices"][0]["delta"].get("reasoning"):
            kinds.append("reasoning")
        elif c["choices"][0]["delta"].get("content"):
            kinds.append("content")
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert collapsed == ["reasoning", "content", "finish", "usage"]
    finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert finish["choices"][0]["finish_reason"] == "stop"
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and c["model"] == REASONER
        assert c["provider"] == "Alpha Cloud" and c["id"] == chunks[0]["id"]


def test_reasoning_deltas_carry_details_and_empty_content(client: httpx.Client) -> None:
    res = stream_chat(client, chat_body(REASONER, provider=PIN_ALPHA))
    deltas = [c["choices"][0]["delta"] for c in res.chunks if c["choices"]]
    reasoning = [d for d in deltas if d.get("reasoning")]
    assert reasoning
    indexes = []
    for d in reasoning:
        assert d["content"] == ""
        [detail] = d["reasoning_details"]
        signature = detail.pop("signature", None)
        assert detail == {"type": "reasoning.text", "text": d["reasoning"], "index": detail["index"],
                          "format": "unknown"}
        indexes.append((detail["index"], signature is not None))
    # two details (index 0 then 1) when there are two chunks or more; the last piece of each is signed
    assert [i for i, _ in indexes] == sorted(i for i, _ in indexes)
    assert [signed for _, signed in indexes].count(True) == len({i for i, _ in indexes})
    assert indexes[-1][1]


def test_usage_counts_what_was_sent(client: httpx.Client) -> None:
    res = stream_chat(client, chat_body(REASONER, provider=PIN_ALPHA, reasoning={"effort": "high"}))
    usage = res.usage()
    assert usage is not None
    reasoning_n, content_n = words(res.reasoning()), words(res.content())
    assert usage["completion_tokens_details"]["reasoning_tokens"] == reasoning_n == 30
    assert usage["completion_tokens"] == reasoning_n + content_n
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    # model base price 0.5 / 1.5 USD per 1M
    expected = (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1e6
    assert math.isclose(usage["cost"], expected, rel_tol=1e-9)


def test_provider_price_overrides_model_price(client: httpx.Client) -> None:
    res = stream_chat(client, chat_body(PLAIN, provider={"only": ["beta"]}))
    usage = res.usage()
    assert usage is not None
    expected = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert math.isclose(usage["cost"], expected)


def test_prompt_tokens_are_characters_over_four(client: httpx.Client) -> None:
    messages = [{"role": "system", "content": "x" * 10},
                {"role": "user", "content": [{"type": "text", "text": "y" * 7}]}]
    body = client.post("/api/v1/chat/completions", json={"model": PLAIN, "messages": messages}).json()
    assert body["usage"]["prompt_tokens"] == math.ceil(17 / 4)


def test_openai_path_sends_usage_only_when_asked(client: httpx.Client) -> None:
    plain = stream_chat(client, chat_body(PLAIN), path="/v1/chat/completions")
    assert plain.done and plain.usage() is None
    asked = stream_chat(client, chat_body(PLAIN, stream_options={"include_usage": True}),
                        path="/v1/chat/completions")
    assert asked.done and asked.usage() is not None
    usage_chunk = next(c for c in asked.chunks if c.get("usage"))
    assert usage_chunk["choices"] == []
    assert asked.data[-1] == "[DONE]" and asked.chunks[-1] is not None


def test_stream_headers(client: httpx.Client) -> None:
    with client.stream("POST", "/api/v1/chat/completions", json=chat_body(stream=True)) as resp:
        raw = resp.read()
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["transfer-encoding"] == "chunked"
        gen_id = resp.headers["x-generation-id"]
    assert gen_id.startswith("gen-")
    assert f'"id":"{gen_id}"'.encode() in raw


def test_non_stream_body(client: httpx.Client) -> None:
    resp = client.post("/api/v1/chat/completions", json=chat_body(REASONER, provider=PIN_ALPHA))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["object"] == "chat.completion" and body["id"] == resp.headers["x-generation-id"]
    assert body["provider"] == "Alpha Cloud"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message["role"] == "assistant" and message["content"]
    assert message["reasoning"] and "".join(d["text"] for d in message["reasoning_details"]) == message["reasoning"]
    usage = body["usage"]
    assert usage["completion_tokens"] == words(message["content"]) + words(message["reasoning"])


def test_stream_and_non_stream_agree_for_a_seed(client: httpx.Client) -> None:
    body = chat_body(REASONER, seed=42, provider=PIN_ALPHA)
    streamed = stream_chat(client, body)
    whole = client.post("/api/v1/chat/completions", json=body).json()
    assert streamed.content() == whole["choices"][0]["message"]["content"]
    assert streamed.reasoning() == whole["choices"][0]["message"]["reasoning"]
    usage = streamed.usage()
    assert usage is not None
    for key in ("prompt_tokens", "completion_tokens", "cost"):
        assert usage[key] == whole["usage"][key]


def test_max_tokens_counts_reasoning_and_content(client: httpx.Client) -> None:
    res = stream_chat(client, chat_body(REASONER, max_tokens=15, provider=PIN_ALPHA))
    usage = res.usage()
    assert usage is not None and usage["completion_tokens"] == 15
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 12  # medium
    finish = [c for c in res.chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish[0]["choices"][0]["finish_reason"] == "length"


def test_ignore_eos_outputs_exactly_max_tokens(client: httpx.Client) -> None:
    for n in (3, 77):
        body = client.post("/api/v1/chat/completions",
                           json=chat_body(PLAIN, max_tokens=n, ignore_eos=True)).json()
        assert body["usage"]["completion_tokens"] == n
        assert words(body["choices"][0]["message"]["content"]) == n
        assert body["choices"][0]["finish_reason"] == "length"
    body = client.post("/api/v1/chat/completions",
                       json=chat_body(PLAIN, max_tokens=90, min_tokens=90)).json()
    assert body["usage"]["completion_tokens"] == 90


def test_stop_sequence_cuts_the_text(client: httpx.Client) -> None:
    full = client.post("/api/v1/chat/completions", json=chat_body(PLAIN, seed=5)).json()
    text = full["choices"][0]["message"]["content"]
    stop_word = text.split()[3]
    cut = client.post("/api/v1/chat/completions", json=chat_body(PLAIN, seed=5, stop=[stop_word])).json()
    got = cut["choices"][0]["message"]["content"]
    assert stop_word not in got and text.startswith(got)
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["usage"]["completion_tokens"] == words(got)


def test_reasoning_settings(client: httpx.Client) -> None:
    def usage_of(reasoning: dict[str, object] | None) -> tuple[int, str]:
        body = chat_body(REASONER, provider=PIN_ALPHA, seed=1)
        if reasoning is not None:
            body["reasoning"] = reasoning
        res = stream_chat(client, body)
        u = res.usage()
        assert u is not None
        return u["completion_tokens_details"]["reasoning_tokens"], res.reasoning()

    assert usage_of(None)[0] == 12  # the model's default effort (medium)
    assert usage_of({"effort": "low"})[0] == 6
    assert usage_of({"effort": "high"})[0] == 30
    assert usage_of({"enabled": False}) == (0, "")
    assert usage_of({"effort": "none"}) == (0, "")
    assert usage_of({"max_tokens": 9})[0] == 9
    hidden_n, hidden_text = usage_of({"effort": "high", "exclude": True})
    assert hidden_n == 30 and hidden_text == ""  # generated and billed, not sent
    plain = stream_chat(client, chat_body(PLAIN, reasoning={"effort": "high"}))
    assert plain.usage()["completion_tokens_details"]["reasoning_tokens"] == 0  # type: ignore[index]


def test_forced_tool_call_streams_tool_calls(client: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    res = stream_chat(client, chat_body(PLAIN, tools=tools, tool_choice="required"))
    deltas = [c["choices"][0]["delta"] for c in res.chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "search"
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert set(json.loads(arguments)) == {"query"}
    assert not any(d.get("content") for d in deltas)
    finish = [c["choices"][0]["finish_reason"] for c in res.chunks if c["choices"]]
    assert finish[-1] == "tool_calls"
    # tool_choice none, and auto once the last message is the tool's result: the model answers in text
    assert stream_chat(client, chat_body(PLAIN, tools=tools, tool_choice="none")).content()
    body = chat_body(PLAIN, tools=tools, tool_choice="auto")
    body["messages"] += [{"role": "assistant", "content": None, "tool_calls": [calls[0]]},
                         {"role": "tool", "tool_call_id": calls[0]["id"], "content": "{\"ok\": true}"}]
    assert stream_chat(client, body).content()


def test_unknown_model(client: httpx.Client) -> None:
    for path, status in (("/api/v1/chat/completions", 400), ("/v1/chat/completions", 404)):
        resp = client.post(path, json=chat_body("nobody/nothing"))
        assert resp.status_code == status
        err = resp.json()["error"]
        assert err["code"] == status and "nobody/nothing" in err["message"]
        assert isinstance(err["metadata"], dict)


def test_bad_requests_are_400(client: httpx.Client) -> None:
    bad_json = client.post("/api/v1/chat/completions", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == 400
    for body in ({"model": PLAIN}, {"model": PLAIN, "messages": []},
                 chat_body(max_tokens=0), chat_body(reasoning={"effort": "max"}), [1, 2]):
        assert client.post("/api/v1/chat/completions", json=body).status_code == 400


def test_invalid_key_is_401_and_never_echoed(client: httpx.Client) -> None:
    key = "sk-invalid-abcdef0123456789"
    headers = {"Authorization": f"Bearer {key}"}
    for method, path, body in (("POST", "/api/v1/chat/completions", chat_body()),
                               ("POST", "/api/v1/chat/completions", chat_body(stream=True)),
                               ("GET", "/api/v1/key", None)):
        resp = client.request(method, path, json=body, headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == 401
        assert key not in resp.text and "abcdef" not in resp.text
        assert all(key not in v for v in resp.headers.values())
    ok = client.post("/api/v1/chat/completions", json=chat_body(),
                     headers={"Authorization": "Bearer sk-test-123"})
    assert ok.status_code == 200 and "sk-test-123" not in ok.text


def test_models_list(client: httpx.Client) -> None:
    for path in ("/api/v1/models", "/v1/models"):
        body = client.get(path).json()
        assert body["object"] == "list"
        by_id = {m["id"]: m for m in body["data"]}
        assert set(by_id) == {REASONER, PLAIN}
        m = by_id[REASONER]
        assert m["object"] == "model" and m["owned_by"] == "test" and m["name"] == "Test Reasoner"
        assert m["context_length"] == 8192 and isinstance(m["created"], int)
        assert m["pricing"]["prompt"] == "0.0000005" and m["pricing"]["completion"] == "0.0000015"


def test_model_endpoints(client: httpx.Client) -> None:
    body = client.get(f"/api/v1/models/{REASONER}/endpoints").json()["data"]
    assert body["id"] == REASONER and "architecture" in body
    eps = {e["tag"]: e for e in body["endpoints"]}
    assert set(eps) == {"alpha", "beta", "gamma"}
    beta = eps["beta"]
    assert beta["provider_name"] == "Beta" and beta["pricing"] == {
        "prompt": "0.000001", "completion": "0.000002", "request": "0", "image": "0"}
    assert beta["status"] == 0 and isinstance(beta["uptime_last_30m"], float)
    assert "reasoning" in beta["supported_parameters"] and beta["context_length"] == 8192
    for key in ("name", "model_name", "quantization", "max_completion_tokens"):
        assert key in beta
    assert client.get("/api/v1/models/nobody/nothing/endpoints").status_code == 404


def test_key_reports_spend() -> None:
    from mock_helpers import make_farm
    with MockServerThread(make_farm()) as srv, httpx.Client(base_url=srv.root_url) as c:
        before = c.get("/api/v1/key").json()["data"]
        assert before == {**before, "label": "mock", "limit": 100.0, "usage": 0.0,
                          "limit_remaining": 100.0, "is_free_tier": False}
        cost = c.post("/api/v1/chat/completions", json=chat_body()).json()["usage"]["cost"]
        after = c.get("/api/v1/key").json()["data"]
        assert math.isclose(after["usage"], cost) and math.isclose(after["limit_remaining"], 100.0 - cost)


def test_control_endpoints(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    stats = client.get("/_mock/stats").json()
    assert set(stats["providers"]) == {"alpha", "beta", "gamma"}
    alpha = stats["providers"]["alpha"]
    for key in ("requests", "served", "in_flight", "queued", "errors", "completion_tokens", "outage"):
        assert key in alpha
    assert client.get("/nope").status_code == 404
    assert client.get("/api/v1/chat/completions").status_code == 405
    assert client.post("/_mock/outage", json={"provider": "nope", "active": True}).status_code == 404
    assert client.post("/_mock/outage", json={"active": True}).status_code == 400


def test_keepalive_comments_before_the_first_token() -> None:
    from mock_helpers import make_farm, parse_sse, profile
    slow_start = profile(ttft={"median_ms": 200, "p99_ms": 200}, keepalive_ms=40)
    with MockServerThread(make_farm({"slow": {"name": "Slow", "profile": slow_start}})) as srv, \
            httpx.Client(base_url=srv.root_url, timeout=10) as c:
        raw = c.post("/api/v1/chat/completions", json=chat_body(stream=True)).content
    _, comments = parse_sse(raw)
    role_at = raw.index(b'"delta":{"role":"assistant","content":""}')
    first_token_at = raw.index(b'"content":"', role_at + 40)
    between = raw[role_at:first_token_at].count(b": OPENROUTER PROCESSING\n\n")
    assert between >= 3 and comments == between  # none once tokens flow
