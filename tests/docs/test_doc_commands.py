"""Every `tokenpulse ...` command in README.md and docs/*.md is real: it parses, and it runs when it can.

Commands are read from fenced ```bash / ```sh / ```shell / ```console blocks (console: only `$ ` lines),
with backslash continuations joined, `# comments` dropped, `VAR=value` prefixes and earlier `export`s
of the block kept as the command's environment. Then:

(a) every command parses with the real parser (`tokenpulse.cli.main.build_parser()`), and a `--config` that
    names a file of this checkout loads; a failure names the file and line;
(b) every command that can run offline runs as a subprocess against a mock farm started here
    (TOKENPULSE_MOCK_URL points at it; `http://127.0.0.1:8080` and `localhost:8080` in arguments and
    environment values are rewritten to it), with rules by command type:
      - one-shot commands (`measure`, `probe --once`, `report`, `--help`, ...) run to completion and exit 0.
        Exit 1 ("a request failed") is accepted only where the documented exit code allows it: `measure`
        unpinned or pinned to the flaky provider, `probe --once` of a config that includes it, and
        `report --fail-on` (1 = a rule breached);
      - long-running commands (`mock`, `probe` without `--once`, `stack up`, `stack sink`) are started on
        free ports, must answer their health URL within seconds, then get SIGTERM and must exit 0;
      - `load` runs with `--run-time 4s`, `--step-time 2s`, at most 3 levels of at most 8 users (4 arrivals/s),
        at most 8 users and 2 processes, a search at most 2 steps, `--out` in a temporary folder, and must
        exit 0 with a summary.json;
      - `report` runs on the folders those load runs wrote (a documented `--out` maps to its run; other
        run folders map to the runs of this test);
      - `demo` runs with `--quick`.
    Commands that need the network, a real key, a server other than the mock, a worker machine, a file
    of the reader's or a missing binary are parse-checked only: OFFLINE_SKIPS (printed by
    test_offline_coverage) lists them with the reason.

The mock farm is the default farm with every injected fault removed except on the flaky provider
(glitchgrid), so "exit 0" is a real check for the others instead of a 0.6 % flake.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tokenpulse.cli.main import build_parser
from tokenpulse.config import ConfigError, load_config
from tokenpulse.ops.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if p.exists()]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
MOCK_ADDRESSES = ("http://127.0.0.1:8080", "http://localhost:8080")
FLAKY_PROVIDER = "glitchgrid"
DEMO_MODULE = ROOT / "tokenpulse" / "cli" / "demo.py"
HAS_PROMETHEUS = all(shutil.which(b) for b in ("prometheus", "promtool")) and \
    any(shutil.which(b) for b in ("alertmanager", "prometheus-alertmanager"))

# Runtime caps for load tests (the documented durations are minutes).
LOAD_RUN_TIME, LOAD_STEP_TIME, MAX_LEVELS, MAX_USERS, MAX_RATE, MAX_PROCESSES = "4s", "2s", 3, 8, 4.0, 2


# ============================================================================ reading the docs
@dataclass
class DocCommand:
    file: str  # relative to the checkout
    line: int
    text: str  # the joined command line, as documented (comments dropped)
    argv: list[str]  # after `tokenpulse`
    env: dict[str, str] = field(default_factory=dict)
    background: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def key(self) -> tuple[Any, ...]:
        return tuple(self.argv), tuple(sorted(self.env.items()))


def _strip_comment(line: str) -> str:
    """Drop a `# comment` (a `#` that starts a word outside quotes), as the shell does."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


