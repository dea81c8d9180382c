"""`detector import cloudtrail` on a real node: real log files, re-imports, then a backfill whose
alerts equal the brute-force oracle's."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.cloudtrail import template
from detector.cloudtrail.importer import import_files, prepare_index, template_name
from detector.deployment import demo, scenario
from detector.errors import ImportRefusedError
from detector.es.client import Elastic
from detector.schedule.catchup import backfill_times
from tests.integration.test_backfill import detector
from tests.integration.test_engine import EVERY, T0, alerted, spec_for, token_rule
from tests.support.bruteforce import Doc, Expected, Simulation
from tests.support.es_node import EsNode
from tests.support.raw_cloudtrail import (
    CLOUDTRAIL_DATA,
    INVICTUS_DIR,
    LEFT_OUT,
    MINIMAL,
    anonymous_record,
    flat,
    pipeline_pairs,
)
from tests.support.runs import MakeRunner

INVICTUS_RECORDS = 2900


def _namespace(token: str) -> str:
    return f"imported-{token}"


def _count(elastic: Elastic, index: str) -> int:
    body = {"size": 0, "track_total_hits": True, "query": {"match_all": {}}}
    total: int = elastic.search([index], body)["hits"]["total"]["value"]
    return total


def _sources(elastic: Elastic, index: str) -> list[Doc]:
    body = {"size": 10000, "query": {"match_all": {}}}
    hits = elastic.search([index], body)["hits"]["hits"]
    return [Doc(hit["_index"], hit["_source"]) for hit in hits]


@pytest.mark.reference_data
def test_the_55_invictus_files_import_once_and_raise_no_alert(
    elastic: Elastic, es_node: EsNode, token: str, make_runner: MakeRunner
) -> None:
    report = import_files(elastic, [INVICTUS_DIR], _namespace(token))

    assert (report.files, report.records, len(report.bad)) == (55, INVICTUS_RECORDS, 0)
    assert (report.created, report.existing) == (INVICTUS_RECORDS, 0)
    assert report.index_created
    assert _count(elastic, report.index) == INVICTUS_RECORDS
    assert report.first is not None and report.last is not None

    again = detector(
        es_node, {}, "import", "cloudtrail", str(INVICTUS_DIR), "--namespace", _namespace(token)
    )
    assert again.returncode == 0, again.stderr
    assert (
        f"imported 55 file(s) into {report.index} (existing): 2900 record(s), 0 created, "
        "2900 already there, 0 bad" in again.stdout
    )
    assert "import [##############################] 55/55 2900 record(s)" in again.stderr
    assert "detector backfill --start 2023-07-10T11:40:00Z --end 2023-07-10T12:40:00Z" in (
        again.stdout
    )
    assert _count(elastic, report.index) == INVICTUS_RECORDS

    runner = make_runner("invictus")
    results = runner.backfill([token_rule(token)], report.first, report.last + EVERY)
    assert results and all(result.succeeded for result in results)
    assert sum(result.alerts_written for result in results) == 0


def _anonymous_story() -> list[dict[str, Any]]:
    """Anonymous S3 access, raw: new sources (IPv4, IPv6, a service hostname), both identity
    types the rule accepts, old-style principals, failures, sources seen in the history."""
    minute = timedelta(minutes=1)
    return [
        anonymous_record("198.51.100.7", T0 + 10 * minute),
        anonymous_record("198.51.100.7", T0 + 12 * minute, action="ListObjects"),
        anonymous_record("2001:db8::42", T0 + 20 * minute, action="ListObjects"),
        anonymous_record("2001:DB8:0:0::42", T0 + 21 * minute),  # another spelling, another term
        anonymous_record("s3.amazonaws.com", T0 + 25 * minute, action="PutObject"),
        anonymous_record("AWS Internal", T0 + 26 * minute, action="DeleteObject"),
        anonymous_record("192.0.2.30", T0 + 27 * minute, identity_type="Unknown"),
        anonymous_record("192.0.2.31", T0 + 28 * minute, account_id="ANONYMOUS_PRINCIPAL"),
        anonymous_record("192.0.2.32", T0 + 29 * minute, error_code="AccessDenied"),
        anonymous_record("192.0.2.33", T0 + 30 * minute, action="HeadObject"),
        anonymous_record("203.0.113.5", T0 - timedelta(days=2)),
        anonymous_record("203.0.113.5", T0 + 35 * minute),  # seen two days before: not new
        anonymous_record("203.0.113.6", T0 - timedelta(days=8)),
        anonymous_record("203.0.113.6", T0 + 40 * minute),  # last seen 8 days before: new
        anonymous_record("2001:db8:ffff::9", T0 + 58 * minute, action="GetObject"),
    ]


def test_anonymous_s3_records_alert_exactly_as_the_oracle_says(
    elastic: Elastic, token: str, make_runner: MakeRunner, tmp_path: Path
) -> None:
    story = _anonymous_story()
    half = len(story) // 2
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "part1.json").write_text(json.dumps({"Records": story[:half]}))
    (tmp_path / "part2.ndjson").write_text("\n".join(json.dumps(r) for r in story[half:]) + "\n")
    report = import_files(elastic, [tmp_path], _namespace(token), batch_size=4)
    assert (report.records, report.created, len(report.bad)) == (len(story), len(story), 0)

    rule = token_rule(token)
    start, end = T0, T0 + timedelta(hours=1)
    results = make_runner("anonymous").backfill([rule], start, end)

    simulation = Simulation(_sources(elastic, report.index), spec_for(rule))
    expected = [simulation.run(now) for now in backfill_times(start, end, EVERY)]
    assert [alerted(result) for result in results] == expected
    alerted_terms = {item.values[0] for run in expected for item in run}
    assert alerted_terms == {
        "198.51.100.7",
        "2001:db8::42",
        "2001:DB8:0:0::42",
        "s3.amazonaws.com",
        "AWS Internal",
        "192.0.2.30",
        "203.0.113.6",
        "2001:db8:ffff::9",
    }
    assert all(isinstance(item, Expected) for run in expected for item in run)


def test_a_bad_record_is_reported_and_the_rest_imported(
    elastic: Elastic, es_node: EsNode, token: str, tmp_path: Path
) -> None:
    good = anonymous_record("198.51.100.9", T0)
    no_id = {**anonymous_record("198.51.100.10", T0), "eventID": ""}
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join([json.dumps(good), "{broken", json.dumps(no_id)]) + "\n")

    run = detector(es_node, {}, "import", "cloudtrail", str(path), "--namespace", _namespace(token))

    assert run.returncode == 1, run.stderr
    assert "3 record(s), 1 created, 0 already there, 2 bad" in run.stdout
    assert f"{path}:2: not JSON" in run.stdout
    assert f"{path}:3: no eventID" in run.stdout
    assert "Traceback" not in run.stderr


def test_an_existing_index_of_someone_else_only_gets_documents_added(
    elastic: Elastic, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-{_namespace(token)}"
    # Someone else's mapping: an account id that must be a number.
    mappings = {"properties": {"note": {"type": "keyword"}, "cloud.account.id": {"type": "long"}}}
    elastic.create_index(index, {"mappings": mappings})
    elastic.index_document(index, "theirs", {"note": "not the detector's"})
    records = [
        anonymous_record("198.51.100.9", T0, account_id="210987654321"),
        anonymous_record("198.51.100.10", T0),  # "anonymous" is no long: refused
    ]
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))

    report = import_files(elastic, [tmp_path], _namespace(token))

    assert (report.index_created, report.index_ours, report.created) == (False, False, 1)
    assert [str(bad.where) for bad in report.bad] == [f"{path}:2"]
    assert report.bad[0].reason.startswith("rejected by Elasticsearch: document_parsing_exception")
    assert elastic.get_document(index, "theirs") == {"note": "not the detector's"}
    assert elastic.client.indices.exists_index_template(name=template_name(index)).body is False


def test_an_alias_is_refused(elastic: Elastic, token: str) -> None:
    # (A data stream is refused the same way; the test node has no data streams module.)
    index = f"logs-aws.cloudtrail-{_namespace(token)}"
    elastic.create_index(f"real-{token}", {"aliases": {index: {}}})
    with pytest.raises(ImportRefusedError, match="alias"):
        prepare_index(elastic, index)


@pytest.mark.reference_data
def test_indexed_documents_equal_the_real_pipeline_outputs(elastic: Elastic, token: str) -> None:
    raw_files = sorted((CLOUDTRAIL_DATA / "raw").glob("*.event-original.ndjson"))
    report = import_files(elastic, raw_files, _namespace(token))
    # console-login repeats an eventID, and both copy-object tests have the same record.
    assert (report.records, report.created, report.existing, len(report.bad)) == (11, 9, 2, 0)

    indexed = {
        doc.source["event"]["id"]: flat(dict(doc.source)) for doc in _sources(elastic, report.index)
    }
    compared = 0
    for name, _line, expected in pipeline_pairs():
        if MINIMAL in name:  # the same record as copy-object, with `retain: minimal`
            continue
        theirs = {k: v for k, v in flat(expected).items() if not k.startswith(LEFT_OUT)}
        ours = indexed[expected["event"]["id"]]
        if ours["event.original"] != expected["event"]["original"]:
            continue  # a second record with the same eventID: the first one was kept
        assert {key: ours.get(key) for key in theirs} == theirs, name
        compared += 1
    assert compared == 9


def _template(elastic: Elastic, name: str) -> dict[str, Any]:
    body = elastic.client.indices.get_index_template(name=name).body
    template: dict[str, Any] = body["index_templates"][0]["index_template"]
    return template


def test_the_import_and_the_demo_create_their_index_from_one_template_above_fleets(
    elastic: Elastic, token: str
) -> None:
    # Fleet's `logs-aws.cloudtrail` template (priority 200) would make these names a data
    # stream with its own mapping; a stand-in for it (this node has no data streams module).
    fleet = f"fleet-aws-cloudtrail-{token}"
    elastic.put_index_template(
        fleet,
        {
            "index_patterns": [f"logs-aws.cloudtrail-*{token}"],
            "priority": 200,
            "template": {"mappings": {"properties": {"fleet_only": {"type": "keyword"}}}},
        },
    )
    imported = f"logs-aws.cloudtrail-{_namespace(token)}"
    shown = f"logs-aws.cloudtrail-detectordemo-{token}"

    assert prepare_index(elastic, imported) == (True, True)
    demo.load(elastic, [], demo.Progress(io.StringIO()), shown)

    ours = _template(elastic, template_name(imported))
    theirs = _template(elastic, scenario.template_name(shown))
    assert ours["priority"] == theirs["priority"] == template.PRIORITY > 200
    assert ours["template"]["mappings"]["_meta"]["purpose"] == "detector import cloudtrail"
    assert theirs["template"]["mappings"]["_meta"] == {"managed_by": scenario.DEMO_MARKER}
    for body in (ours, theirs):
        del body["_meta"], body["template"]["mappings"]["_meta"], body["index_patterns"]
        body.pop("created_date_millis", None)  # 9.x says when each was put
        body.pop("modified_date_millis", None)
    assert ours == theirs  # one template, told apart by its `_meta` only
    for index in (imported, shown):
        mapping = elastic.get_mapping(index)[index]["mappings"]
        assert "fleet_only" not in mapping["properties"], index
        assert mapping["properties"]["source"]["properties"]["address"] == {"type": "keyword"}
