"""The CloudTrail test-data helpers produce what Elastic's pipeline produces."""

from datetime import timedelta

import pytest

from tests.support import reference
from tests.support.cloudtrail import (
    DEFAULT_TIME,
    anonymous_s3_event,
    ecs_documents,
    java_map_string,
)


def _with_both_forms(field: str) -> list[tuple[str, dict[str, object]]]:
    pairs = []
    # Parametrizes at collection: a fresh clone (no reference data) collects it, then skips it.
    for doc in ecs_documents() if reference.present() else []:
        trail = doc.get("aws", {}).get("cloudtrail", {})
        if field in trail and field in trail.get("flattened", {}):
            pairs.append((trail[field], trail["flattened"][field]))
    return pairs


@pytest.mark.parametrize(("expected", "values"), _with_both_forms("request_parameters"))
@pytest.mark.reference_data
def test_request_parameters_string_matches_the_pipeline(
    expected: str, values: dict[str, object]
) -> None:
    assert java_map_string(values) == expected


@pytest.mark.reference_data
def test_the_real_ecs_documents_load() -> None:
    docs = ecs_documents()
    assert len(docs) >= 9
    assert all("@timestamp" in doc for doc in docs)


def test_default_event_is_an_anonymous_successful_get() -> None:
    doc = anonymous_s3_event("203.0.113.9")
    assert doc["cloud"]["account"]["id"] == "anonymous"
    assert doc["aws"]["cloudtrail"]["user_identity"] == {"type": "AWSAccount"}
    assert doc["event"]["action"] == "GetObject"
    assert doc["event"]["outcome"] == "success"
    assert "user" not in doc


def test_request_parameters_in_both_forms() -> None:
    trail = anonymous_s3_event("203.0.113.9", bucket="b1", key="k/1.txt")["aws"]["cloudtrail"]
    assert trail["request_parameters"] == (
        "{bucketName=b1, Host=b1.s3.us-east-1.amazonaws.com, key=k/1.txt}"
    )
    assert trail["flattened"]["request_parameters"]["key"] == "k/1.txt"
    assert [r["arn"] for r in trail["resources"]] == ["arn:aws:s3:::b1/k/1.txt", "arn:aws:s3:::b1"]


def test_source_ip_only_for_ip_literals() -> None:
    assert anonymous_s3_event("2001:db8::1")["source"]["ip"] == "2001:db8::1"
    assert "ip" not in anonymous_s3_event("AWS Internal")["source"]


def test_ingested_absent_when_none() -> None:
    assert "ingested" not in anonymous_s3_event("203.0.113.9", ingested=None)["event"]


def test_ingested_as_a_delay_after_the_event() -> None:
    doc = anonymous_s3_event("203.0.113.9", at=DEFAULT_TIME, ingested=timedelta(minutes=3))
    assert doc["event"]["ingested"] == "2025-01-15T12:03:00.000Z"


def test_failure_carries_an_error_code() -> None:
    doc = anonymous_s3_event("203.0.113.9", outcome="failure")
    assert doc["aws"]["cloudtrail"]["error_code"] == "AccessDenied"


def test_user_agent_keeps_cloudtrail_brackets() -> None:
    agent = anonymous_s3_event("203.0.113.9")["user_agent"]["original"]
    assert agent.startswith("[") and agent.endswith("]")
