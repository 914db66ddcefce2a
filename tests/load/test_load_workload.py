"""Workloads: prompt lengths, unique prefixes, fixed output, datasets (OpenAI and ShareGPT), multi-turn."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tokenpulse.config import Workload, parse_config
from tokenpulse.core.outcomes import Outcome
from tokenpulse.core.recorder import StreamResult
from tokenpulse.load.workload import (
    CHARS_PER_TOKEN,
    DatasetError,
    WorkloadGenerator,
    load_dataset,
    sample_length,
    synthetic_prompt,
)

CONFIG = {"endpoints": [{"name": "mock", "base_url": "http://127.0.0.1:1/api/v1",
                         "models": [{"id": "author/model", "providers": ["fast", "slow"]}]}]}


def target(provider: str = "fast"):  # type: ignore[no-untyped-def]
    config = parse_config(CONFIG)
    return next(t for t in config.targets() if t.provider == provider)


def ok_result(text: str) -> StreamResult:
    return StreamResult(outcome=Outcome.OK, error_class=None, error_message=None, http_status=200, t0_ns=0,
                        ttfb_s=0.01, ttft_s=0.1, ttfc_s=0.1, e2e_s=0.5, tpot_s=0.01, output_tokens_per_s=50.0,
                        prompt_tokens=10, output_tokens=5, reasoning_tokens=0, cached_tokens=0, cost_usd=None,
                        tokens_estimated=False, chunk_count=5, token_times_s=[], provider=None, generation_id=None,
                        finish_reason="stop", retry_after_s=None, bytes_received=100, keepalive_count=0, text=text)


def user_text(planned) -> str:  # type: ignore[no-untyped-def]
    return planned.chat.messages[-1]["content"]


@pytest.mark.parametrize("tokens", [64, 256, 1000, 20_000])
def test_synthetic_prompt_has_the_target_length(tokens: int) -> None:
    gen = WorkloadGenerator(Workload(input_tokens_mean=tokens), run_id="r1")
    planned = gen.for_user("u0").next_request(target())
    assert len(user_text(planned)) == tokens * CHARS_PER_TOKEN
    assert planned.input_tokens_target == tokens


def test_lengths_follow_mean_and_spread_and_are_seeded() -> None:
    w = Workload(input_tokens_mean=200, input_tokens_stddev=50, output_tokens_mean=100, output_tokens_stddev=20)
    stream = WorkloadGenerator(w, run_id="r1").for_user("u0")
    planned = [stream.next_request(target()) for _ in range(400)]
    inputs = [p.input_tokens_target for p in planned]
    outputs = [p.chat.max_tokens for p in planned]
    assert 185 < statistics.mean(inputs) < 215 and 35 < statistics.stdev(inputs) < 65
    assert 93 < statistics.mean(outputs) < 107
    assert min(inputs) >= 1 and max(inputs) <= 200 + 4 * 50
    again = WorkloadGenerator(w, run_id="r2").for_user("u0")
    assert [again.next_request(target()).input_tokens_target for _ in range(400)] == inputs


def test_sample_length_never_below_one() -> None:
    import random

    rng = random.Random(1)
    assert min(sample_length(rng, 2, 10) for _ in range(1000)) == 1


def test_unique_prefix_differs_per_request_user_and_run() -> None:
    w = Workload(input_tokens_mean=128)
    a = WorkloadGenerator(w, run_id="run-a")
    stream = a.for_user("u0")
    starts = [user_text(stream.next_request(target()))[:40] for _ in range(3)]
    starts.append(user_text(a.for_user("u1").next_request(target()))[:40])
    starts.append(user_text(WorkloadGenerator(w, run_id="run-b").for_user("u0").next_request(target()))[:40])
    assert len(set(starts)) == len(starts)


def test_without_unique_prefix_prompts_share_their_start() -> None:
    gen = WorkloadGenerator(Workload(input_tokens_mean=128, unique_prefix=False), run_id="r")
    texts = [user_text(gen.for_user(u).next_request(target())) for u in ("u0", "u1")]
    assert texts[0][:200] == texts[1][:200]


def test_fixed_output_sets_min_tokens_and_ignore_eos() -> None:
    w = Workload(output_tokens_mean=77, fixed_output=True, reasoning={"enabled": False}, temperature=0.5,
                 extra_body={"top_k": 5})
    chat = WorkloadGenerator(w, run_id="r").for_user("u0").next_request(target("slow")).chat
    body = chat.body()
    assert body["max_tokens"] == body["min_tokens"] == 77 and body["ignore_eos"] is True
    assert body["reasoning"] == {"enabled": False} and body["temperature"] == 0.5 and body["top_k"] == 5
    assert body["provider"] == {"require_parameters": True, "only": ["slow"], "allow_fallbacks": False}
    plain = WorkloadGenerator(Workload(), run_id="r").for_user("u0").next_request(target()).chat.body()
    assert "min_tokens" not in plain and "ignore_eos" not in plain


def test_multi_turn_resends_history_with_the_models_answers() -> None:
    stream = WorkloadGenerator(Workload(turns=3, input_tokens_mean=32), run_id="r").for_user("u0")
    first = stream.next_request(target())
    assert first.turn == 1 and first.keep_text and len(first.chat.messages) == 1
    stream.on_result(ok_result("answer one"))
    second = stream.next_request(target())
    assert second.turn == 2
    assert [m["role"] for m in second.chat.messages] == ["user", "assistant", "user"]
    assert second.chat.messages[1]["content"] == "answer one"
    assert second.chat.messages[0] == first.chat.messages[0]
    stream.on_result(ok_result("answer two"))
    assert stream.next_request(target()).turn == 3
    stream.on_result(ok_result("answer three"))
    assert stream.next_request(target()).turn == 1  # a new conversation


def test_a_failed_turn_restarts_the_conversation() -> None:
    stream = WorkloadGenerator(Workload(turns=3), run_id="r").for_user("u0")
    stream.next_request(target())
    failed = ok_result("")
    stream.on_result(failed)
    assert stream.next_request(target()).turn == 1


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_dataset_openai_messages_and_bare_lists(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"},
                      {"role": "assistant", "content": "x" * 400}]},
        [{"role": "user", "content": "second"}],
        {"messages": [{"role": "assistant", "content": "no user turn: skipped"}]},
    ])
    conversations = load_dataset(path)
    assert len(conversations) == 2
    assert conversations[0].system == ({"role": "system", "content": "be brief"},)
    assert conversations[0].exchanges[0].reply == "x" * 400


def test_dataset_requests_use_reference_length_and_prefix(tmp_path: Path) -> None:
    write_lines(tmp_path / "d.jsonl", [
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"},
                      {"role": "assistant", "content": "x" * 400}]}])
    w = Workload(kind="dataset", dataset="d.jsonl")
    gen = WorkloadGenerator(w, run_id="r", dataset_base_dir=tmp_path)
    planned = gen.for_user("u0").next_request(target())
    assert planned.chat.max_tokens == 100  # 400 characters of reference reply
    roles = [m["role"] for m in planned.chat.messages]
    assert roles == ["system", "user"]
    system = planned.chat.messages[0]["content"]
    assert system.startswith("[r-u0-") and system.endswith("be brief")
    assert planned.chat.messages[1]["content"] == "hello there"


def test_sharegpt_json_array_import(tmp_path: Path) -> None:
    data = [{"id": "a", "conversations": [{"from": "human", "value": "What is SSE?"},
                                          {"from": "gpt", "value": "y" * 80},
                                          {"from": "human", "value": "And TTFT?"},
                                          {"from": "gpt", "value": "z" * 40}]},
            {"id": "b", "conversations": [{"from": "gpt", "value": "orphan"}]}]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    conversations = load_dataset(path)
    assert len(conversations) == 1
    assert [e.user for e in conversations[0].exchanges] == ["What is SSE?", "And TTFT?"]
    stream = WorkloadGenerator(Workload(kind="dataset", dataset=str(path), turns=2, unique_prefix=False),
                               run_id="r").for_user("u0")
    first = stream.next_request(target())
    assert first.chat.max_tokens == 20 and user_text(first) == "What is SSE?"
    stream.on_result(ok_result("model answer"))
    second = stream.next_request(target())
    assert second.chat.max_tokens == 10
    assert [m["content"] for m in second.chat.messages] == ["What is SSE?", "model answer", "And TTFT?"]


@pytest.mark.parametrize("content, problem", [
    ("{not json}\n", ":1: invalid JSON"),
    ('{"prompt": "x"}\n', ":1: expected a list of messages"),
    ('{"conversations": [{"from": "alien", "value": "x"}]}\n', "unknown ShareGPT speaker"),
    ('[{"role": "user", "content": "a"}]\n[{"content": "no role"}]\n', ":2: message 0 needs a role"),
    ('{"messages": [{"role": "assistant", "content": "x"}]}\n', "no usable conversation"),
])
def test_dataset_errors_name_file_and_line(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_dataset_line_with_a_huge_integer_is_a_clear_error(tmp_path: Path) -> None:
    # json.loads raises a plain ValueError (not JSONDecodeError) past Python's 4300-digit integer limit.
    path = tmp_path / "huge.jsonl"
    path.write_text('[{"role": "user", "content": "a"}]\n{"messages": [], "n": ' + "9" * 5000 + "}\n",
                    encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert str(err.value).startswith(f"{path}:2: invalid JSON: ")
    assert "5000 digits" in str(err.value)


def test_dataset_nested_past_the_recursion_limit_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert str(err.value) == f"{path}:1: invalid JSON: nested too deeply"


def test_synthetic_prompt_repeats_base_for_long_prompts() -> None:
    text = synthetic_prompt("abc def", 10, None)
    assert len(text) == 40 and text.endswith("at length.")


def _served(planned, server_tokens) -> StreamResult:  # type: ignore[no-untyped-def]
    """The answer of a server whose tokenizer is `server_tokens` (what its usage.prompt_tokens says)."""
    result = ok_result("")
    result.prompt_tokens = server_tokens(planned.chat.messages)
    return result


@pytest.mark.parametrize("tokenizer", [
    # a word tokenizer: this filler averages ~6 characters per word, not 4
    lambda messages: sum(len(str(m["content"]).split()) for m in messages),
    # a fine-grained one plus a chat template of 12 tokens
    lambda messages: 12 + sum(len(str(m["content"])) for m in messages) // 3,
])
def test_prompt_lengths_calibrate_to_the_servers_token_counts(tokenizer) -> None:  # type: ignore[no-untyped-def]
    workload = Workload(input_tokens_mean=512, input_tokens_stddev=0)
    gen = WorkloadGenerator(workload, run_id="r")
    users = [gen.for_user(f"u{i}") for i in range(4)]
    t = target()
    first = users[0].next_request(t)
    uncalibrated = tokenizer(first.chat.messages)
    users[0].on_result(_served(first, tokenizer))
    assert abs(uncalibrated - 512) > 0.05 * 512  # characters / 4 is off for this server
    for _ in range(10):  # the warm-up: each user's requests teach the process's calibration
        for user in users:
            planned = user.next_request(t)
            user.on_result(_served(planned, tokenizer))
    measured = []
    for user in users:
        planned = user.next_request(t)
        measured.append(tokenizer(planned.chat.messages))
        assert planned.input_tokens_target == 512  # records keep the target beside the server's count
    assert all(abs(m - 512) <= 0.05 * 512 for m in measured), measured
    assert gen.calibration.samples[t.model.id] >= 40


def test_calibration_ignores_estimated_usage_and_failures() -> None:
    gen = WorkloadGenerator(Workload(input_tokens_mean=256), run_id="r")
    user = gen.for_user("u0")
    planned = user.next_request(target())
    estimated = ok_result("")
    estimated.tokens_estimated = True
    estimated.prompt_tokens = 1
    user.on_result(estimated)
    failed = ok_result("")
    failed.outcome = Outcome.ERROR
    user.next_request(target())
    user.on_result(failed)
    assert gen.calibration.chars_per_token(target().model.id) == CHARS_PER_TOKEN
    assert planned.chat.messages
