"""Property: on keyword fields, the compiled DSL run by Elasticsearch selects exactly the documents
that an independent Python evaluator of the same KQL (`tests.support.kql_eval`) selects."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.es.client import Elastic
from detector.kql import to_dsl
from tests.support.kql_eval import matches

FIELDS = ["f1", "f2", "f3"]
# Document values: case matters (B/b), spaces, KQL and query_string syntax, a literal asterisk.
VALUES = ["a", "b", "B", "ab", "ba", "a b", "x:y", "(z)", "a*b", 'q"', "c\\d", "a-b"]
# Pieces of wildcard patterns; "*" inside a piece is a literal (escaped) asterisk.
PIECES = ["", "", "a", "b", "B", " ", ":", "*", "(", "-", "\\"]
SPECIAL = set('\\():<>"*{}')
DOCS = 150


def corpus() -> dict[str, dict[str, Any]]:
    """Documents with each field missing, empty, single- or multi-valued (fixed seed)."""
    rng = random.Random(20240601)
    docs: dict[str, dict[str, Any]] = {"none": {}}
    for number in range(DOCS):
        doc: dict[str, Any] = {}
        for field in FIELDS:
            shape = rng.random()
            if shape < 0.25:
                continue
            if shape < 0.3:
                doc[field] = []
            elif shape < 0.75:
                doc[field] = rng.choice(VALUES)
            else:
                doc[field] = rng.sample(VALUES, rng.randint(2, 3))
        docs[f"doc-{number}"] = doc
    return docs


@pytest.fixture
def index(elastic: Elastic, token: str) -> tuple[str, dict[str, dict[str, Any]]]:
    name = f"kql-props-{token}"
    docs = corpus()
    properties = {field: {"type": "keyword"} for field in FIELDS}
    es = elastic.client
    es.indices.create(
        index=name,
        mappings={"dynamic": "strict", "properties": properties},
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "50ms"},
    )
    operations: list[dict[str, Any]] = []
    for doc_id, doc in docs.items():
        operations += [{"index": {"_index": name, "_id": doc_id}}, doc]
    response = es.bulk(operations=operations, refresh="wait_for")
    assert not response["errors"]
    return name, docs


# --- KQL text generation -----------------------------------------------------------------------


def unquoted(text: str) -> str:
    return "".join("\\" + char if char in SPECIAL else char for char in text)


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def keyword(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize()])


literal_values = st.one_of(
    st.sampled_from(VALUES).map(unquoted), st.sampled_from(VALUES).map(quoted)
)
wildcard_values = st.lists(st.sampled_from(PIECES), min_size=2, max_size=4).map(
    lambda parts: "*".join(unquoted(part) for part in parts)
)
values = st.one_of(literal_values, literal_values, wildcard_values)


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`(x) and (y)`, `(x) or (y)`, `not (x)` over smaller expressions."""
    binary = st.tuples(children, keyword("and") | keyword("or"), children).map(
        lambda parts: f"({parts[0]}) {parts[1]} ({parts[2]})"
    )
    negated = st.tuples(keyword("not"), children).map(lambda parts: f"{parts[0]} ({parts[1]})")
    return binary | negated


value_lists = st.recursive(values, combine, max_leaves=4)
fields = st.sampled_from([*FIELDS, *FIELDS, "f*"])
leaves = st.one_of(
    st.tuples(fields, values).map(lambda parts: f"{parts[0]}: {parts[1]}"),
    fields.map(lambda field: f"{field}: *"),
    st.tuples(fields, value_lists).map(lambda parts: f"{parts[0]}: ({parts[1]})"),
)
queries = st.recursive(leaves, combine, max_leaves=5)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=queries)
def test_elasticsearch_selects_what_the_evaluator_selects(
    elastic: Elastic, index: tuple[str, dict[str, dict[str, Any]]], query: str
):
    name, docs = index
    body = {"query": to_dsl(query), "size": len(docs), "_source": False}
    found = {hit["_id"] for hit in elastic.search([name], body)["hits"]["hits"]}
    expected = {doc_id for doc_id, doc in docs.items() if matches(query, doc)}
    assert found == expected, (
        f"{query!r}: only ES {found - expected}, only Python {expected - found}"
    )


def test_the_corpus_has_missing_empty_and_multi_valued_fields():
    docs = corpus().values()
    assert any("f1" not in doc for doc in docs)
    assert any(doc.get("f2") == [] for doc in docs)
    assert any(isinstance(doc.get("f3"), list) and len(doc["f3"]) > 1 for doc in docs)
