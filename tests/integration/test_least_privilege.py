"""The detector's role `newterms-detector` on the real node: the detector works with it, and it
grants nothing the detector does not own or read.

The test node cannot hold native roles (no `.security` index), so `scripts/local-es` installs the
descriptor `detector setup --create-role` creates (`detector/mappings/detector-role.json`, the
role for the default settings) as a file-realm role, with the user `es_node.detector_username`.
Its patterns are the defaults: the rules' `filebeat-*` and `logs-aws.cloudtrail*`, the detector's
`detector-alerts[-*]` and `detector-executions[-*]`, which this test's
`detector-alerts-<token>` and `detector-executions-<token>` match.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from detector.deployment import provision
from detector.errors import AuthorizationError, BulkError
from detector.es.client import Elastic
from detector.settings import Settings
from tests.integration.test_engine import T0, event
from tests.integration.test_engine_runs import rule_file
from tests.support import cloudtrail as ct
from tests.support.commands import detector_env
from tests.support.es_node import EsNode

AT = "2025-01-15T12:00:00Z"  # T0
RETURNING = "198.51.100.1"  # seen a day before the window: no alert
NEW = ["198.51.100.2", "198.51.100.3"]


@pytest.fixture
def user(es_node: EsNode) -> tuple[str, str]:
    """The detector's file-realm user: (username, password)."""
    if not (es_node.detector_username and es_node.detector_password):
        pytest.fail(
            "the test node has no user with the detector's role "
            "(set DETECTOR_TEST_ES_DETECTOR_USERNAME and DETECTOR_TEST_ES_DETECTOR_PASSWORD)",
            pytrace=False,
        )
    return es_node.detector_username, es_node.detector_password


@pytest.fixture
def as_detector(es_settings: Settings, user: tuple[str, str]) -> Iterator[Elastic]:
    """The detector's Elasticsearch access, signed in as the detector's user."""
    username, password = user
    update = {"es_username": username, "es_password": SecretStr(password), "es_retry_attempts": 1}
    client = Elastic(es_settings.model_copy(update=update))
    try:
        yield client
    finally:
        client.close()


def cloudtrail(token: str) -> str:
    return f"logs-aws.cloudtrail-{token}"


@pytest.fixture
def events(elastic: Elastic, token: str) -> str:
    """CloudTrail events (written as `elastic`): one returning source, two new ones at T0."""
    index = cloudtrail(token)
    window = T0 - timedelta(minutes=4)
    docs = [event(RETURNING, T0 - timedelta(days=1)), event(RETURNING, window)]
    docs += [event(source, window + timedelta(seconds=n)) for n, source in enumerate(NEW)]
    ct.create_index(elastic, index)
    ct.index_documents(elastic, index, docs)
    return index


