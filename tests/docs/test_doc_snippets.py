"""The YAML and PromQL in README.md and docs/*.md are real, too.

- Every ```yaml block is valid YAML. A tokenpulse config (or a fragment of one: `load:`, `profiles:`,
  `models:` ...) validates against the config model; a Prometheus config fragment passes
  `promtool check config`; a block under a heading that names `examples/<file>.yaml` means exactly what
  that file means.
- Every line of a ```promql block is a PromQL expression that `promtool check rules` accepts, and every
  tokenpulse metric or recorded series it names exists (tokenpulse/metrics.py, prometheus/rules/).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tokenpulse.config import Config, ConfigError, load_config, parse_config
from tools import docs_gen

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if p.exists()]
ENV = {"TOKENPULSE_MOCK_URL": "http://127.0.0.1:8080/api/v1"}
PROMETHEUS_KEYS = {"global", "scrape_configs", "remote_write", "remote_read", "rule_files", "alerting"}
DUMMY_ENDPOINT = {"name": "doc", "base_url": "http://127.0.0.1:8080/api/v1", "models": [{"id": "m"}]}


@dataclass
class Block:
    file: str
    line: int
    lang: str
    text: str
    heading: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def blocks(lang: str) -> list[Block]:
    out: list[Block] = []
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        heading, fence, start, body, current = "", None, 0, [], ""
        for i, raw in enumerate(lines):
            stripped = raw.strip()
            if fence is None and raw.startswith("#"):
                heading = raw
            match = re.match(r"^(`{3,})\s*([\w+-]*)\s*$", stripped)
            if match and fence is None:
                fence, current, start, body = match.group(1), match.group(2).lower(), i + 1, []
            elif fence is not None and stripped == fence:
                if current == lang:
                    out.append(Block(path.relative_to(ROOT).as_posix(), start, lang,
                                     textwrap.dedent("\n".join(body)), heading))
                fence = None
            elif fence is not None:
                body.append(raw)
    return out


YAML_BLOCKS = blocks("yaml")
PROMQL_BLOCKS = blocks("promql")


def _as_config(data: dict[str, Any]) -> Config | None:
    """A config, or a fragment completed to one; None when the block is not tokenpulse config."""
    keys = set(data)
    if "endpoints" in keys:
        return parse_config(data, env=ENV)
    if keys and keys <= set(Config.model_fields):
        return parse_config({**data, "endpoints": [DUMMY_ENDPOINT]}, env=ENV)
    if keys == {"models"}:
        return parse_config({"endpoints": [{**DUMMY_ENDPOINT, "models": data["models"]}]}, env=ENV)
    return None


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[b.where for b in YAML_BLOCKS])
def test_yaml_block(block: Block, tmp_path: Path) -> None:
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.where}: not valid YAML: {exc}")
    assert isinstance(data, dict), f"{block.where}: expected a mapping"
    if set(data) & PROMETHEUS_KEYS and set(data) <= PROMETHEUS_KEYS:
        if not shutil.which("promtool"):
            pytest.skip("promtool is not installed")
        path = tmp_path / "prometheus.yml"
        path.write_text(block.text, encoding="utf-8")
        proc = subprocess.run(["promtool", "check", "config", str(path)], check=False, capture_output=True, text=True)
        assert proc.returncode == 0, f"{block.where}: promtool check config:\n{proc.stdout}{proc.stderr}"
        return
    try:
        config = _as_config(data)
    except ConfigError as exc:
        pytest.fail(f"{block.where}: not a valid tokenpulse config:\n{exc}")
    named = re.search(r"examples/([\w.-]+\.yaml)", block.heading)
    if config is not None and named and "endpoints" in data:
        assert config == load_config(ROOT / "examples" / named.group(1), env={}), \
            f"{block.where}: differs from examples/{named.group(1)}"
    if config is None:
        pytest.skip("neither a tokenpulse nor a Prometheus config")


@functools.cache
def _known_series() -> frozenset[str]:
    names: set[str] = set()
    for metric in docs_gen._collect_metrics():
        names |= set(docs_gen._series_names(metric))
    names |= {rule.name for rule in docs_gen._rules(ROOT)}
    return frozenset(names)


PROMQL = [(b, n, line) for b in PROMQL_BLOCKS
          for n, line in enumerate(b.text.splitlines()) if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("block,offset,expr", PROMQL, ids=[f"{b.where}+{n}" for b, n, _ in PROMQL])
def test_promql_line(block: Block, offset: int, expr: str, tmp_path: Path) -> None:
    where = f"{block.file}:{block.line + 1 + offset}"
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", re.sub(r'"[^"]*"', "", expr)))
    unknown = {n for n in names if (n.startswith("tokenpulse_") or n.count(":") == 2) and n not in _known_series()}
    assert not unknown, f"{where}: unknown series {sorted(unknown)} in `{expr}`"
    if not shutil.which("promtool"):
        pytest.skip("promtool is not installed")
    rules = {"groups": [{"name": "doc", "rules": [{"record": "doc:check:expr", "expr": expr}]}]}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    proc = subprocess.run(["promtool", "check", "rules", str(path)], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, f"{where}: `{expr}` is not valid PromQL:\n{proc.stdout}{proc.stderr}"
