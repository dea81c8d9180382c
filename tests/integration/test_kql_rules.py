"""Elastic's 49 new_terms rule queries, compiled and run on a CloudTrail ECS index."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from detector.es.client import Elastic
from detector.kql import to_dsl
from tests.support import cloudtrail
from tests.support.reference import REFERENCE

pytestmark = pytest.mark.reference_data

RULES = REFERENCE / "rules" / "elastic-new-terms-aws"
UNAUTHENTICATED_S3 = "collection_s3_unauthenticated_bucket_access_by_rare_source"


def rule_queries() -> dict[str, str]:
    files = sorted(RULES.glob("*.toml"))
    return {path.stem: tomllib.loads(path.read_text())["rule"]["query"] for path in files}


@pytest.fixture
def index(elastic: Elastic, token: str) -> str:
    """A CloudTrail index (keyword, ip, date, long, boolean and flattened fields) with real events
    and two anonymous S3 reads."""
    name = f"logs-aws.cloudtrail-kql-{token}"
    cloudtrail.create_index(elastic, name)
    docs = [cloudtrail.with_dataset(doc) for doc in cloudtrail.ecs_documents()]
    docs += [
        cloudtrail.anonymous_s3_event("203.0.113.7"),
        cloudtrail.anonymous_s3_event("198.51.100.9"),
    ]
    cloudtrail.index_documents(elastic, name, docs)
    return name


def test_the_index_maps_request_parameters_as_flattened(elastic: Elastic, index: str):
    mapping = elastic.client.indices.get_mapping(index=index)[index]["mappings"]
    flattened = mapping["properties"]["aws"]["properties"]["cloudtrail"]["properties"]["flattened"]
    assert flattened["properties"]["request_parameters"]["type"] == "flattened"


def test_every_rule_query_runs_without_error(elastic: Elastic, index: str):
    queries = rule_queries()
    assert len(queries) == 49
    failures: dict[str, Any] = {}
    for name, query in queries.items():
        body = {"query": to_dsl(query), "size": 0, "track_total_hits": True}
        response = elastic.search([index], body)
        if response["_shards"]["failed"]:
            failures[name] = response["_shards"]["failures"]
    assert failures == {}


def test_unauthenticated_s3_rule_selects_exactly_the_anonymous_reads(elastic: Elastic, index: str):
    body = {"query": to_dsl(rule_queries()[UNAUTHENTICATED_S3]), "size": 100, "_source": ["source"]}
    hits = elastic.search([index], body)["hits"]["hits"]
    assert sorted(hit["_source"]["source"]["address"] for hit in hits) == [
        "198.51.100.9",
        "203.0.113.7",
    ]