def detector(
    node: EsNode,
    user: tuple[str, str],
    settings: Settings,
    cwd: Path,
    *args: str,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """`python -m detector ARGS` as the detector's user, on this test's own indices."""
    clean = detector_env(
        node,
        DETECTOR_ES_USERNAME=user[0],
        DETECTOR_ES_PASSWORD=user[1],
        DETECTOR_ALERTS_INDEX=settings.alerts_index,
        DETECTOR_EXECUTION_LOG_INDEX=settings.execution_log_index,
        DETECTOR_ES_READY_TIMEOUT="30",
        **env,
    )
    done = subprocess.run(
        [sys.executable, "-m", "detector", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def token_rules(tmp_path: Path, token: str) -> dict[str, str]:
    """Settings that run only the built-in rule, on this test's CloudTrail index."""
    path = rule_file(tmp_path, [cloudtrail(token)])
    return {"DETECTOR_BUILTIN_RULES": "false", "DETECTOR_RULES_PATH": str(path)}


def _templates(elastic: Elastic, token: str) -> set[str]:
    body: dict[str, Any] = elastic.call(
        lambda es: es.indices.get_index_template(name=f"*{token}*")
    ).body
    return {template["name"] for template in body["index_templates"]}


def _sources(elastic: Elastic, index: str, kind: str | None = None) -> list[dict[str, Any]]:
    elastic.refresh(index)
    query = {"term": {"kind": kind}} if kind else {"match_all": {}}
    hits = elastic.search([index], {"size": 100, "query": query})["hits"]["hits"]
    return [hit["_source"] for hit in hits]


def _normalized(role: dict[str, Any]) -> tuple[Any, ...]:
    indices = sorted(
        (tuple(sorted(entry["names"])), tuple(sorted(entry["privileges"])))
        for entry in role["indices"]
    )
    restricted = {entry.get("allow_restricted_indices", False) for entry in role["indices"]}
    return tuple(sorted(role["cluster"])), tuple(indices), restricted


def test_the_user_has_exactly_the_role_setup_creates(as_detector: Elastic, user) -> None:
    me = as_detector.authenticate()
    assert (me["username"], me["roles"]) == (user[0], [provision.ROLE_NAME])
    granted = as_detector.call(lambda es: es.security.get_user_privileges()).body
    expected = provision.role_descriptor(Settings(_env_file=None))
    assert _normalized(granted) == _normalized(expected)
    assert granted["global"] == [] and granted["run_as"] == []


def test_once_installs_reads_and_writes_with_the_role_alone(
    es_node: EsNode,
    user,
    es_settings: Settings,
    elastic: Elastic,
    events: str,
    token: str,
    tmp_path: Path,
) -> None:
    assert elastic.matching_indices(f"detector-*-{token}") == []
    rules = token_rules(tmp_path, token)

    done = detector(es_node, user, es_settings, tmp_path, "once", "--at", AT, "--json", **rules)

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert (report["status"], report["alerts_written"]) == ("succeeded", len(NEW)), report
    assert _templates(elastic, token) == {
        f"{es_settings.alerts_index}-template",
        f"{es_settings.execution_log_index}-template",
    }
    alerts = _sources(elastic, es_settings.alerts_index)
    assert sorted(alert["source"]["address"] for alert in alerts) == NEW
    logged = _sources(elastic, es_settings.execution_log_index, "execution")
    assert [doc["execution"]["status"] for doc in logged] == ["succeeded"]

    again = detector(es_node, user, es_settings, tmp_path, "once", "--at", AT, "--json", **rules)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["alerts_written"] == 0  # read its alerts


def test_scheduled_once_then_health_with_the_role_alone(
    es_node: EsNode, user, es_settings: Settings, elastic: Elastic, events: str, tmp_path: Path
) -> None:
    rules = token_rules(tmp_path, events.removeprefix("logs-aws.cloudtrail-"))
    never = detector(es_node, user, es_settings, tmp_path, "health", **rules)
    assert never.returncode == 1 and never.stdout.endswith("never ran\n"), never.stdout

    scheduled = detector(es_node, user, es_settings, tmp_path, "once", **rules)  # checkpoint too
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    assert len(_sources(elastic, es_settings.execution_log_index, "checkpoint")) == 1

    healthy = detector(es_node, user, es_settings, tmp_path, "health", **rules)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.startswith("healthy: 1 rule(s)")


def test_setup_and_check_with_the_role_alone(
    es_node: EsNode, user, es_settings: Settings, elastic: Elastic, token: str, tmp_path: Path
) -> None:
    done = detector(es_node, user, es_settings, tmp_path, "setup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Kibana: skipped" in done.stderr
    assert elastic.matching_indices(f"*{token}*") == sorted(
        [es_settings.alerts_index, es_settings.execution_log_index]
    )
    assert len(_templates(elastic, token)) == 2
    assert detector(es_node, user, es_settings, tmp_path, "setup").returncode == 0  # idempotent

    check = detector(es_node, user, es_settings, tmp_path, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "logs-aws.cloudtrail*:" in check.stdout


def test_writing_any_other_index_is_refused(as_detector: Elastic, token: str) -> None:
    other = f"other-{token}"
    with pytest.raises(AuthorizationError, match=r"\(403\)"):
        as_detector.index_document(other, "1", {"a": 1})
    with pytest.raises(AuthorizationError, match=r"\(403\)"):
        as_detector.create_index(other)
    with pytest.raises(BulkError) as rejected:
        as_detector.bulk_create(other, {"1": {"a": 1}})
    assert [item["status"] for item in rejected.value.items] == [403]
    with pytest.raises(AuthorizationError, match=r"\(403\)"):  # a rule index is read-only
        as_detector.index_document(cloudtrail(token), "1", {"a": 1})


def test_reading_outside_the_rule_indices_is_refused(
    as_detector: Elastic, elastic: Elastic, token: str
) -> None:
    outside = f"logs-other-{token}"
    ct.create_index(elastic, outside)
    ct.index_documents(elastic, outside, [event(NEW[0], T0)])

    with pytest.raises(AuthorizationError, match=r"\(403\)"):
        as_detector.get_document(outside, "doc-0")
    with pytest.raises(AuthorizationError, match=r"\(403\)"):
        as_detector.get_mapping(outside)
    with pytest.raises(AuthorizationError, match=r"\(403\)"):
        as_detector.call(lambda es: es.search(index=outside))
    # The detector's searches ignore unavailable indices: an unreadable one is silently empty.
    assert as_detector.search([outside], {"query": {"match_all": {}}})["hits"]["hits"] == []
