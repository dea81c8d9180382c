"""The compose stack, validated statically (no Docker engine here): structure, ordering,
settings, healthchecks, and the Dockerfile's entrypoint."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.cli import build_parser
from detector.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    services: dict[str, Any] = compose["services"]
    return services


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices or {})


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert set(services) == {
        "elasticsearch",
        "kibana-password",
        "kibana",
        "setup",
        "detector",
        "demo",
    }
    assert services["elasticsearch"]["image"] == (
        "docker.elastic.co/elasticsearch/elasticsearch:${STACK_VERSION}"
    )
    assert services["kibana"]["image"] == "docker.elastic.co/kibana/kibana:${STACK_VERSION}"
    for name in ("setup", "detector", "demo"):
        assert services[name]["build"] == "."
    assert services["demo"]["profiles"] == ["demo"]


def test_elasticsearch_is_a_secure_single_node_over_http(compose: dict[str, Any]) -> None:
    env = _services(compose)["elasticsearch"]["environment"]
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "true"
    assert env["xpack.security.http.ssl.enabled"] == "false"
    assert env["ELASTIC_PASSWORD"] == "${ELASTIC_PASSWORD}"


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("kibana-password", {"elasticsearch": "service_healthy"}),
        ("kibana", {"kibana-password": "service_completed_successfully"}),
        ("setup", {"elasticsearch": "service_healthy"}),
        (
            "detector",
            {"elasticsearch": "service_healthy", "setup": "service_completed_successfully"},
        ),
        ("demo", {"elasticsearch": "service_healthy", "setup": "service_completed_successfully"}),
    ],
)
def test_depends_on_conditions(
    compose: dict[str, Any], service: str, expected: dict[str, str]
) -> None:
    depends = _services(compose)[service]["depends_on"]
    assert {name: spec["condition"] for name, spec in depends.items()} == expected


def test_kibana_uses_kibana_system_never_elastic(compose: dict[str, Any]) -> None:
    env = _services(compose)["kibana"]["environment"]
    assert env["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert env["ELASTICSEARCH_PASSWORD"] == "${KIBANA_PASSWORD}"


def test_every_detector_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = {env_name(name) for name in Settings.model_fields}
    used = {
        key
        for service in _services(compose).values()
        for key in (service.get("environment") or {})
        if key.startswith("DETECTOR_")
    }
    assert used and used <= known, used - known


def test_detector_gets_no_superuser(compose: dict[str, Any]) -> None:
    env = _services(compose)["detector"]["environment"]
    assert "DETECTOR_ES_USERNAME" not in env and "DETECTOR_ES_PASSWORD" not in env
    assert "/run/detector" in " ".join(_services(compose)["detector"]["volumes"])


def test_setup_and_demo_run_real_subcommands(compose: dict[str, Any]) -> None:
    services, commands = _services(compose), _subcommands()
    setup = services["setup"]["command"]
    assert setup[0] in commands and "--create-role" in setup and "--api-key" in setup
    build_parser().parse_args([str(part) for part in setup])  # every option exists
    assert services["demo"]["command"][0] in commands
    assert services["detector"]["command"] == ["run"]


def test_healthchecks(compose: dict[str, Any]) -> None:
    services = _services(compose)
    es = " ".join(services["elasticsearch"]["healthcheck"]["test"])
    assert "curl" in es and "http://localhost:9200/_cluster/health" in es
    kibana = " ".join(services["kibana"]["healthcheck"]["test"])
    assert "curl" in kibana and "http://localhost:5601/api/status" in kibana
    detector = services["detector"]["healthcheck"]["test"]
    assert detector[:2] == ["CMD", "detector"]
    assert detector[2] in _subcommands()


def test_the_detector_is_healthy_on_a_stack_without_cloudtrail_data_yet(
    compose: dict[str, Any],
) -> None:
    probe = [str(part) for part in _services(compose)["detector"]["healthcheck"]["test"][1:]]
    assert probe[:2] == ["detector", "health"]
    # No index yet is a note in `health`; only --require-data makes it a failure.
    assert build_parser().parse_args(probe[1:]).require_data is False
    assert build_parser().parse_args(["health", "--require-data"]).require_data is True


def test_env_example_pins_a_9x_stack_and_sets_every_variable_compose_uses() -> None:
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert re.fullmatch(r"9\.\d+\.\d+", example["STACK_VERSION"])
    used = set(re.findall(r"\$\{([A-Z_]+)(?::-[^}]*)?\}", COMPOSE.read_text()))
    assert used <= set(example), used - set(example)


def test_env_example_passwords_hold_only_the_characters_it_allows() -> None:
    text = (ROOT / ".env.example").read_text()
    assert "# Passwords: letters, digits, '-', '_' and '.' only" in text
    passwords = re.findall(r"^[A-Z_]+_PASSWORD=(.*)$", text, re.MULTILINE)
    assert len(passwords) == 2
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", password) for password in passwords)


def test_the_package_license_is_an_spdx_expression_setuptools_reads_without_warning() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"  # a table is deprecated
    # setuptools reads an SPDX `project.license` from 77.0 on.
    assert pyproject["build-system"]["requires"] == ["setuptools>=77"]


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["detector"] == "detector.cli:main"
    assert 'ENTRYPOINT ["detector"]' in dockerfile
    assert 'CMD ["run"]' in dockerfile
    assert dockerfile.startswith("#") and "FROM python:3.12-slim" in dockerfile
    user = re.search(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user and user.group(1) not in ("root", "0")
    assert "pip install ." in dockerfile
