"""Alerts in `logs-newterms_detector.alert-*` are what Kibana's "External Alerts" rule promotes.

On the real node: the detector (a real `detector once` process) writes alerts of new CloudTrail
sources; a search with the promotion rule's own index patterns and its KQL query, compiled by
`detector.kql` (tests/support/external_alerts_rule.toml), finds exactly those alerts and none
of the CloudTrail events, which the same patterns do read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector import kql
from detector.alerts.store import AlertStore
from detector.es.client import Elastic
from detector.rules import builtin_rules
from tests.integration.test_engine_runs import rule_file
from tests.support import cloudtrail as ct
from tests.support import external_alerts
from tests.support.commands import Run, detector_command, node_variables
from tests.support.es_node import EsNode

BUILTIN = next(rule for rule in builtin_rules() if rule.rule_id.startswith("59bf26c2"))
SOURCES = ("203.0.113.7", "198.51.100.23", "192.0.2.44")
PROMOTION = external_alerts.rule()


def alerts_index(token: str) -> str:
    # `logs-<dataset>-<namespace>` as documented (`-default`), this test's token as namespace.
    return f"logs-newterms_detector.alert-{token}"


def promotion_search(elastic: Elastic, token: str) -> list[dict[str, Any]]:
    """Kibana's search of the promotion rule: its index patterns, its query, its time field
    (`timestamp_override`) over its look-back; only this test's indices are kept."""
    window = {"gte": PROMOTION["from"], "lte": "now"}
    body = {
        "size": 1000,
        "query": {
            "bool": {
                "filter": [
                    kql.to_dsl(PROMOTION["query"]),
                    {"range": {PROMOTION["timestamp_override"]: window}},
                ]
            }
        },
    }
    hits = elastic.search(PROMOTION["index"], body)["hits"]["hits"]
    return [hit for hit in hits if token in hit["_index"]]


def everything_in_scope(elastic: Elastic, token: str) -> set[str]:
    """The indices of this test that the rule's index patterns read at all."""
    body = {"size": 0, "aggs": {"indices": {"terms": {"field": "_index", "size": 100}}}}
    buckets = elastic.search(PROMOTION["index"], body)["aggregations"]["indices"]["buckets"]
    return {bucket["key"] for bucket in buckets if token in bucket["key"]}


def write_events(elastic: Elastic, index: str, at: datetime) -> None:
    docs = [ct.anonymous_s3_event(source, at=at) for source in SOURCES]
    ct.create_index(elastic, index)
    ct.index_documents(elastic, index, docs)


def once(tmp_path: Any, node: EsNode, token: str, index: str, at: datetime) -> Run:
    rules = rule_file(tmp_path, [index])
    variables = node_variables(
        node,
        DETECTOR_ALERTS_INDEX=alerts_index(token),
        DETECTOR_EXECUTION_LOG_INDEX=f"detector-executions-{token}",
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
    )
    return detector_command(tmp_path, ["once", "--at", ct.iso(at), "--json"], **variables)


def test_the_promotion_rule_finds_the_alerts_and_not_their_events(
    elastic, es_node, token, tmp_path
):
    now = datetime.now(UTC).replace(microsecond=0)
    events = f"logs-aws.cloudtrail-{token}"
    write_events(elastic, events, now - timedelta(minutes=2))

    run = once(tmp_path, es_node, token, events, now)

    assert run.returncode == 0, run.stdout + run.stderr
    elastic.refresh(alerts_index(token))
    assert everything_in_scope(elastic, token) == {events, alerts_index(token)}
    found = promotion_search(elastic, token)
    assert {hit["_index"] for hit in found} == {alerts_index(token)}
    assert sorted(hit["_source"]["kibana"]["alert"]["new_terms"][0] for hit in found) == sorted(
        SOURCES
    )


