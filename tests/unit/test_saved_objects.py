"""The packaged Kibana saved objects: structure, references, versions, and fields that exist."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from detector.deployment import kibana
from detector.settings import Settings

KIBANA_8_19 = {  # typeMigrationVersion at or below what Kibana 8.19 knows for each type
    "index-pattern": "8.0.0",
    "search": "8.0.0",
    "visualization": "8.5.0",
    "dashboard": "8.9.0",
}


def _mapping_fields(resource: str) -> set[str]:
    body = json.loads(resources.files("detector").joinpath(resource).read_text("utf-8"))
    fields: set[str] = set()

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], f"{path}.")
            else:
                fields.add(path)
                fields.update(f"{path}.{sub}" for sub in spec.get("fields", {}))

    walk(body["mappings"]["properties"], "")
    return fields


ALERT_FIELDS = _mapping_fields("mappings/alerts-template.json")
EXECUTION_FIELDS = _mapping_fields("mappings/executions-template.json")


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return list(kibana.packaged_objects())


def test_each_line_is_a_saved_object_with_a_fixed_id(objects: list[dict[str, Any]]) -> None:
    assert len({item["id"] for item in objects}) == len(objects)
    for item in objects:
        assert {"type", "id", "attributes", "references"} <= set(item)
        assert item["id"].startswith("newterms-detector-")
        assert item["coreMigrationVersion"] == "8.8.0"
        assert item["typeMigrationVersion"] == KIBANA_8_19[item["type"]]
    assert {item["type"] for item in objects} == set(KIBANA_8_19)


def test_references_resolve_within_the_file(objects: list[dict[str, Any]]) -> None:
    known = {(item["type"], item["id"]) for item in objects}
    for item in objects:
        for reference in item["references"]:
            assert (reference["type"], reference["id"]) in known, (item["id"], reference)


def test_json_strings_are_valid_json(objects: list[dict[str, Any]]) -> None:
    for item in objects:
        attributes = item["attributes"]
        source = attributes.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if item["type"] != "index-pattern":
            parsed = json.loads(source)
            assert parsed["query"]["language"] == "kuery"
            if "indexRefName" in parsed:
                names = {ref["name"] for ref in item["references"]}
                assert parsed["indexRefName"] in names
        for key in ("panelsJSON", "optionsJSON", "visState", "uiStateJSON", "fieldAttrs"):
            if key in attributes:
                json.loads(attributes[key])


def test_dashboard_panels_match_their_references(objects: list[dict[str, Any]]) -> None:
    dashboard = next(item for item in objects if item["type"] == "dashboard")
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {ref["name"]: ref for ref in dashboard["references"]}
    assert len(panels) == 5
    for panel in panels:
        reference = names[f"{panel['panelIndex']}:{panel['panelRefName']}"]
        assert reference["type"] == panel["type"]


def test_data_views_use_timestamp_and_follow_the_settings() -> None:
    settings = Settings(_env_file=None, alerts_index="soc-alerts", execution_log_index="soc-runs")
    views = {item["id"]: item for item in kibana.objects_for(settings)}
    assert views[kibana.ALERTS_DATA_VIEW]["attributes"]["title"] == "soc-alerts"
    assert views[kibana.EXECUTIONS_DATA_VIEW]["attributes"]["title"] == "soc-runs"
    for view_id in (kibana.ALERTS_DATA_VIEW, kibana.EXECUTIONS_DATA_VIEW):
        assert views[view_id]["attributes"]["timeFieldName"] == "@timestamp"
    assert "@timestamp" in EXECUTION_FIELDS


def _referenced_fields(item: dict[str, Any]) -> set[str]:
    attributes = item["attributes"]
    fields = set(attributes.get("columns", []))
    fields.update(field for field, _order in attributes.get("sort", []))
    if "visState" in attributes:
        for agg in json.loads(attributes["visState"])["aggs"]:
            if "field" in agg["params"]:
                fields.add(agg["params"]["field"])
    source = attributes.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}")
    query = json.loads(source).get("query", {}).get("query", "")
    fields.update(re.findall(r"([\w.@]+)\s*:", query))
    if "timeFieldName" in attributes:
        fields.add(attributes["timeFieldName"])
    return fields


def test_every_field_referenced_exists_in_the_mappings(objects: list[dict[str, Any]]) -> None:
    for item in objects:
        index = {ref["id"] for ref in item["references"] if ref["type"] == "index-pattern"}
        known = EXECUTION_FIELDS if index == {kibana.EXECUTIONS_DATA_VIEW} else ALERT_FIELDS
        if item["id"] == kibana.EXECUTIONS_DATA_VIEW:
            known = EXECUTION_FIELDS
        missing = _referenced_fields(item) - known
        assert not missing, (item["id"], missing)


def test_saved_search_shows_the_rules_investigation_fields_and_the_reason(
    objects: list[dict[str, Any]],
) -> None:
    search = next(item for item in objects if item["type"] == "search")
    columns = search["attributes"]["columns"]
    assert {"source.address", "kibana.alert.reason", "user_agent.original"} <= set(columns)
    assert {"detector.s3.bucket", "detector.s3.object_key", "detector.actions"} <= set(columns)
