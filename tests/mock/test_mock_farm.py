"""Farm configuration: the shipped default, YAML loading with field-path errors, the CLI and the
subprocess runner."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from mock_helpers import farm_data

from tokenpulse.cli import mock as mock_cli
from tokenpulse.mock import FarmConfigError, MockServerProcess, default_farm, dump_farm, load_farm

REPO = Path(__file__).resolve().parents[2]
NEMOTRON = "nvidia/nemotron-3-super-120b-a12b"


def test_default_farm_shape() -> None:
    farm = default_farm()
    nemo = farm.models[NEMOTRON]
    assert nemo.reasoning and nemo.context_length >= 1_000_000
    assert (nemo.pricing.prompt, nemo.pricing.completion) == (0.09, 0.45)
    assert len(nemo.providers) == 4
    profiles = {slug: p.profile for slug, p in nemo.providers.items()}
    fastest = max(profiles, key=lambda s: profiles[s].decode.tokens_per_s)
    assert profiles[fastest].ttft.median_ms <= 200
    assert min(p.capacity for p in profiles.values()) == 16
    assert any(p.ttft.median_ms >= 1000 and p.decode.tokens_per_s <= 40 for p in profiles.values())
    flaky = [p for p in profiles.values() if sum(p.errors.probabilities().values()) >= 0.1]
    assert len(flaky) == 1 and flaky[0].outages
    others = [m for m in farm.models.values() if not m.reasoning]
    assert len(others) == 1 and len(others[0].providers) == 2


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(dump_farm(default_farm()))
    assert load_farm(path) == default_farm()


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(FarmConfigError) as info:
        load_farm(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    return [line.removeprefix(f"{path}: ") for line in lines]


def test_errors_name_the_field_path(tmp_path: Path) -> None:
    data = farm_data()
    prov = data["models"]["test/plain"]["providers"]["alpha"]
    prov["profile"]["ttft"]["p99_ms"] = 1  # below the median
    prov["profile"]["decode"]["tokens_per_chunk"] = [3, 1]
    prov["profile"]["errors"] = {"reset": 0.7, "http_502": 0.7}
    prov["profile"]["colour"] = "blue"
    errors = _errors(tmp_path, yaml.safe_dump(data))
    base = "models.test/plain.providers.alpha.profile"
    assert f"{base}.ttft: p99_ms must be >= median_ms" in errors
    assert any(e.startswith(f"{base}.decode.tokens_per_chunk: ") for e in errors)
    assert any(e.startswith(f"{base}.errors: fault probabilities sum to 1.400") for e in errors)
    assert f"{base}.colour: Extra inputs are not permitted" in errors


def test_file_and_yaml_errors(tmp_path: Path) -> None:
    assert _errors(tmp_path, "models: [unclosed\n")[0].startswith("line ")
    assert _errors(tmp_path, "- a list\n") == ["(top level): expected a mapping with `models:`"]
    assert _errors(tmp_path, "models: {}\n") == ["models: a farm needs at least one model"]
    with pytest.raises(FarmConfigError, match="cannot read"):
        load_farm(tmp_path / "missing.yaml")


def test_cli_rejects_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 1\nmodels:\n  a/b:\n    name: x\n")
    proc = subprocess.run([sys.executable, "-m", "tokenpulse.mock", "--config", str(path), "--port", "0"],
                          capture_output=True, text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert f"error: {path}: models.a/b.context_length: Field required" in lines


def test_register_adds_the_mock_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="tokenpulse")
    mock_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["mock", "--port", "0", "--seed", "3"])
    assert args.func is mock_cli.run and (args.host, args.port, args.seed, args.config) == (
        "127.0.0.1", 0, 3, None)
    defaults = parser.parse_args(["mock"])
    assert defaults.port == 8080


def test_process_runner(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(yaml.safe_dump(farm_data()))
    with MockServerProcess(config_path=path, seed=4) as srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/api/v1" and srv.pid > 0
        with urllib.request.urlopen(srv.root_url + "/healthz", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
        srv.set_outage("beta", True, 503)
        assert srv.stats()["providers"]["beta"]["outage"] == 503
        proc = srv._proc
    assert proc is not None and proc.returncode == 0  # SIGTERM is a clean stop


def test_thread_runner_stops_cleanly() -> None:
    import threading

    import httpx

    from tokenpulse.mock import MockServerThread
    with MockServerThread(port=0) as srv:  # the default farm
        assert srv.port > 0 and srv.openai_base_url == f"http://127.0.0.1:{srv.port}/v1"
        with httpx.Client(base_url=srv.base_url) as c:
            assert c.get("/models").status_code == 200
            with c.stream("POST", "/chat/completions", json={
                    "model": NEMOTRON, "stream": True, "provider": {"only": ["swiftinfer"]},
                    "messages": [{"role": "user", "content": "hi"}]}) as resp:
                next(resp.iter_raw())
                srv.stop()  # while a stream is still running: stop() must end it
    assert not [t for t in threading.enumerate() if t.name == "tokenpulse-mock"]
