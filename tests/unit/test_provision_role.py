"""The detector's role: one descriptor (`detector/mappings/detector-role.json`) for `detector
setup --create-role`, its API keys and the file-realm role of the test node (`scripts/local-es`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.cli import main
from detector.deployment import provision
from detector.errors import RequestError, SetupError
from detector.settings import Settings

ROLE_FILE = Path(__file__).resolve().parents[2] / "detector" / "mappings" / "detector-role.json"


def test_the_role_of_the_default_settings_is_the_file_as_it_is() -> None:
    settings = Settings(_env_file=None)
    assert provision.role_descriptor(settings) == json.loads(ROLE_FILE.read_text(encoding="utf-8"))


def test_role_for_changes_only_the_index_names() -> None:
    role = provision.role_for(["logs-a-*"], ["alerts-x", "alerts-x-*"])
    default = json.loads(ROLE_FILE.read_text(encoding="utf-8"))
    read, own = role["indices"]
    assert (read["names"], own["names"]) == (["logs-a-*"], ["alerts-x", "alerts-x-*"])
    for entry, original in zip(role["indices"], default["indices"], strict=True):
        assert {**entry, "names": original["names"]} == original
    assert role["cluster"] == default["cluster"]
    assert provision.role_for(["b"], ["c"]) != role  # a fresh copy each time


def test_the_role_is_least_privilege() -> None:
    role = json.loads(ROLE_FILE.read_text(encoding="utf-8"))
    assert role["cluster"] == ["monitor", "manage_index_templates"]
    read, own = role["indices"]
    assert read["privileges"] == ["read", "view_index_metadata"]
    assert "all" not in own["privileges"]
    assert not any(entry["allow_restricted_indices"] for entry in role["indices"])
    assert all("*" not in entry["names"] for entry in role["indices"])


def test_setup_refuses_env_file_without_api_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--env-file", "/tmp/x.env"]) == 2
    assert "--env-file is where --api-key writes the key" in capsys.readouterr().err


def test_a_cluster_without_security_is_named_as_such() -> None:
    error = RequestError(
        "Elasticsearch rejected the request (500): security_exception: Security must be "
        "explicitly enabled when using a [basic] license. Enable security by setting "
        "[xpack.security.enabled] to [true] in the elasticsearch.yml file and restart the node.",
        500,
    )
    with pytest.raises(SetupError) as raised, provision._security_step("create the role x"):
        raise error
    assert str(raised.value) == (
        "cannot create the role x: security is off on this cluster (xpack.security.enabled: "
        "false), so it has no roles or API keys; run `detector setup` without --create-role "
        "and --api-key"
    )
