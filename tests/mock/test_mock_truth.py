"""Opt-in ground truth: `tokenpulse_truth` {recv_ns, sent_ns} on every chunk, only when asked."""

from __future__ import annotations

import time

import httpx
from mock_helpers import REASONER, chat_body, stream_chat

TRUTH = {"X-Tokenpulse-Truth": "1"}


def test_absent_unless_requested(client: httpx.Client) -> None:
    res = stream_chat(client, chat_body(REASONER))
    assert res.done and b"tokenpulse_truth" not in res.raw
    body = client.post("/api/v1/chat/completions", json=chat_body(REASONER)).json()
    assert "tokenpulse_truth" not in body
    off = stream_chat(client, chat_body(REASONER), headers={"X-Tokenpulse-Truth": "0"})
    assert b"tokenpulse_truth" not in off.raw


def test_every_chunk_is_stamped(client: httpx.Client) -> None:
    before = time.monotonic_ns()
    res = stream_chat(client, chat_body(REASONER), headers=TRUTH)
    after = time.monotonic_ns()
    chunks = res.chunks
    assert res.done and len(chunks) > 3
    recv = {c["tokenpulse_truth"]["recv_ns"] for c in chunks}
    assert len(recv) == 1
    (recv_ns,) = recv
    assert before <= recv_ns <= after
    sent = [c["tokenpulse_truth"]["sent_ns"] for c in chunks]
    assert sent == sorted(sent) and recv_ns <= sent[0] and sent[-1] <= after
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and "usage" in usage_chunk
    assert list(usage_chunk)[-1] == "tokenpulse_truth"


def test_non_stream_is_stamped(client: httpx.Client) -> None:
    body = client.post("/api/v1/chat/completions", json=chat_body(REASONER), headers=TRUTH).json()
    truth = body["tokenpulse_truth"]
    assert truth["recv_ns"] <= truth["sent_ns"]
