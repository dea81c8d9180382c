"""The raw CloudTrail -> ECS mapping equals Elastic's real pipeline outputs, field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.cloudtrail.categories import CATEGORIES
from detector.cloudtrail.ecs import index_name, is_ip_literal, parse_iso8601, to_ecs
from detector.cloudtrail.files import RawRecord, read_all
from detector.cloudtrail.javamap import clean, java_double, to_java_string
from detector.errors import RecordError
from tests.support.raw_cloudtrail import (
    ADDED,
    INVICTUS_DIR,
    LEFT_OUT,
    MINIMAL,
    anonymous_record,
    flat,
    pipeline_pairs,
)

PAIRS = pipeline_pairs()


@pytest.mark.parametrize(("name", "line", "expected"), PAIRS, ids=[pair[0] for pair in PAIRS])
@pytest.mark.reference_data
def test_every_field_equals_the_real_pipeline_output(
    name: str, line: str, expected: dict[str, Any]
) -> None:
    ours = flat(to_ecs(json.loads(line), "default", original=line))
    theirs = flat(expected)
    if MINIMAL in name:
        theirs = {k: v for k, v in theirs.items() if not k.startswith("aws.cloudtrail.flattened.")}
        ours = {k: v for k, v in ours.items() if not k.startswith("aws.cloudtrail.flattened.")}
    compared = {key for key in theirs if not key.startswith(LEFT_OUT)}
    assert {key: ours.get(key) for key in compared} == {key: theirs[key] for key in compared}
    extra = set(ours) - set(theirs)
    assert {key for key in extra if not key.startswith(ADDED)} == set()


@pytest.mark.reference_data
def test_the_pairs_cover_every_expected_file() -> None:
    assert len({name.rsplit("[", 1)[0] for name, _, _ in PAIRS}) == 9
    assert len(PAIRS) == 11


@pytest.mark.reference_data
def test_the_fields_the_rules_read_are_compared() -> None:
    read = {
        "source.address",
        "source.ip",
        "cloud.account.id",
        "cloud.region",
        "event.action",
        "event.provider",
        "event.outcome",
        "event.original",
        "user.name",
        "user.id",
        "user_agent.original",
        "tls.client.server_name",
        "aws.cloudtrail.user_identity.arn",
        "aws.cloudtrail.user_identity.type",
        "aws.cloudtrail.user_identity.access_key_id",
        "aws.cloudtrail.user_identity.invoked_by",
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
        "aws.cloudtrail.request_parameters",
        "aws.cloudtrail.response_elements",
        "aws.cloudtrail.resources",
        "aws.cloudtrail.flattened.request_parameters.roleSessionName",
        "aws.cloudtrail.console_login.additional_eventdata.mfa_used",
    }
    present = {key for _, _, doc in PAIRS for key in flat(doc)}
    assert read <= present
    assert not any(key.startswith(LEFT_OUT) for key in read)


@pytest.mark.reference_data
def test_every_invictus_record_maps_without_a_bad_record() -> None:
    items = [item for _, item in read_all([INVICTUS_DIR])]
    assert all(isinstance(item, RawRecord) for item in items)
    docs = [to_ecs(item.record, "imported") for item in items if isinstance(item, RawRecord)]
    assert len(docs) == 2900
    assert len({doc["event"]["id"] for doc in docs}) == 2900
    assert sum(doc["event"]["outcome"] == "failure" for doc in docs) == 300
    assert all("ingested" not in doc["event"] for doc in docs)
    no_ip = [doc for doc in docs if "ip" not in doc["source"]]
    assert {doc["source"]["address"] for doc in no_ip} >= {"AWS Internal"}


def test_an_anonymous_get_object_maps_to_what_the_rule_queries() -> None:
    at = datetime(2025, 1, 15, 12, 0, 7, tzinfo=UTC)
    doc = to_ecs(anonymous_record("2001:DB8::7", at), "imported")
    assert doc["@timestamp"] == "2025-01-15T12:00:07.000Z"
    assert doc["cloud"]["account"]["id"] == "anonymous"
    assert doc["aws"]["cloudtrail"]["user_identity"] == {"type": "AWSAccount"}
    assert "user" not in doc  # principalId "" is dropped before the renames
    assert doc["source"] == {"address": "2001:DB8::7", "ip": "2001:DB8::7"}  # as written
    assert doc["event"]["outcome"] == "success"
    assert (doc["event"]["category"], doc["event"]["type"]) == (["file"], ["info"])
    assert doc["event"]["dataset"] == "aws.cloudtrail"
    assert doc["data_stream"] == {
        "type": "logs",
        "dataset": "aws.cloudtrail",
        "namespace": "imported",
    }
    parameters = doc["aws"]["cloudtrail"]["request_parameters"]
    assert parameters == (
        "{bucketName=public-assets-example, Host=public-assets-example.s3.us-east-1.amazonaws.com,"
        " key=reports/q4.csv}"
    )
    assert doc["tls"]["client"]["server_name"] == "public-assets-example.s3.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("address", "ip"),
    [
        ("203.0.113.9", True),
        ("2001:db8::1", True),
        ("::ffff:192.0.2.1", True),
        ("s3.amazonaws.com", False),
        ("AWS Internal", False),
        ("81.2.69.142, 192.168.10.10", False),
        (" 203.0.113.9", False),
        ("fe80::1%eth0", False),
    ],
)
def test_source_ip_only_for_one_whole_ip_literal(address: str, ip: bool) -> None:
    assert is_ip_literal(address) is ip
    doc = to_ecs(anonymous_record(address, datetime(2025, 1, 1, tzinfo=UTC)), "x")
    assert doc["source"]["address"] == address
    assert ("ip" in doc["source"]) is ip


def test_any_error_code_or_message_is_a_failure() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    assert to_ecs(anonymous_record("192.0.2.1", at, error_code="200"), "x")["event"]["outcome"] == (
        "failure"
    )
    record = anonymous_record("192.0.2.1", at)
    record["errorCode"] = ""  # dropped as empty: not an error
    assert to_ecs(record, "x")["event"]["outcome"] == "success"


def test_tls_versions_placeholders_and_bare_numbers() -> None:
    record = anonymous_record("192.0.2.1", datetime(2025, 1, 1, tzinfo=UTC))
    record["tlsDetails"] = {"tlsVersion": "1.3", "clientProvidedHostHeader": "h.example"}
    assert to_ecs(record, "x")["tls"] == {"version": "1.3", "client": {"server_name": "h.example"}}
    record["tlsDetails"] = {"tlsVersion": "tlsVersion", "clientProvidedHostHeader": "x"}
    assert "tls" not in to_ecs(record, "x")


def test_flattened_copy_only_under_the_term_limit() -> None:
    record = anonymous_record("192.0.2.1", datetime(2025, 1, 1, tzinfo=UTC))
    record["requestParameters"] = {"policy": "x" * 40000}
    trail = to_ecs(record, "x")["aws"]["cloudtrail"]
    assert trail["request_parameters"] == "{policy=" + "x" * 40000 + "}"
    assert "request_parameters" not in trail["flattened"]


@pytest.mark.parametrize(
    "record",
    [
        [],
        {"eventTime": "2025-01-01T00:00:00Z"},
        {"eventID": "a", "eventTime": "20131102T010628Z"},
        {"eventID": "", "eventTime": "2025-01-01T00:00:00Z"},
    ],
)
def test_records_without_id_or_time_are_bad(record: Any) -> None:
    with pytest.raises(RecordError):
        to_ecs(record, "x")


def test_iso8601_is_the_extended_format_only() -> None:
    assert parse_iso8601("2016-11-14T17:25:26Z") == datetime(2016, 11, 14, 17, 25, 26, tzinfo=UTC)
    assert parse_iso8601("2016-11-14T17:25:26.5+01:00") == datetime(
        2016, 11, 14, 16, 25, 26, 500000, tzinfo=UTC
    )
    assert parse_iso8601("20131102T010628Z") is None
    assert parse_iso8601(None) is None


def test_java_strings_and_hashmap_order() -> None:
    cleaned = clean({"Host": "h", "bucketName": "b", "prefix": "", "tags": [None, {}], "n": 1.5})
    assert to_java_string(cleaned) == "{bucketName=b, Host=h, n=1.5}"
    assert to_java_string({"a": [True, 3, {"b": None}]}) == "{a=[true, 3, {b=null}]}"
    assert [java_double(v) for v in (3.0, 1e20, 1.5e-5, 0.001)] == [
        "3.0",
        "1.0E20",
        "1.5E-5",
        "0.001",
    ]


def test_subnormal_doubles_print_as_java_prints_them() -> None:
    # Double.MIN_VALUE: Java's Double.toString gives "4.9E-324" (two digits at least).
    assert java_double(5e-324) == "4.9E-324"
    assert java_double(-2.5e-310) == "-2.5E-310"


def test_index_name_is_the_fleet_data_stream_name() -> None:
    assert index_name("imported") == "logs-aws.cloudtrail-imported"


@pytest.mark.parametrize(
    ("action", "category", "types"),
    [
        ("CreateUser", ["iam"], ["user", "creation"]),
        ("AddUserToGroup", ["iam"], ["group", "change"]),
        ("CreateKeyPair", ["iam"], ["admin", "creation"]),
        ("ListUserTags", ["iam"], ["user", "info"]),
        ("DeleteBucket", ["file"], ["deletion"]),
        ("PutObject", ["file"], ["change"]),
        ("AssumeRole", ["authentication"], ["info"]),
    ],
)
def test_the_categorisation_table(action: str, category: list[str], types: list[str]) -> None:
    record = anonymous_record("192.0.2.1", datetime(2025, 1, 1, tzinfo=UTC), action=action)
    event = to_ecs(record, "x")["event"]
    assert (event["kind"], event["category"], event["type"]) == ("event", category, types)


def test_actions_outside_the_table_are_info_without_category() -> None:
    record = anonymous_record("192.0.2.1", datetime(2025, 1, 1, tzinfo=UTC), action="CopyObject")
    event = to_ecs(record, "x")["event"]
    assert (event["type"], "category" in event) == (["info"], False)
    assert len(CATEGORIES) == 52 + 6  # the pipeline's table, and the newer S3 rows


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = st.sampled_from(
    [
        "userIdentity",
        "sourceIPAddress",
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "resources",
        "tlsDetails",
        "errorCode",
        "eventName",
        "userAgent",
        "recipientAccountId",
    ]
)


@given(st.dictionaries(_KEYS, _JSON, max_size=6), st.sampled_from(["GetObject", "ConsoleLogin"]))
def test_any_json_in_any_field_maps(fields: dict[str, Any], action: str) -> None:
    record = {"eventID": "e1", "eventTime": "2025-01-15T12:00:00Z", "eventName": action, **fields}
    doc = to_ecs(record, "x")
    assert json.loads(json.dumps(doc))["event"]["id"] == "e1"
