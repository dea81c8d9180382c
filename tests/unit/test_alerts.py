"""The alert document, its `_id` and its reason sentence (notes/kibana_new_terms.md §2)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.alerts.document import alert_id, build_alert, sanitize_source, term_key
from detector.alerts.s3_location import get_field
from detector.results import ExecutionContext, NewTerm
from detector.rules import Rule, Technique, Threat, ThreatEntry, builtin_rules
from tests.support.cloudtrail import anonymous_s3_event, ecs_documents
from tests.support.rules import make_rule

AT = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
ADDRESS = "203.0.113.7"
EXFIL = ThreatEntry("TA0010", "Exfiltration", "https://attack.mitre.org/tactics/TA0010/")
TECHNIQUE = Technique(
    "T1530",
    "Data from Cloud Storage",
    "https://attack.mitre.org/techniques/T1530/",
    (ThreatEntry("T1530.001", "Sub", "https://attack.mitre.org/techniques/T1530/001/"),),
)
RULE = make_rule(
    rule_id="c6b0d5e5-2c0c-4a61-9f1a-7ad1f8c2b2a1",
    name="AWS S3 Unauthenticated Bucket Access by Rare Source",
    description="Anonymous S3 access from a source not seen before.",
    query='event.provider: "s3.amazonaws.com" and cloud.account.id: "anonymous"',
    index=("logs-aws.cloudtrail-*",),
    new_terms_fields=("source.address",),
    history_window_start="now-7d",
    risk_score=47,
    severity="medium",
    from_="now-9m",
    tags=("Domain: Cloud", "Data Source: AWS S3"),
    threat=(Threat("MITRE ATT&CK", EXFIL, (TECHNIQUE,)),),
    timestamp_override="event.ingested",
    note="## Triage",
    references=("https://docs.aws.amazon.com/AmazonS3/latest/userguide/",),
    author=("Elastic",),
    license="Elastic License v2",
    version=3,
)
CTX = ExecutionContext(
    execution_uuid="6f1c7d0e-0000-4000-8000-000000000001",
    started_at=AT + timedelta(minutes=3, seconds=2, milliseconds=345),
    now=AT + timedelta(minutes=3),
    window_start=AT - timedelta(minutes=6),
    window_end=AT + timedelta(minutes=3),
    history_start=AT + timedelta(minutes=3) - timedelta(days=7),
)


def _hit(doc: dict[str, Any], doc_id: str = "doc-0", index: str = "logs-aws") -> dict[str, Any]:
    return {"_index": index, "_id": doc_id, "_source": doc}


def _term(
    doc: dict[str, Any] | None = None, values: tuple[Any, ...] = (ADDRESS,), **kwargs: Any
) -> NewTerm:
    source = doc if doc is not None else anonymous_s3_event(ADDRESS, at=AT)
    return NewTerm(values=values, first_seen=AT, hit=_hit(source), **kwargs)


def _alert(term: NewTerm | None = None, rule: Rule = RULE, ctx: ExecutionContext = CTX) -> Any:
    return build_alert(rule, term or _term(), ctx)


# --- the document ------------------------------------------------------------------------


EXPECTED_FIELDS: dict[str, Any] = {
    "@timestamp": "2025-01-15T12:03:02.345Z",
    # The alert's own ECS fields, which Kibana's "External Alerts" rule promotes by.
    "event.kind": "alert",
    "event.module": "newterms_detector",
    "event.dataset": "newterms_detector.alert",
    "event.severity": 47,
    "event.risk_score": 47,
    "event.ingested": "2025-01-15T12:03:02.345Z",
    "message": RULE.name,
    "rule.name": RULE.name,
    "rule.id": RULE.rule_id,
    "rule.uuid": RULE.rule_id,
    "rule.description": RULE.description,
    "rule.version": "3",
    "rule.author": ["Elastic"],
    "rule.reference": list(RULE.references),
    "rule.license": "Elastic License v2",
    "rule.ruleset": "newterms-detector",
    "kibana.space_ids": ["default"],
    "kibana.alert.original_time": "2025-01-15T12:00:00.000Z",
    "kibana.alert.new_terms": [ADDRESS],
    "kibana.alert.ancestors": [{"id": "doc-0", "index": "logs-aws", "type": "event", "depth": 0}],
    "kibana.alert.depth": 1,
    "kibana.alert.status": "active",
    "kibana.alert.workflow_status": "open",
    "kibana.alert.workflow_tags": [],
    "kibana.alert.severity": "medium",
    "kibana.alert.risk_score": 47,
    "kibana.alert.intended_timestamp": "2025-01-15T12:03:00.000Z",
    "kibana.alert.start": "2025-01-15T12:03:02.345Z",
    "kibana.alert.last_detected": "2025-01-15T12:03:02.345Z",
    "kibana.alert.original_event.action": "GetObject",
    "kibana.alert.original_event.provider": "s3.amazonaws.com",
    "kibana.alert.original_event.outcome": "success",
    "kibana.alert.original_event.kind": "event",
    "kibana.alert.rule.name": RULE.name,
    "kibana.alert.rule.rule_id": RULE.rule_id,
    "kibana.alert.rule.uuid": RULE.rule_id,
    "kibana.alert.rule.description": RULE.description,
    "kibana.alert.rule.severity": "medium",
    "kibana.alert.rule.risk_score": 47,
    "kibana.alert.rule.tags": ["Domain: Cloud", "Data Source: AWS S3"],
    "kibana.alert.rule.from": "now-9m",
    "kibana.alert.rule.to": "now",
    "kibana.alert.rule.interval": "5m",
    "kibana.alert.rule.type": "new_terms",
    "kibana.alert.rule.version": 3,
    "kibana.alert.rule.max_signals": 100,
    "kibana.alert.rule.indices": ["logs-aws.cloudtrail-*"],
    "kibana.alert.rule.note": "## Triage",
    "kibana.alert.rule.references": list(RULE.references),
    "kibana.alert.rule.author": ["Elastic"],
    "kibana.alert.rule.license": "Elastic License v2",
    "kibana.alert.rule.timestamp_override": "event.ingested",
    "kibana.alert.rule.new_terms_fields": ["source.address"],
    "kibana.alert.rule.history_window_start": "now-7d",
    "kibana.alert.rule.category": "New Terms Rule",
    "kibana.alert.rule.rule_type_id": "siem.newTermsRule",
    "kibana.alert.rule.producer": "siem",
    "kibana.alert.rule.consumer": "siem",
    "kibana.alert.rule.execution.uuid": CTX.execution_uuid,
    "kibana.alert.rule.execution.type": "scheduled",
    "kibana.alert.rule.execution.timestamp": "2025-01-15T12:03:02.345Z",
    "kibana.alert.rule.parameters.query": RULE.query,
    "kibana.alert.rule.parameters.new_terms_fields": ["source.address"],
    "kibana.alert.rule.parameters.history_window_start": "now-7d",
    "kibana.alert.rule.parameters.timestamp_override": "event.ingested",
    "detector.first_seen": "2025-01-15T12:00:00.000Z",
    "detector.window.start": "2025-01-15T11:54:00.000Z",
    "detector.window.end": "2025-01-15T12:03:00.000Z",
    "detector.history_start": "2025-01-08T12:03:00.000Z",
    "detector.event_count": 1,
    "detector.actions": ["GetObject"],
    "detector.s3.bucket": "public-assets-example",
    "detector.s3.object_key": "reports/2024/q4.csv",
    # The copied ECS source fields.
    "source.address": ADDRESS,
    "source.ip": ADDRESS,
    "cloud.account.id": "anonymous",
    "aws.cloudtrail.recipient_account_id": "123456789012",
}


@pytest.mark.parametrize(("path", "expected"), EXPECTED_FIELDS.items())
def test_realistic_anonymous_get_object_alert(path: str, expected: Any) -> None:
    assert get_field(_alert(), path) == expected


def test_uuid_term_key_and_reason() -> None:
    alert, term = _alert(), _term()
    assert alert["kibana"]["alert"]["uuid"] == alert_id(RULE, term)
    assert alert["detector"]["term_key"] == term_key(RULE, (ADDRESS,))
    assert alert["kibana"]["alert"]["reason"] == (
        "Anonymous GetObject of s3://public-assets-example/reports/2024/q4.csv from 203.0.113.7, "
        "a source not seen in the previous 7d, created medium alert "
        "AWS S3 Unauthenticated Bucket Access by Rare Source."
    )


def test_threat_keeps_kibanas_mitre_structure() -> None:
    assert _alert()["kibana"]["alert"]["rule"]["threat"] == [
        {
            "framework": "MITRE ATT&CK",
            "tactic": {"id": "TA0010", "name": "Exfiltration", "reference": EXFIL.reference},
            "technique": [
                {
                    "id": "T1530",
                    "name": "Data from Cloud Storage",
                    "reference": TECHNIQUE.reference,
                    "subtechnique": [
                        {
                            "id": "T1530.001",
                            "name": "Sub",
                            "reference": "https://attack.mitre.org/techniques/T1530/001/",
                        }
                    ],
                }
            ],
        }
    ]


def test_manual_execution() -> None:
    ctx = dataclasses.replace(CTX, execution_type="manual", now=AT - timedelta(days=1))
    alert = _alert(ctx=ctx)
    assert alert["kibana"]["alert"]["rule"]["execution"]["type"] == "manual"
    assert alert["kibana"]["alert"]["intended_timestamp"] == "2025-01-14T12:00:00.000Z"
    assert alert["@timestamp"] == "2025-01-15T12:03:02.345Z"  # wall clock stays


def test_event_count_and_actions_come_from_the_term() -> None:
    alert = _alert(_term(event_count=5, actions=("GetObject", "ListObjects")))
    assert alert["detector"]["event_count"] == 5
    assert alert["detector"]["actions"] == ["GetObject", "ListObjects"]
    assert alert["kibana"]["alert"]["reason"].startswith(
        "Anonymous GetObject and ListObjects of s3://public-assets-example/reports/2024/q4.csv "
        "(5 events) from 203.0.113.7,"
    )


def test_the_document_is_json_and_the_source_is_untouched() -> None:
    term = _term()
    before = json.dumps(term.hit, sort_keys=True)
    json.dumps(_alert(term))
    assert json.dumps(term.hit, sort_keys=True) == before


# --- sanitising the source ---------------------------------------------------------------


def test_source_event_fields_are_moved_to_original_event() -> None:
    alert = _alert()
    assert alert["event"]["kind"] == "alert"
    assert "action" not in alert["event"] and "provider" not in alert["event"]
    original = alert["kibana"]["alert"]["original_event"]
    assert original["action"] == "GetObject"
    assert original["category"] == ["file"]
    assert original["dataset"] == "aws.cloudtrail"


def test_kibana_signal_and_dotted_event_keys() -> None:
    source = {
        "@timestamp": "2025-01-15T12:00:00Z",
        "event.action": "GetObject",
        "event": {"outcome": "success"},
        "kibana": {"alert": {"uuid": "old"}},
        "kibana.alert.status": "closed",
        "signal": {"rule": {"id": "x"}},
        "signal.status": "open",
        "threshold_result": {"count": 3},
        "detector": {"term_key": "forged"},
        "keep": {"me": 1},
    }
    cleaned, original_event = sanitize_source(source)
    assert cleaned == {"@timestamp": "2025-01-15T12:00:00Z", "keep": {"me": 1}}
    assert original_event == {"action": "GetObject", "outcome": "success"}
    alert = _alert(_term(source))
    assert alert["kibana"]["alert"]["status"] == "active"
    assert "signal" not in alert and "signal.status" not in alert
    assert alert["detector"]["term_key"] == term_key(RULE, (ADDRESS,))


def test_data_stream_is_moved_to_original_data_stream() -> None:
    alert = _alert()
    assert "data_stream" not in alert
    assert alert["kibana"]["alert"]["original_data_stream"] == {
        "type": "logs",
        "dataset": "aws.cloudtrail",
        "namespace": "default",
    }


def test_original_time_is_the_source_timestamp_even_with_an_override() -> None:
    doc = anonymous_s3_event(ADDRESS, at=AT, ingested=timedelta(minutes=2))
    term = NewTerm((ADDRESS,), AT + timedelta(minutes=2), _hit(doc))
    alert = _alert(term)
    assert alert["kibana"]["alert"]["original_time"] == "2025-01-15T12:00:00.000Z"
    assert alert["detector"]["first_seen"] == "2025-01-15T12:02:00.000Z"


# --- _id ---------------------------------------------------------------------------------


def test_id_is_stable_and_hex() -> None:
    first, second = alert_id(RULE, _term()), alert_id(RULE, _term())
    assert first == second
    assert len(first) == 64
    int(first, 16)


def test_id_does_not_depend_on_the_chosen_document() -> None:
    # elastic/kibana#174148: another document for the same term and first-seen time.
    other_doc = anonymous_s3_event(ADDRESS, at=AT, action="ListObjects", bucket="other")
    other = NewTerm((ADDRESS,), AT, _hit(other_doc, doc_id="doc-9", index="other-index"))
    assert alert_id(RULE, other) == alert_id(RULE, _term())


def test_id_does_not_depend_on_the_execution_count_or_actions() -> None:
    ctx = dataclasses.replace(CTX, execution_uuid="another", started_at=AT + timedelta(hours=1))
    busier = _term(event_count=9, actions=("PutObject",))
    assert _alert(ctx=ctx)["kibana"]["alert"]["uuid"] == _alert()["kibana"]["alert"]["uuid"]
    assert alert_id(RULE, busier) == alert_id(RULE, _term())


def test_id_treats_naive_times_as_utc() -> None:
    naive = NewTerm((ADDRESS,), AT.replace(tzinfo=None), _term().hit)
    assert alert_id(RULE, naive) == alert_id(RULE, _term())


@pytest.mark.parametrize(
    "change",
    [
        lambda rule, term: (dataclasses.replace(rule, rule_id="other"), term),
        lambda rule, term: (
            dataclasses.replace(rule, new_terms_fields=("source.ip",)),
            term,
        ),
        lambda rule, term: (rule, dataclasses.replace(term, values=("198.51.100.1",))),
        lambda rule, term: (
            rule,
            dataclasses.replace(term, first_seen=AT + timedelta(milliseconds=1)),
        ),
    ],
    ids=["rule", "fields", "term", "first_seen"],
)
def test_id_differs_by_rule_fields_term_and_first_seen(change: Any) -> None:
    rule, term = change(RULE, _term())
    assert alert_id(rule, term) != alert_id(RULE, _term())


def test_term_key_keeps_json_types_and_ignores_first_seen() -> None:
    assert term_key(RULE, [1]) != term_key(RULE, ["1"])
    assert term_key(RULE, [True]) != term_key(RULE, ["true"])
    assert term_key(RULE, (ADDRESS,)) == term_key(RULE, [ADDRESS])
    assert term_key(RULE, ["a", "b"]) != term_key(RULE, ["b", "a"])


# --- reason ------------------------------------------------------------------------------


def _reason(term: NewTerm, rule: Rule = RULE, ctx: ExecutionContext = CTX) -> str:
    reason: str = _alert(term, rule, ctx)["kibana"]["alert"]["reason"]
    return reason


def test_reason_for_an_old_anonymous_principal_list_objects() -> None:
    doc = anonymous_s3_event(ADDRESS, at=AT, action="ListObjects", account_id="ANONYMOUS_PRINCIPAL")
    assert _reason(_term(doc)).startswith(
        "Anonymous ListObjects of s3://public-assets-example from 203.0.113.7, a source"
    )


@pytest.mark.reference_data
def test_reason_for_a_known_s3_caller() -> None:
    doc = next(d for d in ecs_documents() if d.get("event", {}).get("action") == "PutObject")
    reason = _reason(_term(doc, values=(doc["source"]["address"],)))
    assert reason.startswith("PutObject by ")
    assert " of s3://elastic-cspm-cloudtrail-test-bucket/test.json from " in reason


def test_reason_for_a_two_field_rule() -> None:
    rule = dataclasses.replace(
        RULE,
        new_terms_fields=("source.address", "tls.client.server_name"),
        history_window_start="now-5d",
    )
    reason = _reason(
        _term(values=(ADDRESS, "public-assets-example.s3.us-east-1.amazonaws.com")), rule
    )
    assert "a source and host name combination not seen in the previous 5d" in reason


@pytest.mark.reference_data
def test_reason_for_a_non_s3_rule() -> None:
    login = next(d for d in ecs_documents() if d.get("event", {}).get("action") == "ConsoleLogin")
    rule = dataclasses.replace(
        RULE,
        name="Console Login from New User",
        severity="high",
        new_terms_fields=("user.name",),
        history_window_start="now-10d",
    )
    user = login["user"]["name"]
    reason = _reason(_term(login, values=(user,)), rule)
    assert reason.startswith("Authentication event ConsoleLogin with new user.name ")
    assert f" by {user} from {login['source']['address']}, a user not seen in the previous 10d" in (
        reason
    )
    assert reason.endswith("created high alert Console Login from New User.")
    assert "detector" in _alert(_term(login, values=(user,)), rule)
    assert "s3" not in _alert(_term(login, values=(user,)), rule)["detector"]


def test_reason_with_an_absolute_history_start_uses_the_window() -> None:
    rule = dataclasses.replace(RULE, history_window_start="2025-01-01T12:03:00Z")
    ctx = dataclasses.replace(CTX, history_start=datetime(2025, 1, 1, 12, 3, tzinfo=UTC))
    assert "not seen in the previous 14d" in _reason(_term(), rule, ctx)
    rounded = dataclasses.replace(RULE, history_window_start="now-7d/d")
    ctx = dataclasses.replace(CTX, history_start=datetime(2025, 1, 8, tzinfo=UTC))
    assert "not seen in the previous 7.5d" in _reason(_term(), rounded, ctx)
    hours = dataclasses.replace(CTX, history_start=CTX.window_end - timedelta(hours=36))
    assert "not seen in the previous 36h" in _reason(_term(), rounded, hours)


def test_reason_with_booleans_and_no_fields() -> None:
    rule = dataclasses.replace(RULE, new_terms_fields=("flag",))
    reason = _reason(NewTerm((False,), AT, {"_source": {}}), rule)
    assert reason == (
        "Event with new flag false, a flag value not seen in the previous 7d, "
        "created medium alert AWS S3 Unauthenticated Bucket Access by Rare Source."
    )


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hit",
    [
        {},
        {"_source": None},
        {"_source": "text"},
        {"_id": 5, "_source": {"@timestamp": "not a date", "event": "flat string"}},
        {"_source": {"@timestamp": 17, "event": {"action": ["a", "b"]}, "source": "x"}},
        {"_source": {"cloud": {"account": {"id": ["anonymous"]}}, "user": {"name": {"x": 1}}}},
        {"_source": {"aws": {"cloudtrail": {"resources": "arn:aws:s3:::b"}}}},
    ],
)
def test_bad_or_missing_fields_never_crash(hit: dict[str, Any]) -> None:
    alert = build_alert(RULE, NewTerm((None,), AT, hit), CTX)
    json.dumps(alert)
    assert alert["kibana"]["alert"]["original_time"] == "2025-01-15T12:00:00.000Z"
    assert alert["event"]["kind"] == "alert"
    assert alert["kibana"]["alert"]["reason"].endswith("Rare Source.")


def test_built_in_rules_give_the_documented_reason() -> None:
    for rule in builtin_rules():
        alert = build_alert(rule, _term(), CTX)
        assert alert["kibana"]["alert"]["reason"] == (
            "Anonymous GetObject of s3://public-assets-example/reports/2024/q4.csv from "
            f"203.0.113.7, a source not seen in the previous 7d, created medium alert {rule.name}."
        )
        threat = alert["kibana"]["alert"]["rule"]["threat"]
        assert threat and all({"framework", "tactic", "technique"} <= set(t) for t in threat)
        json.dumps(alert)


def test_the_reason_names_the_new_address_of_a_document_with_several() -> None:
    doc = anonymous_s3_event("198.51.100.1", at=AT)
    doc["source"]["address"] = ["198.51.100.1", "203.0.113.9"]
    reason = _alert(_term(doc, values=("203.0.113.9",)))["kibana"]["alert"]["reason"]
    assert " from 203.0.113.9, " in reason
    assert "198.51.100.1" not in reason


def test_long_copied_strings_are_cut_and_named() -> None:
    doc = anonymous_s3_event(ADDRESS, at=AT)
    doc["tls"] = {"client": {"server_name": "x" * 10_000}}
    doc["event"]["original"] = "y" * 9000
    alert = _alert(_term(doc))
    assert alert["tls"]["client"]["server_name"] == "x" * 8191 + "... [1809 more characters]"
    assert alert["kibana"]["alert"]["original_event"]["original"].endswith("[809 more characters]")
    assert alert["detector"]["truncated_fields"] == [
        "tls.client.server_name",
        "kibana.alert.original_event.original",
    ]


def test_short_values_are_copied_whole_and_nothing_is_named() -> None:
    assert "truncated_fields" not in _alert()["detector"]