_SEPARATORS = {";", "&&", "||", "|", "&"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _segments(text: str) -> Iterator[tuple[list[str], bool]]:
    """Simple commands of a line, each with whether it is backgrounded (`&`)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    for token in lexer:
        if token in _SEPARATORS:
            if words:
                yield words, token == "&"
            words = []
        else:
            words.append(token)
    if words:
        yield words, False


def _is_tokenpulse(word: str) -> bool:
    return word == "tokenpulse" or word.endswith("/tokenpulse")


def extract(path: Path) -> list[DocCommand]:
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[DocCommand] = []
    fence: str | None = None
    lang = ""
    exported: dict[str, str] = {}
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        match = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
        if match and (fence is None or stripped.startswith(fence)):
            if fence is None:
                fence, lang, exported = match.group(1), match.group(2).lower(), {}
            elif stripped == fence or stripped.rstrip("`~") == "":
                fence = None
            i += 1
            continue
        if fence is None or lang not in SHELL_LANGS:
            i += 1
            continue
        start = i
        if lang == "console":
            if not stripped.startswith("$ "):
                i += 1
                continue
            text = stripped[2:]
        else:
            text = stripped.removeprefix("$ ")
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1].rstrip() + " " + lines[i].strip()
        i += 1
        text = _strip_comment(text).strip()
        if not text:
            continue
        try:
            segments = list(_segments(text))
        except ValueError:
            continue  # not shell (e.g. a YAML line in an sh block); nothing to check
        for words, background in segments:
            env = dict(exported)
            if words[0] == "export":
                for word in words[1:]:
                    if _ASSIGNMENT.match(word):
                        name, value = word.split("=", 1)
                        exported[name] = value
                continue
            while words and _ASSIGNMENT.match(words[0]):
                name, value = words.pop(0).split("=", 1)
                env[name] = value
            if words[:1] == ["sudo"] or words[:1] == ["env"]:
                words = words[1:]
            if words and _is_tokenpulse(words[0]):
                out.append(DocCommand(rel, start + 1, text, words[1:], env, background))
    return out


COMMANDS: list[DocCommand] = [c for path in DOC_FILES for c in extract(path)]


# ============================================================================ classification
def _option(argv: list[str], name: str) -> str | None:
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def _positionals(argv: list[str], with_value: set[str]) -> list[int]:
    """Indexes of positional words after the subcommand."""
    out, skip = [], False
    for i, word in enumerate(argv[1:], start=1):
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in with_value
        else:
            out.append(i)
    return out


def _is_help(argv: list[str]) -> bool:
    return any(w in ("-h", "--help", "--version") for w in argv)


def _long_running(argv: list[str]) -> bool:
    if _is_help(argv) or not argv:
        return False
    if argv[0] == "mock":
        return True
    if argv[0] == "probe":
        return "--once" not in argv
    return argv[0] == "stack" and argv[1:2] in (["up"], ["sink"])


def _mock_url(url: str) -> bool:
    return url.startswith(MOCK_ADDRESSES)


def _config_blocker(path_text: str, env: dict[str, str]) -> str | None:
    path = ROOT / path_text
    if not path.exists():
        return f"names the reader's own config file ({path_text})"
    if "openrouter" in Path(path_text).name:
        return f"needs the network and an OpenRouter key ({path_text})"
    try:
        config = load_config(path, env={**env_for_config(), **env})
    except ConfigError:
        return None  # the parse test reports it
    for endpoint in config.endpoints:
        if not (_mock_url(endpoint.base_url) or endpoint.base_url.startswith(MOCK_PLACEHOLDER)):
            return f"needs a server at {endpoint.base_url} ({path_text})"
    return None


MOCK_PLACEHOLDER = "http://mock.invalid:1"  # TOKENPULSE_MOCK_URL while classifying


def env_for_config() -> dict[str, str]:
    return {"TOKENPULSE_MOCK_URL": MOCK_PLACEHOLDER + "/api/v1"}


def offline_blocker(cmd: DocCommand) -> str | None:
    """Why a command cannot run offline against the mock, or None when it can."""
    argv, env = cmd.argv, cmd.env
    words = argv + list(env.values())
    if not argv:
        return None
    if _is_help(argv):
        return None
    if any("openrouter.ai" in w for w in words):
        return "needs the network (openrouter.ai)"
    sends_requests = argv[0] in ("measure", "probe", "load", "demo", "stack")
    if sends_requests and "OPENROUTER_API_KEY" in env:
        return "needs a real OpenRouter key"
    checked = argv
    if argv[0] == "report":  # its run folders are replaced by runs of this test anyway
        folders = set(_positionals(argv, {"--compare", "--fail-on"})) | \
            {i + 1 for i, w in enumerate(argv) if w == "--compare"}
        checked = [w for i, w in enumerate(argv) if i not in folders]
    if any(c in w for w in checked for c in "$`<>"):
        return "uses shell expansion or a placeholder"
    for word in words:
        for url in re.findall(r"https?://[^\s,'\"]+", word):
            if not _mock_url(url):
                return f"needs a server at {url}"
    if "--worker" in argv or "--master" in argv or _option(argv, "--master-host"):
        return "a distributed run: needs workers (or a master) on other machines"
    config = _option(argv, "--config")
    if config:
        blocker = _config_blocker(config, env)
        if blocker:
            return blocker
    if argv[0] == "stack" and argv[1:2] == ["up"] and not HAS_PROMETHEUS:
        return "needs prometheus and prometheus-alertmanager installed"
    if argv[0] == "demo" and "--stack" in argv and not HAS_PROMETHEUS:
        return "needs prometheus and prometheus-alertmanager installed"
    if argv[0] == "mock" and _option(argv, "--config") is None:
        return None
    return None


OFFLINE_SKIPS: list[tuple[str, str, str]] = [
    (c.where, c.text, reason) for c in COMMANDS if (reason := offline_blocker(c)) is not None
]


def _demo_missing(cmd: DocCommand) -> bool:
    return cmd.argv[:1] == ["demo"] and not DEMO_MODULE.exists()


# ============================================================================ (a) parsing
def _ids(cmds: list[DocCommand]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for c in cmds:
        n = seen.get(c.where, 0)
        seen[c.where] = n + 1
        out.append(c.where if n == 0 else f"{c.where}#{n + 1}")
    return out


@pytest.mark.parametrize("cmd", COMMANDS, ids=_ids(COMMANDS))
def test_doc_command_parses(cmd: DocCommand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if _demo_missing(cmd):
        pytest.xfail("`tokenpulse demo` is not implemented yet (tokenpulse/cli/demo.py)")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            build_parser().parse_args(cmd.argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                pytest.fail(f"{cmd.where}: `{cmd.text}` does not parse:\n{err.getvalue().strip()}")
    config = _option(cmd.argv, "--config")
    if config and (ROOT / config).exists():
        try:
            load_config(ROOT / config, env={**env_for_config(), **cmd.env})
        except ConfigError as exc:
            pytest.fail(f"{cmd.where}: `{cmd.text}`: its config does not load:\n{exc}")
    if config and config.startswith("examples/"):
        assert (ROOT / config).exists(), f"{cmd.where}: {config} does not exist"
    if cmd.argv[:1] == ["load"] and not _is_help(cmd.argv) and "--worker" not in cmd.argv \
            and config and (ROOT / config).exists():
        # What `tokenpulse load` checks before starting Locust (targets, shape, options), offline.
        from tokenpulse.load.runner import UsageError, plan_run

        monkeypatch.chdir(ROOT)
        for name, value in {**env_for_config(), **cmd.env}.items():
            monkeypatch.setenv(name, value)
        args = build_parser().parse_args(cmd.argv)
        args.out = str(tmp_path / "run")
        try:
            plan_run(args)
        except UsageError as exc:
            pytest.fail(f"{cmd.where}: `{cmd.text}` would exit 2 before starting: {exc}")


# ============================================================================ (b) running
@dataclass
class Outcome:
    ok: bool
    detail: str
    seconds: float


def _set_option(argv: list[str], name: str, value: str) -> list[str]:
    out, i, found = [], 0, False
    while i < len(argv):
        word = argv[i]
        if word == name:
            out += [name, value]
            i += 2
            found = True
            continue
        if word.startswith(name + "="):
            out.append(f"{name}={value}")
            found = True
        else:
            out.append(word)
        i += 1
    return out if found else out + [name, value]


def _rewrite_address(text: str, mock_root: str) -> str:
    for address in MOCK_ADDRESSES:
        text = text.replace(address, mock_root)
    return text


def _tokenpulse() -> list[str]:
    script = Path(sys.executable).with_name("tokenpulse")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tokenpulse.cli.main"]


def _flaky_config(path_text: str | None, env: dict[str, str]) -> bool:
    if not path_text:
        return False
    config = load_config(ROOT / path_text, env=env)
    return any(t.provider == FLAKY_PROVIDER for t in config.targets())


def _cap_levels(text: str, rate: bool) -> str:
    values = [float(v) for v in text.split(",") if v.strip()][:MAX_LEVELS]
    capped = [min(v, MAX_RATE) if rate else min(int(v), MAX_USERS) for v in values]
    return ",".join(f"{v:g}" for v in dict.fromkeys(capped))


class Runner:
    """Runs the runnable commands once each (duplicates share a result), several at a time."""

    def __init__(self, mock_root: str, mock_url: str, tmp: Path) -> None:
        self.mock_root, self.mock_url, self.tmp = mock_root, mock_url, tmp
        self.results: dict[tuple[Any, ...], Outcome] = {}
        self.out_dirs: dict[str, Path] = {}  # documented --out -> the folder the rewritten run used
        self.runs: list[Path] = []  # load runs that produced a summary.json
        self._lock = threading.Lock()
        self._n = 0

    def _env(self, cmd: DocCommand) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
        env.update({k: _rewrite_address(v, self.mock_root) for k, v in cmd.env.items()})
        env.setdefault("TOKENPULSE_MOCK_URL", self.mock_url)
        env.setdefault("TOKENPULSE_STATE_DIR", str(self._dir("prober-state")))  # the examples' probe.state_dir
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _dir(self, prefix: str) -> Path:
        with self._lock:
            self._n += 1
            return self.tmp / f"{prefix}-{self._n}"

    # ---------------------------------------------------------------------------- one command
    def run(self, cmd: DocCommand) -> Outcome:
        start = time.monotonic()
        argv = [_rewrite_address(w, self.mock_root) for w in cmd.argv]
        env = self._env(cmd)
        try:
            if _long_running(argv):
                ok, detail = self._long_running(argv, env)
            elif argv[0] == "load" and not _is_help(argv):
                ok, detail = self._load(cmd, argv, env)
            else:
                ok, detail = self._one_shot(argv, env)
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        return Outcome(ok, detail, time.monotonic() - start)

    def _exec(self, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_tokenpulse() + argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def _one_shot(self, argv: list[str], env: dict[str, str]) -> tuple[bool, str]:
        allowed = {0}
        timeout = 60.0
        if not _is_help(argv):
            if argv[0] == "measure":
                argv = argv if _option(argv, "--base-url") else argv + ["--base-url", self.mock_url]
                if _option(argv, "--provider") in (None, FLAKY_PROVIDER):
                    allowed = {0, 1}
            elif argv[0] == "probe":
                if _flaky_config(_option(argv, "--config"), env):
                    allowed = {0, 1}
            elif argv[0] == "report":
                argv = self._report_argv(argv)
                if "--fail-on" in argv:
                    allowed = {0, 1}
            elif argv[0] == "demo":
                argv = argv if "--quick" in argv else argv + ["--quick"]
                argv = _set_option(argv, "--out", str(self._dir("demo")))
                timeout = 170.0
        proc = self._exec(argv, env, timeout)
        detail = f"exit {proc.returncode} (allowed {sorted(allowed)}) for {shlex.join(argv)}"
        if proc.returncode not in allowed:
            return False, f"{detail}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        if "--json" in argv or _option(argv, "--format") == "json":
            json.loads(proc.stdout)
        if not (proc.stdout or proc.stderr).strip():
            return False, f"{detail}: printed nothing"
        return True, detail

    def _report_argv(self, argv: list[str]) -> list[str]:
        """Point the run folders of a documented `report` at runs this test made."""
        out = list(argv)
        runs = list(self.runs) or [self._own_run()]
        pool = iter(runs * 2)
        for i in _positionals(out, {"--compare", "--fail-on"}):
            out[i] = str(self.out_dirs.get(out[i]) or next(pool))
        compare = _option(out, "--compare")
        if compare is not None:
            # report --compare refuses runs of different shapes or workloads (exit 2): without a run
            # made for the baseline, compare the run with itself.
            positional = _positionals(out, {"--compare", "--fail-on"})
            mapped = self.out_dirs.get(compare) or (out[positional[0]] if positional else runs[0])
            out = _set_option(out, "--compare", str(mapped))
        return out

    def _own_run(self) -> Path:
        out = self._dir("load-own")
        proc = self._exec(["load", "--config", "examples/mock.yaml", "--users", "4", "--run-time", LOAD_RUN_TIME,
                           "--out", str(out), "--metrics-port", "0", "--quiet"],
                          {**os.environ, "TOKENPULSE_MOCK_URL": self.mock_url}, 90)
        assert proc.returncode == 0 and (out / "summary.json").exists(), proc.stderr[-2000:]
        self.runs.append(out)
        return out

    def _load(self, cmd: DocCommand, argv: list[str], env: dict[str, str]) -> tuple[bool, str]:
        shape = _option(argv, "--shape") or "fixed"
        argv = _set_option(argv, "--run-time", LOAD_RUN_TIME)
        levels = _option(argv, "--levels")
        if levels:
            argv = _set_option(argv, "--levels", _cap_levels(levels, rate=shape == "rate"))
            argv = _set_option(argv, "--step-time", LOAD_STEP_TIME)
        elif _option(argv, "--step-time"):
            argv = _set_option(argv, "--step-time", LOAD_STEP_TIME)
        if shape == "search":  # each step also waits for its requests in flight: keep the run short
            argv = _set_option(argv, "--max-steps", "2")
            if _option(argv, "--start"):  # within the capped --users
                argv = _set_option(argv, "--start", "1")
            argv = _set_option(argv, "--step-time", LOAD_STEP_TIME)
        if _option(argv, "--rate"):
            argv = _set_option(argv, "--rate", f"{min(float(_option(argv, '--rate') or 1), MAX_RATE):g}")
        if _option(argv, "--users"):
            argv = _set_option(argv, "--users", str(min(int(_option(argv, "--users") or 1), MAX_USERS)))
        if _option(argv, "--processes"):
            argv = _set_option(argv, "--processes", str(min(int(_option(argv, "--processes") or 1), MAX_PROCESSES)))
        argv = _set_option(argv, "--warmup", "0")  # the config's warm-up would swallow a 2-4 s step
        if "--web" in argv:
            argv = _set_option(argv, "--web-port", str(free_port()))
        documented_out = _option(argv, "--out")
        out = self._dir("load")
        argv = _set_option(argv, "--out", str(out))
        argv = _set_option(argv, "--metrics-port", "0")
        proc = self._exec(argv, env, 120)
        detail = f"exit {proc.returncode} for {shlex.join(argv)}"
        if proc.returncode != 0 or not (out / "summary.json").exists():
            return False, f"{detail}; summary.json: {(out / 'summary.json').exists()}\nstdout:\n" \
                          f"{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        summary = json.loads((out / "summary.json").read_text())
        with self._lock:
            self.runs.append(out)
            if documented_out:
                self.out_dirs[documented_out] = out
        return True, f"{detail}; {summary['run'].get('records', '?')} records"

    def _long_running(self, argv: list[str], env: dict[str, str]) -> tuple[bool, str]:
        health: str | None = None
        ready_text: str | None = None
        if argv[0] == "mock":
            port = free_port()
            argv = _set_option(argv, "--port", str(port))
            argv = _set_option(argv, "--host", "127.0.0.1")
            health = f"http://127.0.0.1:{port}/api/v1/models"
        elif argv[0] == "probe":
            port = free_port()
            argv = _set_option(argv, "--listen", f"127.0.0.1:{port}")
            health = f"http://127.0.0.1:{port}/healthz"
        elif argv[:2] == ["stack", "sink"]:
            port = free_port()
            argv = _set_option(argv, "--listen", f"127.0.0.1:{port}")
            health = f"http://127.0.0.1:{port}/"
        elif argv[:2] == ["stack", "up"]:
            for service in ("mock", "prober", "prometheus", "alertmanager", "sink", "grafana"):
                argv = _set_option(argv, f"--{service}-port", "0")
            argv = _set_option(argv, "--run-dir", str(self._dir("stack")))
            ready_text = "Ctrl-C stops everything"
        log = self._dir("log").with_suffix(".txt")
        with open(log, "w+") as fh:
            proc = subprocess.Popen(_tokenpulse() + argv, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                healthy, why = self._wait_healthy(proc, health, ready_text, log, 45.0)
                if not healthy:
                    return False, f"{shlex.join(argv)}: {why}\n{log.read_text()[-3000:]}"
                time.sleep(1.0)
                if proc.poll() is not None:
                    return False, f"{shlex.join(argv)}: exited {proc.returncode} after being healthy\n" \
                                  f"{log.read_text()[-3000:]}"
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(30)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if code != 0:
            return False, f"{shlex.join(argv)}: exit {code} after SIGTERM\n{log.read_text()[-3000:]}"
        return True, f"healthy, exit 0 on SIGTERM: {shlex.join(argv)}"

    @staticmethod
    def _wait_healthy(proc: subprocess.Popen[bytes], url: str | None, text: str | None, log: Path,
                      limit: float) -> tuple[bool, str]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False, f"exited {proc.returncode} before it was healthy"
            if url:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            return True, "ok"
                except (urllib.error.URLError, OSError):
                    pass
            elif text and text in log.read_text():
                return True, "ok"
            time.sleep(0.25)
        return False, f"not healthy within {limit:.0f} s ({url or text})"

    # ---------------------------------------------------------------------------- all of them
    def run_all(self, commands: list[DocCommand]) -> None:
        unique: dict[tuple[Any, ...], DocCommand] = {}
        for cmd in commands:
            unique.setdefault(cmd.key, cmd)
        first = [c for c in unique.values() if c.argv[:1] != ["report"] or _is_help(c.argv)]
        later = [c for c in unique.values() if c not in first]
        # Longest first, so the slow ones overlap with everything else.
        weight = {"demo": 0, "stack": 1, "load": 2, "probe": 3}
        first.sort(key=lambda c: weight.get(c.argv[0], 9) if not _is_help(c.argv) else 10)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for cmd, outcome in zip(first, pool.map(self.run, first), strict=True):
                self.results[cmd.key] = outcome
        for cmd in later:
            self.results[cmd.key] = self.run(cmd)


def _test_farm(tmp: Path) -> Path:
    """The default farm without injected faults, except on the flaky provider."""
    from tokenpulse.mock import farm as farm_module

    source = Path(farm_module.__file__).with_name("default_farm.yaml")
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for model in data["models"].values():
        for slug, provider in model["providers"].items():
            if slug != FLAKY_PROVIDER:
                provider["profile"] = {k: v for k, v in provider["profile"].items() if k not in ("errors", "outages")}
    path = tmp / "farm.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    from tokenpulse.mock import MockServerProcess

    tmp = tmp_path_factory.mktemp("doc-commands")
    runnable = [c for c in COMMANDS if offline_blocker(c) is None and not _demo_missing(c)]
    with MockServerProcess(config_path=_test_farm(tmp)) as mock:
        root = mock.base_url.removesuffix("/api/v1")
        r = Runner(root, mock.base_url, tmp)
        started = time.monotonic()
        r.run_all(runnable)
        r.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
        yield r


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cmd", COMMANDS, ids=_ids(COMMANDS))
def test_doc_command_runs(cmd: DocCommand, runner: Runner) -> None:
    if _demo_missing(cmd):
        pytest.xfail("`tokenpulse demo` is not implemented yet (tokenpulse/cli/demo.py)")
    reason = offline_blocker(cmd)
    if reason is not None:
        pytest.skip(f"parse-checked only: {reason}")
    outcome = runner.results[cmd.key]
    assert outcome.ok, f"{cmd.where}: `{cmd.text}`\n{outcome.detail}"


def test_offline_coverage(runner: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    """Prints what was parsed, run and skipped (pytest -s shows it; -rA keeps it in the report)."""
    assert COMMANDS, "no tokenpulse command found in README.md and docs/*.md"
    runnable = [c for c in COMMANDS if offline_blocker(c) is None and not _demo_missing(c)]
    lines = [f"doc commands: {len(COMMANDS)} parsed in {len(DOC_FILES)} files, {len(runnable)} run "
             f"({len({c.key for c in runnable})} distinct, {getattr(runner, 'elapsed', 0):.0f} s), "
             f"{len(OFFLINE_SKIPS)} parse-checked only:"]
    width = max((len(w) for w, _, _ in OFFLINE_SKIPS), default=0)
    lines += [f"  {where:<{width}}  {reason}: {text}" for where, text, reason in OFFLINE_SKIPS]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
