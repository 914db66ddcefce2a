"""Tool calls, JSON answers and reasoning details end to end against the in-process mock: the load test's
own workload, driver and recorder (no Locust) on loopback.

Validity: the mock breaks a request's structured answer when the first draw of its seeded stream is
below `invalid_rate` (behaviour.response_invalid); the generation id names the request number, so the
expected verdict of every single request is known and the measured count must equal the expected
count exactly. The expected count itself must be a plausible Binomial(n, rate) draw: within the 99.9 %
Wilson interval of the injected rate, i.e. the seeded stream is not biased.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from mock_helpers import PLAIN, REASONER, make_farm, profile

from tokenpulse.config import Workload, parse_config
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.request import ChatRequest, Timeouts, prepare
from tokenpulse.core.stats import proportion
from tokenpulse.load.conversation import assistant_message
from tokenpulse.load.workload import PlannedRequest, WorkloadGenerator
from tokenpulse.mock import MockServerThread
from tokenpulse.mock.behaviour import response_invalid
from tokenpulse.report.validity import validity_summary
from tokenpulse.transports.asyncio_loop.driver import AsyncStreamDriver

SEED = 7
RATE = 0.25
STRICT = {"low": 6, "medium": 12, "high": 30, "jitter": 0, "details_check": "required"}


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerThread]:
    providers = {"alpha": {"name": "Alpha", "profile": profile(
        structured={"invalid_rate": RATE, "parallel_calls": 0.3}, reasoning=STRICT)}}
    with MockServerThread(make_farm(providers, seed=SEED)) as srv:
        yield srv


def _target(server: MockServerThread, model: str) -> Any:
    config = parse_config({"endpoints": [{"name": "mock", "base_url": server.root_url + "/api/v1",
                                          "models": [{"id": model, "providers": ["alpha"]}]}]})
    return next(config.targets())


async def _run(server: MockServerThread, workload: Workload, model: str, n: int,
               users: int = 4) -> list[tuple[PlannedRequest, StreamResult]]:
    """n requests from `users` concurrent users of the workload, each turn fed back (multi-turn)."""
    target = _target(server, model)
    gen = WorkloadGenerator(workload, run_id="t")
    out: list[tuple[PlannedRequest, StreamResult]] = []

    async def user(key: str, driver: AsyncStreamDriver) -> None:
        stream = gen.for_user(key)
        for _ in range(n // users):
            planned = stream.next_request(target)
            result = await driver.run(prepare(target.endpoint.base_url, planned.chat), Timeouts(total=20),
                                      keep_text=planned.keep_text)
            out.append((planned, result))
            stream.on_result(result)

    async with AsyncStreamDriver() as driver:
        await asyncio.gather(*(user(f"u{i}", driver) for i in range(users)))
    return out


def _request_no(result: StreamResult) -> int:
    assert result.generation_id and result.generation_id.startswith("gen-")
    return int(result.generation_id.removeprefix("gen-"))


def _records(runs: list[tuple[PlannedRequest, StreamResult]]) -> list[dict[str, Any]]:
    records = []
    for planned, result in runs:
        assert planned.check is not None
        records.append({**result.to_dict(), **planned.check.record_fields(result), "endpoint": "mock",
                        "model": "m", "target_provider": "alpha"})
    return records


def _check_rate(judged: list[tuple[int, str]]) -> None:
    expected = [response_invalid(SEED, n, "alpha", RATE) for n, _ in judged]
    measured = [verdict != "valid" for _, verdict in judged]
    assert measured == expected  # request by request
    ci = proportion(sum(expected), len(expected), confidence=0.999)
    assert ci["low"] <= RATE <= ci["high"], ci


def test_tool_call_validity_matches_the_injected_rate(server: MockServerThread) -> None:
    runs = asyncio.run(_run(server, Workload(kind="tools", output_tokens_mean=400), PLAIN, 240))
    assert all(result.ok for _, result in runs)
    records = _records(runs)
    turn1 = [(planned, result, record) for (planned, result), record in zip(runs, records, strict=True)
             if planned.turn == 1]
    turn2 = [record for (planned, _), record in zip(runs, records, strict=True) if planned.turn == 2]
    assert len(turn1) >= 100 and turn2  # every call got its result sent back in a second turn
    for planned, result, record in turn1:
        assert record["tool_required"] and record["tool_called"] and result.finish_reason == "tool_calls"
        assert result.first_tool_call_s is not None and result.ttfc_s is None
        assert planned.chat.body()["tool_choice"] == "required"
    assert all(r["validity"] is None and not r["tool_called"] for r in turn2)  # the answer to the result
    counts = Counter(r["tool_call_count"] for _, _, r in turn1)
    assert counts[2] > 0 and counts[1] > counts[2]  # parallel calls (index 0 and 1) at the profile's share
    _check_rate([(_request_no(result), record["validity"]) for _, result, record in turn1])
    kinds = Counter(r["validity"] for _, _, r in turn1)
    assert kinds["invalid_json"] and kinds["schema_mismatch"]  # both ways of breaking are exercised
    summary = validity_summary([{**r, "outcome": "ok"} for r in records], scheduled=False)
    assert summary is not None
    tools = summary["tools"]["mock/m/alpha"]
    assert tools["valid"]["n"] == len(turn1) and tools["called_when_required"]["rate"] == 1.0


def test_json_answer_validity_matches_the_injected_rate(server: MockServerThread) -> None:
    runs = asyncio.run(_run(server, Workload(kind="json_schema", output_tokens_mean=400), PLAIN, 160))
    records = _records(runs)
    assert all(result.ok and result.finish_reason == "stop" for _, result in runs)
    body = runs[0][0].chat.body()
    assert body["response_format"]["type"] == "json_schema" and body["response_format"]["json_schema"]["strict"]
    _check_rate([(_request_no(result), record["validity"]) for (_, result), record in zip(runs, records, strict=True)])


def _chat(server: MockServerThread, messages: list[dict[str, Any]]) -> StreamResult:
    target = _target(server, REASONER)
    request = ChatRequest(model=REASONER, messages=messages, max_tokens=200, reasoning={"effort": "low"})

    async def go() -> StreamResult:
        async with AsyncStreamDriver() as driver:
            return await driver.run(prepare(target.endpoint.base_url, request), Timeouts(total=20), keep_text=True)
    return asyncio.run(go())


def test_reasoning_details_go_back_intact_and_altered_ones_are_refused(server: MockServerThread) -> None:
    # The multi-turn workload on a reasoning model against `details_check: required`: every turn passes.
    runs = asyncio.run(_run(server, Workload(turns=4, input_tokens_mean=64, output_tokens_mean=120,
                                             reasoning={"effort": "low"}), REASONER, 16, users=2))
    assert all(result.ok for _, result in runs), [r.error_message for _, r in runs if not r.ok]
    conversation = [(p, r) for p, r in runs if p.chat.messages[0] is runs[0][0].chat.messages[0]
                    or p.chat.messages[0] == runs[0][0].chat.messages[0]][:4]
    assert [p.turn for p, _ in conversation] == [1, 2, 3, 4]
    prompts = [r.prompt_tokens or 0 for _, r in conversation]
    assert prompts == sorted(prompts) and prompts[0] < prompts[-1]  # the history grows turn by turn
    sent = conversation[3][0].chat.body()["messages"]
    assert [len(m["reasoning_details"]) for m in sent if m["role"] == "assistant"] == [2, 2, 2]

    # One turn by hand: its details preserved pass; altered, reordered or dropped ones are a 400.
    user = {"role": "user", "content": "Think, then answer."}
    first = _chat(server, [user])
    assert first.ok and first.reasoning_details and len(first.reasoning_details) == 2
    history = [user, assistant_message(first)]
    again = {"role": "user", "content": "And then?"}
    assert _chat(server, [*history, again]).ok
    altered = copy.deepcopy(history)
    altered[1]["reasoning_details"][0]["text"] += " (edited)"
    reordered = copy.deepcopy(history)
    reordered[1]["reasoning_details"].reverse()
    dropped = copy.deepcopy(history)
    del dropped[1]["reasoning_details"]
    for bad in (altered, reordered, dropped):
        result = _chat(server, [*bad, again])
        assert result.http_status == 400 and result.error_class is not None, result
        assert "reasoning_details" in (result.error_message or "")
