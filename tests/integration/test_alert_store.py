"""The alerts index against a real Elasticsearch node (fixtures in tests/conftest.py and
tests/integration/conftest.py)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.alerts.document import alert_id, build_alert
from detector.alerts.store import AlertStore, template_name
from detector.errors import BulkError
from detector.es.client import Elastic
from detector.execution_log.store import ExecutionStore
from detector.results import ExecutionContext, NewTerm
from detector.rules import Rule, Threat, ThreatEntry
from tests.support.cloudtrail import anonymous_s3_event, ecs_documents
from tests.support.rules import make_rule

AT = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
HISTORY = timedelta(days=7)
RULE = make_rule(
    rule_id="store-test-rule",
    name="AWS S3 Unauthenticated Bucket Access by Rare Source",
    threat=(Threat("MITRE ATT&CK", ThreatEntry("TA0010", "Exfiltration", "https://x")),),
)
OTHER_RULE = dataclasses.replace(RULE, rule_id="another-rule")


def _ctx(now: datetime = AT) -> ExecutionContext:
    return ExecutionContext("exec-1", now, now, now - timedelta(minutes=6), now, now - HISTORY)


def _term(address: str, first_seen: datetime = AT) -> NewTerm:
    doc = anonymous_s3_event(address, at=first_seen)
    return NewTerm((address,), first_seen, {"_index": "logs", "_id": address, "_source": doc})


def _alerts(rule: Rule, *terms: NewTerm) -> dict[str, dict[str, Any]]:
    return {alert_id(rule, term): build_alert(rule, term, _ctx(term.first_seen)) for term in terms}


def _properties(elastic: Elastic, index: str) -> dict[str, Any]:
    body = elastic.call(lambda es: es.indices.get_mapping(index=index)).body
    properties: dict[str, Any] = body[index]["mappings"]["properties"]
    return properties


def _patterns(elastic: Elastic, template: str) -> Any:
    body = elastic.call(lambda es: es.indices.get_index_template(name=template)).body
    return body["index_templates"][0]["index_template"]["index_patterns"]


def _field_type(properties: dict[str, Any], path: str) -> Any:
    node: Any = {"properties": properties}
    for part in path.split("."):
        node = node["properties"][part]
    return node.get("type", "object")


# --- ensure_index -----------------------------------------------------------------------


def test_ensure_index_creates_the_template_and_a_visible_index(
    store: AlertStore, elastic: Elastic
) -> None:
    assert _patterns(elastic, template_name(store.index)) == [store.index, f"{store.index}-*"]
    assert elastic.matching_indices(store.index) == [store.index]
    settings = elastic.call(lambda es: es.indices.get_settings(index=store.index)).body
    assert settings[store.index]["settings"]["index"].get("hidden") in (None, "false")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("@timestamp", "date"),
        ("source.address", "keyword"),
        ("source.ip", "ip"),
        ("event.kind", "keyword"),
        ("kibana.space_ids", "keyword"),
        ("kibana.alert.uuid", "keyword"),
        ("kibana.alert.new_terms", "keyword"),
        ("kibana.alert.reason", "text"),
        ("kibana.alert.risk_score", "float"),
        ("kibana.alert.depth", "long"),
        ("kibana.alert.original_time", "date"),
        ("kibana.alert.intended_timestamp", "date"),
        ("kibana.alert.workflow_status", "keyword"),
        ("kibana.alert.rule.threat", "object"),
        ("kibana.alert.rule.threat.tactic.id", "keyword"),
        ("kibana.alert.rule.rule_id", "keyword"),
        ("kibana.alert.rule.execution.timestamp", "date"),
        ("kibana.alert.rule.parameters", "flattened"),
        ("detector.term_key", "keyword"),
        ("detector.first_seen", "date"),
        ("detector.window.start", "date"),
        ("detector.window.end", "date"),
        ("detector.history_start", "date"),
        ("detector.event_count", "long"),
        ("detector.s3.bucket", "keyword"),
    ],
)
def test_explicit_mappings(store: AlertStore, elastic: Elastic, path: str, expected: str) -> None:
    assert _field_type(_properties(elastic, store.index), path) == expected


def test_reason_has_a_keyword_subfield(store: AlertStore, elastic: Elastic) -> None:
    reason = _properties(elastic, store.index)["kibana"]["properties"]["alert"]["properties"]
    assert reason["reason"]["fields"]["keyword"]["type"] == "keyword"


@pytest.mark.parametrize("kind", [AlertStore, ExecutionStore])
def test_ensure_index_twice_is_fine(
    elastic: Elastic, es_settings: Any, kind: type[AlertStore | ExecutionStore]
) -> None:
    index = es_settings.alerts_index if kind is AlertStore else es_settings.execution_log_index
    store = kind(elastic, index)
    assert store.ensure_index() is True
    assert store.ensure_index() is False
    assert elastic.matching_indices(index) == [index]


def test_two_threads_racing(elastic: Elastic, es_settings: Any) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            AlertStore(Elastic(es_settings), es_settings.alerts_index).ensure_index()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert elastic.matching_indices(es_settings.alerts_index) == [es_settings.alerts_index]


@pytest.mark.parametrize("wider_first", [True, False])
def test_two_detectors_with_overlapping_index_names(
    elastic: Elastic, es_settings: Any, wider_first: bool
) -> None:
    wider = AlertStore(elastic, es_settings.alerts_index)
    narrower = AlertStore(elastic, f"{es_settings.alerts_index}-prod")
    for store in (wider, narrower) if wider_first else (narrower, wider):
        store.ensure_index()
    for store in (wider, narrower):
        assert _patterns(elastic, template_name(store.index)) == [store.index, f"{store.index}-*"]
        assert elastic.matching_indices(store.index) == [store.index]


# --- write ------------------------------------------------------------------------------


def test_write_creates_once_and_reports_existing(store: AlertStore, elastic: Elastic) -> None:
    alerts = _alerts(RULE, _term("203.0.113.7"), _term("AWS Internal"))
    first = store.write(alerts)
    assert sorted(first.created) == sorted(alerts)
    second = store.write(alerts)
    assert second.created == []
    assert sorted(second.existing) == sorted(alerts)
    count = elastic.call(lambda es: es.count(index=store.index)).body["count"]
    assert count == 2


def test_written_alert_reads_back_with_its_fields(store: AlertStore, elastic: Elastic) -> None:
    alerts = _alerts(RULE, _term("AWS Internal"))
    store.write(alerts)
    body = {"query": {"term": {"source.address": "AWS Internal"}}}
    hits = elastic.search([store.index], body)["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == list(alerts)
    assert hits[0]["_source"]["kibana"]["alert"]["uuid"] == hits[0]["_id"]
    reason = {"query": {"match": {"kibana.alert.reason": "anonymous getobject"}}}
    assert elastic.search([store.index], reason)["hits"]["total"]["value"] == 1


def test_new_terms_of_every_json_type_are_accepted(store: AlertStore) -> None:
    rule = dataclasses.replace(RULE, new_terms_fields=("a", "b", "c"))
    term = dataclasses.replace(_term("198.51.100.9"), values=("x", 7, True))
    result = store.write({alert_id(rule, term): build_alert(rule, term, _ctx())})
    assert len(result.created) == 1


def test_a_rejected_document_raises_naming_it_while_the_others_are_written(
    store: AlertStore, elastic: Elastic
) -> None:
    good = _alerts(RULE, _term("203.0.113.7"), _term("203.0.113.8"))
    bad = dict(build_alert(RULE, _term("203.0.113.9"), _ctx()))
    bad["detector"] = "not an object"  # conflicts with the object mapping
    with pytest.raises(BulkError) as raised:
        store.write({**good, "bad-id": bad})
    assert [item["_id"] for item in raised.value.items] == ["bad-id"]
    assert "bad-id" in str(raised.value)
    count = elastic.call(lambda es: es.count(index=store.index)).body["count"]
    assert count == 2


def test_write_nothing(store: AlertStore) -> None:
    assert store.write({}).created == []


# --- already_alerted --------------------------------------------------------------------


def test_already_alerted_finds_same_episode_alerts_only(store: AlertStore) -> None:
    store.write(_alerts(RULE, _term("203.0.113.7"), _term("203.0.113.8", AT - HISTORY)))
    store.write(_alerts(OTHER_RULE, _term("198.51.100.1")))
    later = AT + timedelta(days=2)
    candidates = [
        _term("203.0.113.7", later),  # same rule and term, 2 days later: same episode
        _term("203.0.113.8", AT),  # exactly `history` apart: still the same episode
        _term("198.51.100.1", later),  # alerted only by another rule
        _term("192.0.2.1", later),  # never alerted
    ]
    found = store.already_alerted(RULE, candidates, HISTORY)
    assert found == {("203.0.113.7",), ("203.0.113.8",)}


def test_already_alerted_ignores_alerts_further_than_the_history_apart(store: AlertStore) -> None:
    store.write(_alerts(RULE, _term("203.0.113.7")))
    beyond = AT + HISTORY + timedelta(milliseconds=1)
    before = AT - HISTORY - timedelta(milliseconds=1)
    candidates = [_term("203.0.113.7", beyond), _term("203.0.113.7", before)]
    assert store.already_alerted(RULE, candidates, HISTORY) == set()
    assert store.already_alerted(RULE, [_term("203.0.113.7", AT)], HISTORY) == {("203.0.113.7",)}


def test_already_alerted_is_one_search(store: AlertStore, elastic: Elastic) -> None:
    store.write(_alerts(RULE, *(_term(f"203.0.113.{n}") for n in range(20))))
    candidates = [_term(f"203.0.113.{n}", AT + timedelta(hours=1)) for n in range(40)]
    before = elastic.stats.requests
    found = store.already_alerted(RULE, candidates, HISTORY)
    assert elastic.stats.requests - before == 1
    assert found == {(f"203.0.113.{n}",) for n in range(20)}


def test_already_alerted_with_no_terms_or_no_index(elastic: Elastic, es_settings: Any) -> None:
    missing = AlertStore(elastic, es_settings.alerts_index)  # never created
    assert missing.already_alerted(RULE, [_term("203.0.113.7")], HISTORY) == set()
    assert missing.already_alerted(RULE, [], HISTORY) == set()


# --- copied source fields ---------------------------------------------------------------


@pytest.mark.reference_data
def test_alerts_from_every_real_ecs_document_are_accepted(
    store: AlertStore, elastic: Elastic
) -> None:
    # Elastic's own pipeline outputs (several package versions, flattened objects, arrays).
    alerts: dict[str, dict[str, Any]] = {}
    for number, doc in enumerate(ecs_documents()):
        hit = {"_index": "logs", "_id": f"ecs-{number}", "_source": doc}
        term = NewTerm((f"value-{number}",), AT + timedelta(seconds=number), hit)
        alerts[alert_id(RULE, term)] = build_alert(RULE, term, _ctx())
    assert len(store.write(alerts).created) == len(alerts)
    flat = _properties(elastic, store.index)["aws"]["properties"]["cloudtrail"]["properties"]
    assert flat["flattened"]["properties"]["request_parameters"]["type"] == "flattened"


def test_malformed_copied_values_are_ignored_not_rejected(
    store: AlertStore, elastic: Elastic
) -> None:
    # Kibana drops source values that break the alert mapping; `ignore_malformed` keeps them
    # in _source without indexing them.
    doc = anonymous_s3_event("AWS Internal", at=AT)
    doc["source"]["ip"] = "AWS Internal"
    doc["numbers"] = {"n": 1}
    other = anonymous_s3_event("203.0.113.5", at=AT)
    other["numbers"] = {"n": "not a number"}
    terms = [
        NewTerm(("AWS Internal",), AT, {"_index": "l", "_id": "1", "_source": doc}),
        NewTerm(("203.0.113.5",), AT, {"_index": "l", "_id": "2", "_source": other}),
    ]
    assert len(store.write(_alerts(RULE, *terms)).created) == 2
    source = _properties(elastic, store.index)["source"]["properties"]
    assert source["address"]["type"] == "keyword"
