from datetime import UTC, datetime, timedelta

from detector.query import batched, bodies
from detector.query.bodies import WindowTerm
from detector.query.window import TimeFields, Window

END = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
WINDOW = Window(start=END - timedelta(minutes=9), end=END, history_start=END - timedelta(days=7))
FALLBACK = TimeFields("event.ingested", "@timestamp")
PLAIN = TimeFields("event.ingested")
BASE = bodies.rule_filter({"match_all": {}}, [])
MS = 1736942400000  # END


def test_missing_override_counts_at_most_one_document_without_the_override() -> None:
    body = batched.missing_override(BASE, FALLBACK, WINDOW)
    assert body["size"] == 0
    assert body["track_total_hits"] == 1
    assert "aggs" not in body
    assert body["query"]["bool"]["filter"][2] == {
        "bool": {"must_not": {"exists": {"field": "event.ingested"}}}
    }
    assert batched.has_hits({"hits": {"total": {"value": 1, "relation": "gte"}}})
    assert not batched.has_hits({"hits": {"total": {"value": 0, "relation": "eq"}}})


def test_first_seen_single_is_an_exact_terms_aggregation_of_the_new_values() -> None:
    body = batched.first_seen_single(BASE, FALLBACK, WINDOW, PLAIN, "a", ["x", True, 3])
    terms = body["aggs"]["seen"]["terms"]
    assert terms["include"] == ["x", "true", "3"]
    assert terms["size"] == 3
    assert body["aggs"]["seen"]["aggs"] == bodies.first_seen_aggs(PLAIN)
    assert body["query"]["bool"]["filter"][1] == bodies.time_range(FALLBACK, WINDOW.start, END)
    response = {
        "aggregations": {
            "seen": {
                "buckets": [
                    {"key": "x", "doc_count": 2, "first_seen_override": {"value": MS}},
                    {"key": 3, "doc_count": 1, "first_seen_override": {"value": None}},
                ]
            }
        }
    }
    assert batched.parse_first_seen_single(response) == {("x",): END}


def test_first_seen_multi_has_one_filter_per_combination() -> None:
    combos = [("1", "x"), ("2", "y")]
    body = batched.first_seen_multi(BASE, FALLBACK, WINDOW, FALLBACK, ["a", "b"], combos)
    filters = body["aggs"]["seen"]["filters"]["filters"]
    assert filters["1"] == bodies.terms_clause(["a", "b"], ("2", "y"))
    bucket = {"doc_count": 1, "first_seen_override": {"doc_count": 1, "min": {"value": MS}}}
    response = {"aggregations": {"seen": {"buckets": {"0": bucket, "1": {"doc_count": 0}}}}}
    assert batched.parse_first_seen_multi(response, combos) == {("1", "x"): END}


def test_details_request_and_answer() -> None:
    term = WindowTerm(("1.2.3.4",), END - timedelta(minutes=1))
    body = batched.details(BASE, FALLBACK, WINDOW, ["source.address"], [term])
    assert body["size"] == 0
    counts = body["aggs"]["counts"]["filters"]["filters"]
    assert counts == {"0": {"bool": {"filter": [{"term": {"source.address": "1.2.3.4"}}]}}}
    firsts = body["aggs"]["firsts"]
    assert firsts["filters"]["filters"]["0"]["bool"]["filter"][1] == bodies.time_range(
        FALLBACK, term.first_seen, term.first_seen
    )
    assert firsts["aggs"]["doc"]["top_hits"] == {
        "size": 1,
        "sort": batched.FIRST_DOCUMENT_SORT,
    }
    hit = {"_index": "i", "_id": "d", "_score": None, "_source": {"x": 1}, "sort": [1]}
    response = {
        "aggregations": {
            "counts": {
                "buckets": {
                    "0": {
                        "doc_count": 7,
                        "actions": {"buckets": [{"key": "PutObject"}, {"key": "GetObject"}]},
                    },
                    "1": {"doc_count": 0, "actions": {"buckets": []}},
                }
            },
            "firsts": {"buckets": {"0": {"doc": {"hits": {"hits": [hit]}}}, "1": {}}},
        }
    }
    first, gone = batched.parse_details(response, 2)
    assert first == batched.Details(
        {"_index": "i", "_id": "d", "_source": {"x": 1}}, 7, ("GetObject", "PutObject")
    )
    assert gone == batched.Details(None, 0, ())
