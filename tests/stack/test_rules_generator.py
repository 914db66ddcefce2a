"""`tokenpulse rules`: the committed rules and generated tests are its output for the stack's config
(examples/mock.yaml), another config's output passes promtool too, and objectives the rules cannot
express exactly are config errors (exit 2, `FILE: field.path: problem`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stack_helpers import ROOT

from tokenpulse.config import load_config
from tokenpulse.ops.rules import DEFAULT_RUNBOOK_BASE_URL, RUNBOOK_ENV, generate
from tokenpulse.ops.rules.promql import cells, regex_alternatives

STACK_CONFIG = ROOT / "examples" / "mock.yaml"


def rules_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if k != RUNBOOK_ENV}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tokenpulse", "rules", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=full_env,
    )


def test_committed_rules_are_the_generators_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNBOOK_ENV, raising=False)
    files = generate(load_config(STACK_CONFIG), source="examples/mock.yaml")
    for rel, text in files.items():
        path = ROOT / "prometheus" / rel
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run `tokenpulse rules --config examples/mock.yaml --out prometheus`"
        )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    out = tmp_path / "prometheus"
    assert rules_cli("--config", "examples/mock.yaml", "--out", str(out)).returncode == 0
    assert rules_cli("--config", "examples/mock.yaml", "--out", str(out), "--check").returncode == 0
    alerts = out / "rules" / "alerts.yml"
    alerts.write_text(alerts.read_text(encoding="utf-8").replace("> 14.4", "> 20"), encoding="utf-8")
    result = rules_cli("--config", "examples/mock.yaml", "--out", str(out), "--check")
    assert result.returncode == 1 and "alerts.yml" in result.stderr


def write_config(tmp_path: Path, slo: dict) -> Path:
    data = yaml.safe_load(STACK_CONFIG.read_text(encoding="utf-8"))
    data["slo"] = slo
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("slo", "field", "problem"),
    [
        ({"ttft_s": 7}, "slo.ttft_s", "7 s is not a bucket bound of tokenpulse_ttft_seconds"),
        (
            {"models": {"nvidia/nemotron-3-super-120b-a12b": {"ttft_s": 2.5}}},
            "slo.models.nvidia/nemotron-3-super-120b-a12b.ttft_s",
            "2.5 s is not a bucket bound",
        ),
        ({"providers": {"tortoiselabs": {"ttft_s": 11}}}, "slo.providers.tortoiselabs.ttft_s", "not a bucket bound"),
        ({"models": {"no/such-model": {"availability": 0.9}}}, "slo.models.no/such-model", "no endpoint probes model"),
    ],
)
def test_objectives_the_rules_cannot_express_exit_2(tmp_path: Path, slo: dict, field: str, problem: str) -> None:
    path = write_config(tmp_path, slo)
    result = rules_cli("--config", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert f"{path}: {field}: " in result.stderr and problem in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_overrides_apply_field_by_field_provider_over_model() -> None:
    slo = load_config(STACK_CONFIG).slo.model_copy(update={})
    objectives = slo.objectives("nvidia/nemotron-3-super-120b-a12b", "tortoiselabs")
    assert objectives.ttft_s == 10.0 and objectives.availability == slo.availability
    assert slo.objectives("nvidia/nemotron-3-super-120b-a12b", "swiftinfer").ttft_s == 5.0
    assert slo.objectives("meta-llama/llama-3.3-70b-instruct", "swiftinfer").ttft_s == 2.0
    # the cells are disjoint and cover every target: exactly one matches each (model, provider)
    ttft_cells = cells(slo, "ttft_s")
    assert [c.value for c in ttft_cells] == [2.0, 5.0, 10.0]


def test_regex_alternatives_escape_metacharacters() -> None:
    assert regex_alternatives(["a.b", "c+d"]) == '"a\\\\.b|c\\\\+d"'


def test_runbook_base_url_comes_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "prometheus"
    result = rules_cli(
        "--config", "examples/mock.yaml", "--out", str(out), env={RUNBOOK_ENV: "https://wiki.example/runbooks"}
    )
    assert result.returncode == 0, result.stderr
    rules = [r for g in yaml.safe_load((out / "rules" / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert all(r["annotations"]["runbook_url"] == f"https://wiki.example/runbooks#{r['alert'].lower()}" for r in rules)
    # unset, links name the runbooks' file in the checkout (no guessed public address)
    assert (ROOT / DEFAULT_RUNBOOK_BASE_URL).is_file()


def test_another_configs_rules_pass_promtool(tmp_path: Path, promtool: str) -> None:
    """examples/vllm.yaml (1 s / 99.5 %, an own `kind: openai` endpoint whose burns page) with a per-model
    override: its generated rules and tests pass promtool."""
    data = yaml.safe_load((ROOT / "examples" / "vllm.yaml").read_text(encoding="utf-8"))
    model = data["endpoints"][0]["models"][0]["id"] = "acme/chat-model.v2"
    data["slo"]["models"] = {model: {"ttft_s": 3.0, "availability": 0.98, "ttft_share": 0.9}}
    config = tmp_path / "vllm.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "prometheus"
    result = rules_cli("--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = (out / "rules" / "alerts.yml").read_text(encoding="utf-8")
    assert "severity: page" in text and "(1 - 0.995)" in (out / "rules" / "recording.yml").read_text()
    check = subprocess.run(
        [promtool, "check", "rules", *sorted(str(p) for p in (out / "rules").glob("*.yml"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        [promtool, "test", "rules", "generated_test.yml"],
        cwd=out / "tests",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert test.returncode == 0, test.stdout + test.stderr
    shutil.rmtree(out)


def _recorded_layout() -> tuple[list[dict], list[dict]]:
    files = generate(load_config(STACK_CONFIG), source="examples/mock.yaml")
    recording = yaml.safe_load(files["rules/recording.yml"])["groups"]
    alerts = yaml.safe_load(files["rules/alerts.yml"])["groups"]
    return recording, alerts


def test_no_group_holds_two_full_reads_of_a_raw_family() -> None:
    """A group's rules run one after another, so two reads of every per-target series of a family with
    many series per target (13-29: requests by class, histogram buckets; a few tenths of a second each
    at 1,000 targets, rules_eval.py) in one group add up. A narrowed read (one `le`, one error class)
    is ~1 series per target and does not count."""
    full_read = re.compile(r"rate\((tokenpulse_requests_total|tokenpulse_[a-z_]+_bucket)(\[|\{\})")
    recording, _ = _recorded_layout()
    for group in recording:
        reads = [m.group(1) for r in group["rules"] for m in full_read.finditer(r["expr"])]
        assert len(reads) <= 1, (group["name"], reads)


def test_alerts_read_nothing_recorded_only_for_dashboards() -> None:
    """Dashboard-only groups are evaluated every 30 s; an alert reading one of their series, directly or
    through the rules it reads, would fire up to 15 s late."""
    def names(expr: str) -> set[str]:
        return set(re.findall(r"[a-z_]+:[a-z_0-9]+:[a-z_0-9]+", expr))

    recording, alerts = _recorded_layout()
    slow = {r["record"] for g in recording if g.get("interval") == "30s" for r in g["rules"]}
    assert slow, "the layout has dashboard-only groups"
    reads: dict[str, set[str]] = {}
    for g in recording:
        for r in g["rules"]:
            reads.setdefault(r["record"], set()).update(names(r["expr"]))
    for alert in (r for g in alerts for r in g["rules"]):
        seen: set[str] = set()
        todo = names(alert["expr"])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo |= reads.get(name, set())
        assert not seen & slow, (alert["alert"], seen & slow)
