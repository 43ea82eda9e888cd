"""Operations: settings fail fast naming the variable, and the operators' docker-compose.yml is sound.

No Docker engine runs here, so compose is checked by parsing it: its services, healthchecks,
dependency conditions, ports, and that it holds no secret values.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.common.config import ConfigError, Env

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
APP_SERVICES = {"usage_tracker", "billing", "recruiting", "gateway"}


@pytest.mark.parametrize(
    "module", ["services.usage_tracker", "services.billing", "services.recruiting", "gateway"]
)
def test_a_missing_required_setting_fails_at_start_naming_it(module, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HIREMETER_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", module], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "HIREMETER_SERVICE_TOKEN must be set" in result.stderr


def test_malformed_settings_name_the_variable():
    with pytest.raises(ConfigError, match="USAGE_TRACKER_PORT must be an integer"):
        Env({"USAGE_TRACKER_PORT": "fifty"}).int("USAGE_TRACKER_PORT", 50052)
    with pytest.raises(ConfigError, match="GATEWAY_PORT must be between 0 and 65535"):
        Env({"GATEWAY_PORT": "70000"}).int("GATEWAY_PORT", 8080)
    with pytest.raises(ConfigError, match="HIREMETER_OPENAI_SIMULATED must be true or false"):
        Env({"HIREMETER_OPENAI_SIMULATED": "perhaps"}).bool("HIREMETER_OPENAI_SIMULATED")


def test_compose_has_postgres_a_migration_and_the_four_processes():
    services = COMPOSE["services"]
    assert {"postgres", "migrate", *APP_SERVICES} <= set(services)
    assert "healthcheck" in services["postgres"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart", "no") == "no"


def test_every_process_waits_for_what_it_needs_and_has_a_healthcheck():
    services = COMPOSE["services"]
    for name in APP_SERVICES:
        service = services[name]
        test = " ".join(service["healthcheck"]["test"])
        assert ("grpc_health_probe" in test) if name != "gateway" else ("/healthz" in test), name
        for dependency, condition in service["depends_on"].items():
            expected = "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            assert condition["condition"] == expected, (name, dependency)
    assert set(services["gateway"]["depends_on"]) >= {"billing", "recruiting"}
    assert set(services["recruiting"]["depends_on"]) >= {"usage_tracker"}


def test_one_image_built_from_the_repo_root():
    builds = {
        name: service.get("build") or service.get("image")
        for name, service in COMPOSE["services"].items()
        if name != "postgres"
    }
    assert all(build in (".", {"context": "."}, "hiremeter:local") for build in builds.values()), builds
    assert (REPO / "Dockerfile").exists()


def test_ports_match_the_design():
    services = COMPOSE["services"]
    assert services["gateway"]["ports"] == ["8080:8080"]
    for name, port in {"recruiting": "50051", "usage_tracker": "50052", "billing": "50053"}.items():
        assert port in services[name]["expose"], name
        assert port in services[name]["healthcheck"]["test"][-1], name
        assert "ports" not in services[name], f"{name} is internal and must not be published"


def test_compose_holds_no_secret_values():
    text = (REPO / "docker-compose.yml").read_text()
    for service in COMPOSE["services"].values():
        environment = service.get("environment", {})
        for key, value in environment.items():
            if re.search(r"TOKEN|SECRET|PASSWORD|KEY", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), (
                    f"{key} must come from the environment"
                )
    assert "sk-" not in text
