"""The official openai SDK talks to the mock's /v1 like to any OpenAI-compatible server."""

from __future__ import annotations

import pytest
from mock_helpers import REASONER

from tokenpulse.mock import MockServerThread

openai = pytest.importorskip("openai")

MESSAGES = [{"role": "user", "content": "Tell me something."}]
PIN = {"provider": {"only": ["alpha"], "allow_fallbacks": False}}


def test_stream_reassembles_the_non_stream_answer(server: MockServerThread) -> None:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    whole = client.chat.completions.create(model=REASONER, messages=MESSAGES, seed=11, extra_body=PIN)
    stream = client.chat.completions.create(model=REASONER, messages=MESSAGES, seed=11, stream=True,
                                            stream_options={"include_usage": True}, extra_body=PIN)
    text, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(text) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason == "stop"
    assert usage is not None and whole.usage is not None
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == \
        whole.usage.completion_tokens_details.reasoning_tokens > 0


def test_models_list(server: MockServerThread) -> None:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    ids = {m.id for m in client.models.list()}
    assert REASONER in ids


def test_sdk_surfaces_mock_errors(server: MockServerThread) -> None:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-invalid-x", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=REASONER, messages=MESSAGES)
    ok = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        ok.chat.completions.create(model="nobody/nothing", messages=MESSAGES)
