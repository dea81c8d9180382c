"""The detector's role: one descriptor (`detector/mappings/detector-role.json`) for `detector
setup --create-role`, its API keys and the file-realm role of the test node (`scripts/local-es`)."""

from __future__ import annotations

import json
from pathlib import Path

from detector import provision
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
