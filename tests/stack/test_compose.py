"""docker-compose.yml, Dockerfile and .env.example: valid against the Compose Specification's JSON schema
(vendored, see compose-spec.SOURCE.md), every mounted file present, every setting documented, images
pinned, the commands the services run accepted by tokenpulse's own CLI, and `docker compose config`
where a Compose plugin is installed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from stack_helpers import ROOT

from tokenpulse.cli.main import build_parser

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parent / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with `env` (empty counts as unset for :)."""
    def repl(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?"):
            if not value:
                raise ValueError(f"{name}: {arg}")
            return value
        return value or ""
    return INTERPOLATION.sub(repl, text)


def test_vendored_schema_is_the_documented_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_a_mistake(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["prober"]["restart_policy"] = "always"  # not a Compose key
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


def test_required_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"mock", "prober", "prometheus", "alertmanager", "grafana", "locust-master",
            "locust-worker"} <= set(services)
    for name in ("locust-master", "locust-worker"):
        assert services[name]["profiles"] == ["loadtest"]
    for name, service in services.items():
        if name not in ("locust-master", "locust-worker"):
            assert "profiles" not in service, name
    worker = services["locust-worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale locust-worker=N needs both absent"


def test_every_service_is_pinned_restarted_and_health_checked(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" not in service:
            repo, _, tag = image.rpartition(":")
            assert repo and re.match(r"^v?\d+\.\d+\.\d+$", tag), f"{name}: pin an exact version, not {image!r}"
        assert service["restart"] == "unless-stopped", name
        health = service["healthcheck"]
        assert health.get("disable") is True or health["test"][0] == "CMD", name
    assert [n for n, s in compose["services"].items() if s["healthcheck"].get("disable")] == ["locust-worker"]


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":")[0]
                if not source.startswith((".", "/", "$")):
                    used.add(source)
            elif volume.get("type") == "volume":
                used.add(volume["source"])
    assert used == declared


def bind_sources(compose: dict[str, Any]) -> list[str]:
    sources = []
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":")[0]
                if source.startswith((".", "/", "$")):
                    sources.append(source)
            elif volume.get("type") == "bind":
                sources.append(volume["source"])
    return sources


@pytest.mark.parametrize("config", [None, "examples/openrouter.yaml"])
def test_every_mounted_file_exists(compose: dict[str, Any], config: str | None) -> None:
    env = {"TOKENPULSE_CONFIG": config} if config else {}
    sources = bind_sources(compose)
    assert len(sources) >= 7
    for source in sources:
        path = ROOT / interpolate(source, env)
        assert path.exists(), f"{source} -> {path} does not exist"


def test_every_setting_is_documented_in_env_example_and_no_secret_is_set() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = {m.group(1) for m in INTERPOLATION.finditer(text)}
    documented = env_example()
    assert used <= set(documented), f"undocumented: {sorted(used - set(documented))}"
    assert documented["GF_ADMIN_PASSWORD"] == "" and documented["OPENROUTER_API_KEY"] == ""
    # Grafana's password has no default left in compose: it must come from .env
    assert "GF_SECURITY_ADMIN_PASSWORD: ${GF_ADMIN_PASSWORD:?" in text
    with pytest.raises(ValueError):
        interpolate(text, documented)
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def test_default_target_is_the_mock_and_openrouter_is_one_variable(compose: dict[str, Any]) -> None:
    prober = compose["services"]["prober"]
    assert prober["environment"]["TOKENPULSE_MOCK_URL"] == "http://mock:8080/api/v1"
    assert "${OPENROUTER_API_KEY" in prober["environment"]["OPENROUTER_API_KEY"]
    (mount,) = [v for v in prober["volumes"] if isinstance(v, dict)]
    assert interpolate(mount["source"], {}) == "./examples/mock.yaml"
    assert (interpolate(mount["source"], {"TOKENPULSE_CONFIG": "examples/openrouter.yaml"})
            == "./examples/openrouter.yaml")
    openrouter = yaml.safe_load((ROOT / "examples" / "openrouter.yaml").read_text(encoding="utf-8"))
    assert {e.get("api_key_env") for e in openrouter["endpoints"]} == {"OPENROUTER_API_KEY"}


@pytest.mark.parametrize("service", ["mock", "prober", "alert-sink"])
def test_app_commands_parse_with_the_tokenpulse_cli(compose: dict[str, Any], service: str) -> None:
    command = compose["services"][service]["command"]
    assert command[0] == "tokenpulse"
    args = build_parser().parse_args(command[1:])
    assert callable(args.func)


def test_locust_commands_use_the_locustfile_and_its_options(compose: dict[str, Any]) -> None:
    from tokenpulse.load.options import DEFAULT_METRICS_PORT, add_locust_arguments

    class Recorder:
        def __init__(self) -> None:
            self.names: set[str] = set()

        def add_argument(self, *names: str, **kwargs: Any) -> None:
            self.names.update(names)

    known = Recorder()
    add_locust_arguments(known)
    for name in ("locust-master", "locust-worker"):
        command = compose["services"][name]["command"]
        assert command[:3] == ["locust", "-f", "/app/locustfiles/tokenpulse_locust.py"]
        assert (ROOT / "locustfiles" / "tokenpulse_locust.py").is_file()
        assert {arg for arg in command if arg.startswith("--tp-")} <= known.names
    master = compose["services"]["locust-master"]["command"]
    port = int(master[master.index("--tp-metrics-port") + 1])
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "tokenpulse-locust"]
    assert job["static_configs"][0]["targets"] == [f"locust-master:{port}"]
    assert port == DEFAULT_METRICS_PORT


def test_scrape_targets_match_the_compose_services(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    for job in prometheus["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host = target.split(":")[0]
            assert host == "localhost" or host in compose["services"], target
    prober = compose["services"]["prober"]["command"]
    assert prober[prober.index("--listen") + 1] == "0.0.0.0:9464"


def test_dockerfile_is_slim_pinned_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms and all(re.match(r"^python:3\.11\.\d+-slim-\w+$", image) for image in froms), froms
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "pip install" in text
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored and ".venv" in ignored and ".git" in ignored


def test_docker_compose_config(tmp_path: Path) -> None:
    """`docker compose config` resolves and validates the file the way Compose itself does; it needs the
    Compose plugin but no Docker engine."""
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env = {**os.environ, **env_example(), "GF_ADMIN_PASSWORD": "test-password"}
    for profile in ([], ["--profile", "loadtest"]):
        result = subprocess.run([docker, "compose", "-f", str(COMPOSE), *profile, "config", "--quiet"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    env.pop("GF_ADMIN_PASSWORD")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], cwd=ROOT,
                            env={**env, "GF_ADMIN_PASSWORD": ""}, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "set it in .env" in result.stderr
