"""Compiled KQL on a real Elasticsearch: each construct selects exactly the documents it should."""

from __future__ import annotations

from typing import Any

import pytest

from detector.es.client import Elastic
from detector.kql import to_dsl

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "k": {"type": "keyword"},
        "k2": {"type": "keyword"},
        "tag": {"type": "keyword"},
        "n": {"type": "long"},
        "ts": {"type": "date"},
        "ip": {"type": "ip"},
        "msg": {"type": "text"},
        "flag": {"type": "boolean"},
        "p": {
            "type": "nested",
            "properties": {"name": {"type": "keyword"}, "n": {"type": "long"}},
        },
    },
}

# A short refresh interval, so that `refresh="wait_for"` returns quickly.
SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "50ms"}

DOCS: dict[str, dict[str, Any]] = {
    "get": {
        "k": "GetObject",
        "k2": "alpha",
        "tag": ["x", "y"],
        "n": 5,
        "ts": "2024-01-01T10:00:00Z",
        "ip": "10.0.0.1",
        "msg": "quick brown fox",
        "flag": True,
        "p": [{"name": "a", "n": 1}, {"name": "b", "n": 2}],
    },
    "put": {
        "k": "PutObject",
        "k2": "beta",
        "tag": ["y"],
        "n": 10,
        "ts": "2024-02-01T00:00:00Z",
        "ip": "192.168.1.1",
        "msg": "lazy dog",
        "flag": False,
        "p": [{"name": "a", "n": 3}],
    },
    "browser": {"k": "S3 Browser 1.0", "n": 15, "ts": "2024-03-01T00:00:00Z", "tag": []},
    "special": {"k": 'a:b (c)* "q"\\', "k2": "alpha beta", "msg": "brown dog"},
    "lower": {"k": "getobject", "k2": "or"},
    "bare": {"k2": "gamma"},
}


@pytest.fixture
def index(elastic: Elastic, token: str) -> str:
    name = f"kql-{token}"
    es = elastic.client
    es.indices.create(index=name, mappings=MAPPINGS, settings=SETTINGS)
    operations: list[dict[str, Any]] = []
    for doc_id, doc in DOCS.items():
        operations += [{"index": {"_index": name, "_id": doc_id}}, doc]
    assert not es.bulk(operations=operations, refresh="wait_for")["errors"]
    return name


def selected(elastic: Elastic, index: str, query: str) -> set[str]:
    body = {"query": to_dsl(query), "size": 100, "_source": False}
    return {hit["_id"] for hit in elastic.search([index], body)["hits"]["hits"]}


CASES: list[tuple[str, set[str]]] = [
    # field: value, quoted and unquoted, case-sensitive on keyword
    ("k: GetObject", {"get"}),
    ('k: "GetObject"', {"get"}),
    ("k: getobject", {"lower"}),
    ("k: S3 Browser 1.0", {"browser"}),
    ('k: "S3 Browser"', set()),
    # other field types
    ("n: 10", {"put"}),
    ("ip: 10.0.0.1", {"get"}),
    ("ip: 10.0.0.0/8", {"get"}),
    ("flag: true", {"get"}),
    ("flag: false", {"put"}),
    ("msg: dog", {"put", "special"}),
    ("msg: brown dog", {"get", "put", "special"}),
    ('msg: "brown dog"', {"special"}),
    ("ts: 2024-02-01T00\\:00\\:00Z", {"put"}),
    # multi-valued fields match on any value
    ("tag: x", {"get"}),
    ("tag: y", {"get", "put"}),
    ("tag: (x and y)", {"get"}),
    # escapes
    (r"k: a\:b \(c\)\* \"q\"\\", {"special"}),
    (r'k: "a:b (c)* \"q\"\\"', {"special"}),
    (r"k2: \or", {"lower"}),
    # wildcards in values (escaped query_string syntax, spaces kept in the pattern)
    ("k: *Object", {"get", "put"}),
    ("k: Get*", {"get"}),
    ("k: *3 Brow*", {"browser"}),
    ("k: S3*1.0", {"browser"}),
    (r"k: a\:b \(c\)\**", {"special"}),
    ("k: get*", {"lower"}),
    ('k: "Get*"', set()),
    ("ip: *", {"get", "put"}),
    # exists
    ("k: *", {"get", "put", "browser", "special", "lower"}),
    ("tag: *", {"get", "put"}),
    ("not k2: *", {"browser"}),
    # wildcard field names
    ("k*: alpha", {"get"}),
    ("k*: *Object", {"get", "put"}),
    ('k*: "alpha beta"', {"special"}),
    ("k*: *", set(DOCS)),
    ("n* >= 10", {"put", "browser"}),
    ("*: *", set(DOCS)),
    # free text
    ("gamma", {"bare"}),
    ('"alpha beta"', {"special"}),
    ("Put*", {"put"}),
    ("", set(DOCS)),
    # ranges on numbers, dates, ips and keywords
    ("n > 5", {"put", "browser"}),
    ("n >= 5", {"get", "put", "browser"}),
    ("n < 10", {"get"}),
    ("n <= 10", {"get", "put"}),
    ("ts >= 2024-02-01", {"put", "browser"}),
    ('ts < "2024-02-01T00:00:00Z"', {"get"}),
    ("ts > now-100y", {"get", "put", "browser"}),
    ("ip > 10.0.0.1", {"put"}),
    ("k2 > beta", {"lower", "bare"}),
    # and / or / not, precedence and parentheses
    ("k2: alpha and n: 5", {"get"}),
    ("k2: alpha or k2: beta", {"get", "put"}),
    ("not k2: alpha", {"put", "browser", "special", "lower", "bare"}),
    ("k2: gamma or k2: alpha and n: 5", {"bare", "get"}),
    ("(k2: gamma or k2: alpha) and n: 5", {"get"}),
    ("not k2: alpha and k: *", {"put", "browser", "special", "lower"}),
    ("not (k2: alpha or k: *)", {"bare"}),
    ("K2: alpha OR k2: beta", {"put"}),
    ("k2: alpha AND NOT tag: x", set()),
    # value lists
    ("k2: (alpha or beta)", {"get", "put"}),
    ('k: ("GetObject" or Put* or *Browser*)', {"get", "put", "browser"}),
    ("k: (* and not *Object)", {"browser", "special", "lower"}),
    ("tag: (x or not y)", {"get", "browser", "special", "lower", "bare"}),
    ("n: (5 or 15)", {"get", "browser"}),
    # nested
    ("p: { name: a and n: 1 }", {"get"}),
    ("p: { name: a and n: 3 }", {"put"}),
    ("p: { name: b and n: 3 }", set()),
    ("p: { name: * }", {"get", "put"}),
    ("p: { n >= 2 }", {"get", "put"}),
    ("not p: { name: b }", {"put", "browser", "special", "lower", "bare"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[query for query, _ in CASES])
def test_compiled_query_selects_exactly(
    elastic: Elastic, index: str, query: str, expected: set[str]
):
    assert selected(elastic, index, query) == expected
