"""`tokenpulse measure`: JSON fields, exit codes and the key never appearing in any output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tokenpulse.cli.main import main
from tokenpulse.mock import MockServerThread

MODEL = "nvidia/nemotron-3-super-120b-a12b"
FIELDS = ("outcome", "error_class", "http_status", "ttfb_s", "ttft_s", "ttfc_s", "e2e_s", "tpot_s",
          "output_tokens_per_s", "prompt_tokens", "output_tokens", "reasoning_tokens", "tokens_estimated",
          "chunk_count", "provider", "finish_reason", "generation_id")


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServerThread]:
    with MockServerThread() as srv:
        yield srv


def test_json_output_ok(mock: MockServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["measure", "--base-url", mock.base_url, "--model", MODEL, "--provider", "swiftinfer",
                 "--max-tokens", "40", "--reasoning-effort", "none", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(FIELDS) <= set(out)
    assert out["outcome"] == "ok" and out["error_class"] is None and out["http_status"] == 200
    assert out["provider"] == "SwiftInfer" and out["reasoning_tokens"] == 0
    assert out["ttft_s"] == out["ttfc_s"]  # reasoning off: the first token is content


def test_reasoning_model_ttfc_after_ttft(mock: MockServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["measure", "--base-url", mock.base_url, "--provider", "swiftinfer", "--max-tokens", "400",
                 "--reasoning-effort", "low", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["reasoning_tokens"] > 0
    assert out["ttfc_s"] > out["ttft_s"]


def test_openai_style_base_url(mock: MockServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["measure", "--base-url", mock.openai_base_url, "--provider", "swiftinfer", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["outcome"] == "ok"


def test_table_output(mock: MockServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["measure", "--base-url", mock.base_url, "--provider", "steadystack", "--max-tokens", "20"])
    out = capsys.readouterr().out
    assert code == 0
    for label in ("outcome", "TTFT", "TTFC (first content)", "TPOT", "output tokens/s", "SteadyStack"):
        assert label in out


def test_failure_exits_1_and_still_prints(mock: MockServerThread, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-invalid-canary-4f1c2e9d8b7a"
    monkeypatch.setenv("CANARY_KEY", canary)
    code = main(["measure", "--base-url", mock.base_url, "--api-key-env", "CANARY_KEY", "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 1
    assert out["outcome"] == "error" and out["error_class"] == "client_error" and out["http_status"] == 401
    assert canary not in captured.out + captured.err


def test_unpinned_provider_is_routed(mock: MockServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["measure", "--base-url", mock.base_url, "--provider", "no-such-provider", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["error_class"] == "client_error"


@pytest.mark.parametrize("argv", [
    ["measure", "--ttft-timeout", "0"],
    ["measure", "--max-tokens", "-3"],
    ["measure", "--reasoning-effort", "extreme"],
    ["measure", "--no-such-flag"],
])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "tokenpulse", *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "error:" in proc.stderr


def test_help_lists_every_flag() -> None:
    proc = subprocess.run([sys.executable, "-m", "tokenpulse", "measure", "--help"], capture_output=True, text=True,
                          timeout=30)
    for flag in ("--base-url", "--model", "--provider", "--prompt", "--max-tokens", "--reasoning-effort",
                 "--api-key-env", "--connect-timeout", "--ttft-timeout", "--idle-timeout", "--total-timeout",
                 "--json"):
        assert flag in proc.stdout
