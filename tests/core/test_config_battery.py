"""A config that cannot hurt: each bad file of issue #14 (size, aliases, nesting, encoding, duplicate
keys and targets, interval floor, timeouts beyond a day, CR/LF/NUL in headers, NUL anywhere, a key in
clear text) makes the real CLI exit 2 with `FILE: field.path: problem` and start nothing: `probe` binds
no port, `load` creates no run folder, `mock` serves nothing (YAML-level cases, which its farm file
shares). Each command runs as a subprocess with a timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tokenpulse.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
endpoints:
  - name: local
    base_url: http://127.0.0.1:9/api/v1
    models:
      - id: nvidia/nemotron-3-super-120b-a12b
"""


def _good_with(extra: str) -> str:
    return GOOD + extra


def _billion_laughs() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


#: (case id, file bytes, field path or None for a file-level problem, text the problem must contain,
#:  whether the mock's farm file shares the case)
CASES: list[tuple[str, Callable[[], bytes], str | None, str, bool]] = [
    ("size", lambda: GOOD.encode() + b"#" * (1 << 20) + b"\n", None, "larger than 1024 KiB", True),
    ("aliases", _billion_laughs, "", "more than 100000 values once its aliases are expanded", True),
    ("depth", lambda: b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n", None, "nested deeper than 64 levels", True),
    ("encoding", lambda: GOOD.encode() + b"# caf\xe9\n", None, "not UTF-8: byte 0xe9 at line 6", True),
    ("nul-byte", lambda: GOOD.encode() + b"# a\x00b\n", None, "NUL character in the file", True),
    ("nul-escape", lambda: _good_with('profiles:\n  default:\n    prompt: "a\\0b"\n').encode(),
     "profiles.default.prompt", "NUL character in a string", False),
    ("duplicate-key-top", lambda: _good_with("probe: {}\nprobe: {}\n").encode(), "probe", "duplicate key 'probe'",
     True),
    ("duplicate-key-nested", lambda: GOOD.replace("    models:", "    kind: openai\n    kind: openrouter\n    models:")
     .encode(), "endpoints.0.kind", "duplicate key 'kind'", False),
    ("duplicate-target", lambda: (GOOD + "      - id: nvidia/nemotron-3-super-120b-a12b\n").encode(),
     "endpoints.0.models.1", "duplicate target local/nvidia/nemotron-3-super-120b-a12b/default/default", False),
    ("interval-floor", lambda: _good_with("probe:\n  interval_s: 1e-9\n").encode(), "probe.interval_s",
     "greater than or equal to 0.5", False),
    ("model-interval-floor", lambda: (GOOD + "        interval_s: 0.01\n").encode(),
     "endpoints.0.models.0.interval_s", "greater than or equal to 0.5", False),
    ("timeout-beyond-a-day", lambda: _good_with("probe:\n  timeouts:\n    total_s: 1e300\n").encode(),
     "probe.timeouts.total_s", "less than or equal to 86400", False),
    ("load-timeout-beyond-a-day", lambda: _good_with("load:\n  timeouts:\n    ttft_s: 90000\n").encode(),
     "load.timeouts.ttft_s", "less than or equal to 86400", False),
    ("header-crlf", lambda: GOOD.replace("    models:", '    headers: {X-Title: "a\\r\\nX-Injected: 1"}\n    models:')
     .encode(), "endpoints.0.headers", "header X-Title: value holds '\\r'; CR, LF and NUL are not allowed", False),
    ("header-lf", lambda: GOOD.replace("    models:", '    headers: {X-Title: "a\\nb"}\n    models:').encode(),
     "endpoints.0.headers", "value holds '\\n'", False),
    ("header-nul", lambda: GOOD.replace("    models:", '    headers: {X-Title: "a\\0b"}\n    models:').encode(),
     "endpoints.0.headers.X-Title", "NUL character in a string", False),
    ("header-name", lambda: GOOD.replace("    models:", '    headers: {"X Title": "a"}\n    models:').encode(),
     "endpoints.0.headers", "header name 'X Title' is not an HTTP token", False),
    ("server-metrics-url", lambda: _good_with("load:\n  server_metrics: [gpu-box:8000/metrics]\n").encode(),
     "load.server_metrics", "must be `auto` or a list of http(s) URLs", False),
    ("key-in-clear-text", lambda: GOOD.replace("http://127.0.0.1:9/api/v1", "http://gpu-box.example:8000/v1")
     .replace("    models:", "    kind: openai\n    api_key_env: TP_BATTERY_KEY\n    models:").encode(),
     "endpoints.0.base_url", "plain http to gpu-box.example, which is not a loopback address, would send "
     "the key in TP_BATTERY_KEY unencrypted", False),
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TP_BATTERY_KEY": "sk-battery-0123456789abcdef"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _expect(path: str | None, problem: str, source: Path) -> str:
    return f"{source}: {path}: " if path else f"{source}: "


def _check(proc: subprocess.CompletedProcess[str], source: Path, path: str | None, problem: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if str(source) in line]
    assert lines, proc.stderr
    prefix = _expect(path, problem, source)
    assert any(prefix in line and problem in line for line in lines), (prefix, problem, proc.stderr)


@pytest.mark.parametrize(("case", "make", "path", "problem", "mock_too"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_exits_2_and_starts_nothing(tmp_path: Path, case: str, make: Callable[[], bytes],
                                                path: str | None, problem: str, mock_too: bool) -> None:
    source = tmp_path / f"{case}.yaml"
    source.write_bytes(make())
    env = _env()
    tp = [sys.executable, "-m", "tokenpulse"]

    port = _free_port()
    probe = subprocess.run([*tp, "probe", "--config", str(source), "--listen", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    _check(probe, source, path, problem)
    assert _port_free(port)

    out = tmp_path / "run"
    load = subprocess.run([*tp, "load", "--config", str(source), "--out", str(out), "--run-time", "5",
                           "--metrics-port", "0", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    _check(load, source, path, problem)
    assert not out.exists() and not (tmp_path / "runs").exists()

    if mock_too:
        port = _free_port()
        mock = subprocess.run([*tp, "mock", "--config", str(source), "--port", str(port)],
                              capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
        assert mock.returncode == 2, (mock.stdout, mock.stderr)
        assert "Traceback" not in mock.stderr and problem in mock.stderr and str(source) in mock.stderr
        assert "serving" not in mock.stdout
        assert _port_free(port)


def test_every_case_is_an_error_in_process(tmp_path: Path) -> None:
    """The same files through load_config: each is a ConfigError (never RecursionError, MemoryError,
    UnicodeDecodeError, OverflowError), and the problem is attached to the expected field."""
    for case, make, path, problem, _ in CASES:
        source = tmp_path / f"{case}.yaml"
        source.write_bytes(make())
        with pytest.raises(ConfigError) as info:
            load_config(source, env={"TP_BATTERY_KEY": "x"})
        assert any((path is None or p == path) and problem in m for p, m in info.value.problems), \
            (case, info.value.problems)


def test_the_opt_ins_and_the_boundaries_are_accepted(tmp_path: Path) -> None:
    """What the rules allow: a key over http to loopback (incl. IPv4-mapped IPv6) or with the opt-in,
    the interval floor itself, a timeout of exactly a day, a merge key that repeats a merged key."""
    text = """\
endpoints:
  - name: opted
    kind: openai
    base_url: http://gpu-box.example:8000/v1
    api_key_env: K
    allow_insecure_key: true
    models: [{id: m}]
  - name: mapped
    kind: openai
    base_url: http://[::ffff:127.0.0.1]:8000/v1
    api_key_env: K
    models: [{id: m}]
  - name: tls
    base_url: https://openrouter.ai/api/v1
    api_key_env: K
    headers: {X-Title: tokenpulse}
    models: [{id: m, interval_s: 0.5}]
base: &base {connect_s: 5, total_s: 86400}
probe:
  timeouts: {<<: *base, total_s: 60}
"""
    source = tmp_path / "ok.yaml"
    source.write_text(text.replace("base: &base", "x-base: &base"), encoding="utf-8")
    with pytest.raises(ConfigError):  # unknown top-level key x-base: the anchor has to live somewhere valid
        load_config(source, env={"K": "v"})
    text = text.replace("base: &base {connect_s: 5, total_s: 86400}\nprobe:\n  timeouts: {<<: *base, total_s: 60}\n",
                        "probe:\n  timeouts: &base {connect_s: 5, total_s: 86400}\nload:\n"
                        "  timeouts: {<<: *base, total_s: 60}\n")
    source.write_text(text, encoding="utf-8")
    config = load_config(source, env={"K": "v"})
    assert config.probe.timeouts.total_s == 86400 and config.load.timeouts.total_s == 60
    assert config.endpoints[2].models[0].interval_s == 0.5


def test_a_key_less_endpoint_on_the_lan_is_fine(tmp_path: Path) -> None:
    """The clear-text rule is about a key that would be sent: `api_key_env` named but unset is no key."""
    source = tmp_path / "lan.yaml"
    source.write_text(GOOD.replace("http://127.0.0.1:9/api/v1", "http://gpu-box.example:8000/v1")
                      .replace("    models:", "    kind: openai\n    api_key_env: TP_UNSET_KEY\n    models:"),
                      encoding="utf-8")
    assert load_config(source, env={}).endpoints[0].base_url == "http://gpu-box.example:8000/v1"
    with pytest.raises(ConfigError, match="allow_insecure_key"):
        load_config(source, env={"TP_UNSET_KEY": "secret-value"})
