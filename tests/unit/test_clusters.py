"""Index patterns across clusters (`detector.query.clusters`) and `DETECTOR_REMOTE_CLUSTERS`."""

from __future__ import annotations

import pytest

from detector.errors import ConfigError
from detector.query.clusters import (
    cluster_of,
    clusters_of,
    exclusion,
    remotes_named,
    with_remotes,
)
from detector.settings import load_settings


def test_each_local_pattern_is_searched_on_every_remote_beside_itself() -> None:
    assert with_remotes(("logs-*", "filebeat-*"), ["east", "west"]) == (
        "logs-*",
        "east:logs-*",
        "west:logs-*",
        "filebeat-*",
        "east:filebeat-*",
        "west:filebeat-*",
    )


def test_a_pattern_naming_a_cluster_is_kept_as_written() -> None:
    assert with_remotes(("east:logs-*", "logs-*"), ["east"]) == ("east:logs-*", "logs-*")


def test_every_remote_is_the_alias_wildcard() -> None:
    assert with_remotes(("logs-*",), ["*"]) == ("logs-*", "*:logs-*")


def test_no_remote_changes_nothing() -> None:
    assert with_remotes(("logs-*",), []) == ("logs-*",)


def test_exclusions_are_written_on_the_remote_side() -> None:
    assert with_remotes(("logs-*", "-logs-old"), ["east"])[-1] == "east:-logs-old"
    assert exclusion("east:logs-a") == "east:-logs-a"
    assert exclusion("logs-a") == "-logs-a"


def test_indices_are_grouped_by_cluster() -> None:
    assert cluster_of("east:logs-a") == "east"
    assert cluster_of("logs-a") == "(local)"
    assert clusters_of(["logs-a", "east:logs-b", "east:logs-c"]) == ("(local)", "east")
    assert remotes_named(["logs-a", "east:logs-b", "*:x"]) == ("*", "east")


def test_the_setting_is_a_comma_separated_list_of_aliases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DETECTOR_REMOTE_CLUSTERS", "east, west")
    assert load_settings(_env_file=None).remote_clusters == ["east", "west"]


def test_a_remote_alias_with_a_colon_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DETECTOR_REMOTE_CLUSTERS", "east:logs")
    with pytest.raises(ConfigError, match="DETECTOR_REMOTE_CLUSTERS"):
        load_settings(_env_file=None)
