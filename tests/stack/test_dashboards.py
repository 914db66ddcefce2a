"""Grafana dashboards as code: regenerating gives the committed JSON byte for byte, the panels reference
the provisioned datasource, only known metrics and defined variables, and the layout is sane. (Every
query is run through a real Prometheus in test_e2e.py.)"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from stack_helpers import DASHBOARD_DIR, ROOT, dashboards, panel_targets, recording_rules, variable_queries

from tokenpulse.metrics import LoadMetrics, ProberMetrics

GENERATOR = ROOT / "dashboards" / "generate.py"
PROVISIONING = ROOT / "dashboards" / "provisioning"
#: Series that Prometheus and Alertmanager export about themselves (Prober health dashboard).
PLATFORM_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS",
                    "prometheus_rule_group_last_duration_seconds", "prometheus_notifications_sent_total",
                    "prometheus_notifications_errors_total", "alertmanager_notifications_total",
                    "alertmanager_notifications_failed_total"}
PROMQL_WORDS = {"sum", "by", "max", "min", "avg", "rate", "increase", "histogram_quantile", "ignoring", "group_left",
                "or", "and", "time", "avg_over_time", "count", "on", "without", "bool", "offset", "le", "e6"}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tokenpulse_dashboards_generate", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_gives_the_committed_json_byte_for_byte(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    generated = sorted(p.name for p in tmp_path.glob("*.json"))
    assert generated == sorted(p.name for p in DASHBOARD_DIR.glob("*.json"))
    for name in generated:
        assert (tmp_path / name).read_bytes() == (DASHBOARD_DIR / name).read_bytes(), \
            f"dashboards/json/{name} is stale: run python dashboards/generate.py"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    gen = load_generator()
    for name, text in gen.generate().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert gen.main(["--check", "--out", str(tmp_path)]) == 0
    victim = tmp_path / "prober-health.json"
    victim.write_text(victim.read_text(encoding="utf-8").replace("Probes in flight", "Probes"), encoding="utf-8")
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    boards = dashboards()
    assert set(boards) == {"provider-overview.json", "provider-detail.json", "load-test.json", "prober-health.json"}
    uids = [d["uid"] for d in boards.values()]
    assert len(set(uids)) == len(uids)
    detail = boards["provider-detail.json"]
    assert {name for name, _ in variable_queries(detail)} == {"endpoint", "model", "provider"}


def datasource_uid() -> str:
    data = yaml.safe_load((PROVISIONING / "datasources" / "tokenpulse.yml").read_text(encoding="utf-8"))
    (prom,) = [ds for ds in data["datasources"] if ds["type"] == "prometheus"]
    assert prom["isDefault"] is True
    return str(prom["uid"])


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARD_DIR.glob("*.json")))
def test_panels_use_the_provisioned_datasource_and_defined_variables(name: str) -> None:
    board = dashboards()[name]
    uid = datasource_uid()
    defined = {v["name"] for v in board.get("templating", {}).get("list", [])}
    targets = panel_targets(board)
    assert len(targets) >= 10
    for panel, target in targets:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        used = set(re.findall(r"\$(?!__)(\w+)", target["expr"]))
        assert used <= defined, f"{panel['title']}: undefined {used - defined}"
    for var in board.get("templating", {}).get("list", []):
        assert var["datasource"]["uid"] == uid


def known_series() -> set[str]:
    names = set(PLATFORM_METRICS)
    for registry in (ProberMetrics().registry, LoadMetrics().registry):
        for family in registry.collect():
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                        "summary": ("_count", "_sum"), "gauge": ("",), "info": ("_info",)}[family.type]
            names.update(family.name + s for s in suffixes)
    names.update(rule["record"] for rule in recording_rules())
    return names


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARD_DIR.glob("*.json")))
def test_queries_only_use_known_series(name: str) -> None:
    board = dashboards()[name]
    known = known_series()
    exprs = [t["expr"] for _, t in panel_targets(board)] + [q for _, q in variable_queries(board)]
    for expr in exprs:
        bare = re.sub(r'"[^"]*"', '""', expr)            # drop label values
        bare = re.sub(r"\{[^}]*\}", "", bare)           # drop matchers
        bare = re.sub(r"\[[^\]]*\]", "", bare)          # drop ranges
        bare = re.sub(r"\bby \([^)]*\)|\bignoring \([^)]*\)|\bon \([^)]*\)", "", bare)
        bare = re.sub(r"label_values\(([^,]*),[^)]*\)", r"\1", bare)
        for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
            if word in PROMQL_WORDS:
                continue
            assert word in known, f"{name}: unknown series {word!r} in {expr}"


def test_prober_dashboards_prefer_recording_rules() -> None:
    """The prober's per-target SLI figures come from the recorded series, as the alerts do."""
    recorded = {rule["record"] for rule in recording_rules()}
    for name in ("provider-overview.json", "provider-detail.json"):
        exprs = " ".join(t["expr"] for _, t in panel_targets(dashboards()[name]))
        used = {r for r in recorded if r in exprs}
        assert len(used) >= 8, (name, sorted(used))


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARD_DIR.glob("*.json")))
def test_layout_ids_unique_and_panels_do_not_overlap(name: str) -> None:
    board = dashboards()[name]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and 0 not in ids
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))


def test_provisioning_points_at_the_mounted_dashboards() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "tokenpulse.yml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./dashboards/json:{provider['options']['path']}:ro" in mounts
    assert provider["allowUiUpdates"] is False
    gen = load_generator()
    assert gen.DATASOURCE_UID == datasource_uid()