def test_kibana_takes_name_severity_and_risk_score_of_the_rule(elastic, es_node, token, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    events = f"logs-aws.cloudtrail-{token}"
    write_events(elastic, events, now - timedelta(minutes=2))
    assert once(tmp_path, es_node, token, events, now).returncode == 0

    elastic.refresh(alerts_index(token))
    found = promotion_search(elastic, token)

    assert len(found) == len(SOURCES)
    for hit in found:
        source = hit["_source"]
        assert external_alerts.promoted_name(source) == BUILTIN.name
        assert external_alerts.promoted_severity(source) == BUILTIN.severity
        assert external_alerts.promoted_risk_score(source) == BUILTIN.risk_score
        # The source event stays findable: in the alert, and through its ancestors.
        assert source["kibana"]["alert"]["original_event"]["action"] == "GetObject"
        assert source["kibana"]["alert"]["ancestors"][0]["index"] == events


def mapped_type(mappings: dict[str, Any], field: str) -> str:
    node: dict[str, Any] = {"properties": mappings["properties"]}
    for part in field.split("."):
        node = node["properties"][part]
    return str(node["type"])


def test_the_promoted_fields_have_their_ecs_types(elastic, token):
    index = alerts_index(token)
    AlertStore(elastic, index).ensure_index()
    mappings = elastic.get_mapping(index)[index]["mappings"]
    expected = {
        "event.kind": "keyword",
        "event.module": "keyword",
        "event.dataset": "keyword",
        "event.severity": "long",
        "event.risk_score": "float",
        "event.ingested": "date",
        # ECS says match_only_text, from a module the test node lacks; `text` searches the same.
        "message": "text",
        "rule.name": "keyword",
        "rule.id": "keyword",
        "rule.ruleset": "keyword",
    }
    assert {field: mapped_type(mappings, field) for field in expected} == expected


@pytest.fixture
def elastic_logs_template(elastic: Elastic, token: str) -> Iterator[str]:
    """A stand-in for Elastic's built-in `logs` template (`logs-*-*`, priority 100, data
    stream), which every real cluster has and the test node lacks."""
    name = f"logs-builtin-standin-{token}"
    body = {"index_patterns": ["logs-*-*"], "priority": 100, "data_stream": {}}
    elastic.put_index_template(name, body)
    try:
        yield name
    finally:
        elastic.call(lambda es: es.indices.delete_index_template(name=name))


def simulate(elastic: Elastic, index: str) -> dict[str, Any]:
    """What creating `index` now would apply (`_index_template/_simulate_index`)."""
    body: dict[str, Any] = elastic.call(
        lambda es: es.indices.simulate_index_template(name=index)
    ).body
    return body


def tier(template: dict[str, Any]) -> str:
    # Elasticsearch prefers data_hot for a data stream's backing indices, data_content otherwise.
    return str(
        template["settings"]["index"]["routing"]["allocation"]["include"]["_tier_preference"]
    )


def test_the_detectors_template_wins_over_elastics_logs_template(
    elastic, token, elastic_logs_template
):
    index = alerts_index(token)
    AlertStore(elastic, index).ensure_index()

    simulated = simulate(elastic, index)
    # `overlapping`: the templates whose patterns overlap those of the one applied.
    assert {item["name"] for item in simulated["overlapping"]} == {elastic_logs_template}
    assert "detector" in simulated["template"]["mappings"]["properties"]
    assert tier(simulated["template"]) == "data_content"  # a plain index's, not a data stream's
    resolved = elastic.resolve_index(index)
    assert [item["name"] for item in resolved["indices"]] == [index]
    assert resolved.get("data_streams", []) == []
    assert mapped_type(elastic.get_mapping(index)[index]["mappings"], "event.severity") == "long"


@pytest.mark.parametrize(
    "other",
    ["logs-newterms_detector.alert-other", "logs-aws.cloudtrail-{token}", "{index}x"],
)
def test_the_detectors_template_shadows_no_other_logs_index(
    elastic, token, elastic_logs_template, other
):
    index = alerts_index(token)
    AlertStore(elastic, index).ensure_index()

    simulated = simulate(elastic, other.format(token=token, index=index))["template"]

    assert "detector" not in simulated.get("mappings", {}).get("properties", {})
    assert tier(simulated) == "data_hot"  # a data stream's, from the stand-in


def test_setup_and_check_follow_the_alerts_index_setting(es_node, token, tmp_path):
    rules = rule_file(tmp_path, ["logs-*"])
    variables = node_variables(
        es_node,
        DETECTOR_ALERTS_INDEX=alerts_index(token),
        DETECTOR_EXECUTION_LOG_INDEX=f"detector-executions-{token}",
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
    )

    setup = detector_command(tmp_path, ["setup"], **variables)
    check = detector_command(tmp_path, ["check"], **variables)

    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert alerts_index(token) in setup.stdout
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"alerts index {alerts_index(token)}: an index" in check.stdout
    assert "Kibana's External Alerts rule reads it (logs-*)" in check.stdout
    assert f"warning: rule {BUILTIN.rule_id} reads the alerts index" in check.stdout
    assert "Traceback" not in setup.stderr + check.stderr


def test_check_says_how_to_reach_the_security_alerts_page(es_node, es_settings, tmp_path):
    rules = rule_file(tmp_path, ["logs-aws.cloudtrail*"])
    variables = node_variables(
        es_node,
        DETECTOR_ALERTS_INDEX=es_settings.alerts_index,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
    )

    check = detector_command(tmp_path, ["check"], **variables)

    assert check.returncode == 0, check.stdout + check.stderr
    assert f"alerts index {es_settings.alerts_index}: not created yet" in check.stdout
    assert "DETECTOR_ALERTS_INDEX=logs-newterms_detector.alert-default" in check.stdout
    assert "reads the alerts index" not in check.stdout
