"""The built-in rules' compiled KQL selects exactly the anonymous S3 events in a CloudTrail index.

Documents: positives from the factory, negatives from the factory (each differs from a positive
in one respect) and the real ECS documents of Elastic's pipeline tests (given `event.dataset` so
that only the other clauses can exclude them). The index name contains the test token and does
not match the rules' own patterns (`filebeat-*`, `logs-aws.cloudtrail*`).
"""

from __future__ import annotations

from typing import Any

import pytest

from detector.es.client import Elastic
from detector.kql import to_dsl
from detector.rules import Rule, builtin_rules
from tests.support.cloudtrail import anonymous_s3_event, create_index, ecs_documents, with_dataset

# The real negatives come from the reference data (`../shared`).
pytestmark = pytest.mark.reference_data

DEFAULT_ID = "59bf26c2-bcbe-11ef-a215-f661ea17fbce"
LEGACY_ID = "5ba88a8c-dc0a-4ff8-8163-dfe43ac7348e"

POSITIVES: dict[str, dict[str, Any]] = {
    "get": anonymous_s3_event("198.51.100.7"),
    "put": anonymous_s3_event("198.51.100.8", action="PutObject"),
    "list": anonymous_s3_event("198.51.100.9", action="ListObjects"),
    "delete": anonymous_s3_event("198.51.100.10", action="DeleteObject"),
    "unknown-identity": anonymous_s3_event("198.51.100.11", identity_type="Unknown"),
    "ipv6": anonymous_s3_event("2001:db8::7"),
    "hostname-source": anonymous_s3_event("AWS Internal"),
    "no-ingested": anonymous_s3_event("198.51.100.12", ingested=None),
}
LEGACY_ONLY: dict[str, dict[str, Any]] = {
    "legacy-principal": anonymous_s3_event("104.102.221.250", account_id="ANONYMOUS_PRINCIPAL"),
}
NEGATIVES: dict[str, dict[str, Any]] = {
    "authenticated": anonymous_s3_event(
        "198.51.100.20", account_id="123456789012", identity_type="IAMUser"
    ),
    "cross-account": anonymous_s3_event("198.51.100.21", account_id="210987654321"),
    "failure": anonymous_s3_event("198.51.100.22", outcome="failure"),
    "s3-express": anonymous_s3_event("198.51.100.23", provider="s3express.amazonaws.com"),
    "head-object": anonymous_s3_event("198.51.100.24", action="HeadObject"),
    "copy-object": anonymous_s3_event("198.51.100.25", action="CopyObject"),
    "lowercase-action": anonymous_s3_event("198.51.100.26", action="getobject"),
    "service-identity": anonymous_s3_event("198.51.100.27", identity_type="AWSService"),
    "no-identity-type": anonymous_s3_event("198.51.100.28", identity_type=None),
    "other-dataset": anonymous_s3_event("198.51.100.29", dataset="aws.s3access"),
    "no-dataset": anonymous_s3_event("198.51.100.30", dataset=None),
}


def _real_negatives() -> dict[str, dict[str, Any]]:
    return {f"ecs-{n}": with_dataset(doc) for n, doc in enumerate(ecs_documents())}


def _rule(rule_id: str) -> Rule:
    return next(rule for rule in builtin_rules() if rule.rule_id == rule_id)


def _matching(elastic: Elastic, index: str, rule: Rule) -> set[str]:
    body = {"query": to_dsl(rule.query), "size": 1000, "_source": False}
    return {hit["_id"] for hit in elastic.search([index], body)["hits"]["hits"]}


@pytest.fixture
def cloudtrail_index(elastic: Elastic, token: str) -> str:
    name = f"test-cloudtrail-{token}"
    create_index(elastic, name)
    docs = {**POSITIVES, **LEGACY_ONLY, **NEGATIVES, **_real_negatives()}
    result = elastic.bulk_create(name, docs, refresh=True)
    assert sorted(result.created) == sorted(docs)
    return name


def test_index_name_is_outside_the_rules_patterns(cloudtrail_index: str) -> None:
    assert not cloudtrail_index.startswith(("filebeat-", "logs-aws.cloudtrail"))


def test_default_rule_selects_exactly_the_anonymous_events(
    elastic: Elastic, cloudtrail_index: str
) -> None:
    assert _matching(elastic, cloudtrail_index, _rule(DEFAULT_ID)) == set(POSITIVES)


def test_legacy_variant_also_selects_anonymous_principal(
    elastic: Elastic, cloudtrail_index: str
) -> None:
    expected = set(POSITIVES) | set(LEGACY_ONLY)
    assert _matching(elastic, cloudtrail_index, _rule(LEGACY_ID)) == expected
