from datetime import UTC, datetime, timedelta

from detector.query import bodies
from detector.query.bodies import PAGE_SIZE
from detector.query.window import TimeFields, Window

END = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
WINDOW = Window(start=END - timedelta(minutes=9), end=END, history_start=END - timedelta(days=7))
FALLBACK = TimeFields("event.ingested", "@timestamp")
PLAIN = TimeFields("@timestamp")
BASE = bodies.rule_filter({"match_all": {}}, [])
BOUNDS = {"format": "strict_date_optional_time"}


def test_rule_filter_with_and_without_exceptions() -> None:
    assert BASE == {"bool": {"filter": [{"match_all": {}}]}}
    excluded = bodies.rule_filter({"term": {"a": 1}}, [{"term": {"b": 2}}])
    assert excluded == {"bool": {"filter": [{"term": {"a": 1}}], "must_not": [{"term": {"b": 2}}]}}


def test_time_range_without_fallback() -> None:
    assert bodies.time_range(PLAIN, WINDOW.start, WINDOW.end) == {
        "range": {
            "@timestamp": {
                "gte": "2025-01-15T11:51:00.000Z",
                "lte": "2025-01-15T12:00:00.000Z",
                **BOUNDS,
            }
        }
    }


def test_time_range_with_fallback_is_kibanas_shape() -> None:
    bounds = {"gte": "2025-01-15T11:51:00.000Z", "lte": "2025-01-15T12:00:00.000Z", **BOUNDS}
    assert bodies.time_range(FALLBACK, WINDOW.start, WINDOW.end) == {
        "bool": {
            "should": [
                {"range": {"event.ingested": bounds}},
                {
                    "bool": {
                        "filter": [
                            {"range": {"@timestamp": bounds}},
                            {"bool": {"must_not": {"exists": {"field": "event.ingested"}}}},
                        ]
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def test_window_terms_request_pages_with_after_key() -> None:
    body = bodies.window_terms(BASE, FALLBACK, WINDOW, ["source.address"], {"source.address": "x"})
    assert body["size"] == 0
    composite = body["aggs"]["terms"]["composite"]
    assert composite == {
        "size": PAGE_SIZE,
        "sources": [{"source.address": {"terms": {"field": "source.address"}}}],
        "after": {"source.address": "x"},
    }
    assert "aggs" not in body["aggs"]["terms"]  # phase 1 needs the terms only
    assert body["query"]["bool"]["filter"][0] is BASE
    assert (
        "after" not in bodies.window_terms(BASE, PLAIN, WINDOW, ["a"])["aggs"]["terms"]["composite"]
    )


def _bucket(
    key: dict[str, object], override: float | None, fallback: float | None
) -> dict[str, object]:
    return {
        "key": key,
        "doc_count": 3,
        "first_seen_override": {"doc_count": 1, "min": {"value": override}},
        "first_seen_fallback": {"doc_count": 1, "min": {"value": fallback}},
    }


def test_first_seen_is_the_smaller_of_override_and_fallback() -> None:
    ms = 1736942400000
    assert bodies.first_seen_of(_bucket({}, ms + 5, ms)) == END
    assert bodies.first_seen_of(_bucket({}, ms, None)) == END
    assert bodies.first_seen_of(_bucket({}, None, ms)) == END
    assert bodies.first_seen_of(_bucket({}, None, None)) is None
    assert bodies.first_seen_of({"first_seen_override": {"value": ms}}) == END


def test_parse_window_page_short_page_is_the_last() -> None:
    ms = 1736942400000
    response = {
        "aggregations": {
            "terms": {
                "after_key": {"a": "2", "b": 1},
                "buckets": [
                    _bucket({"a": "1", "b": True}, ms, None),
                    _bucket({"a": "2", "b": 1}, None, None),
                ],
            }
        }
    }
    page = bodies.parse_window_page(response, ["a", "b"])
    assert page.terms == [("1", True), ("2", 1)]
    assert page.after is None


def test_parse_window_page_full_page_has_a_next() -> None:
    buckets = [_bucket({"a": str(n)}, 1.0, None) for n in range(PAGE_SIZE)]
    response = {"aggregations": {"terms": {"after_key": {"a": "z"}, "buckets": buckets}}}
    page = bodies.parse_window_page(response, ["a"])
    assert len(page.terms) == PAGE_SIZE
    assert page.after == {"a": "z"}


def test_parse_window_page_without_aggregations_is_empty() -> None:
    assert bodies.parse_window_page({}, ["a"]) == bodies.Page([], None)


def test_history_single_is_exact_and_bounded_by_the_window_start() -> None:
    body = bodies.history_single(BASE, PLAIN, WINDOW, "f", ["a", 3, True])
    assert body["aggs"] == {
        "seen": {"terms": {"field": "f", "size": 3, "include": ["a", "3", "true"]}}
    }
    filters = body["query"]["bool"]["filter"]
    assert filters[1]["range"]["@timestamp"]["gte"] == "2025-01-08T12:00:00.000Z"
    assert filters[1]["range"]["@timestamp"]["lte"] == "2025-01-15T11:51:00.000Z"
    assert filters[2] == {"terms": {"f": ["a", 3, True]}}
    response = {"aggregations": {"seen": {"buckets": [{"key": "a"}, {"key": 1}]}}}
    assert bodies.parse_history_single(response) == ["a", 1]


def test_history_multi_matches_the_batch() -> None:
    body = bodies.history_multi(BASE, PLAIN, WINDOW, ["a", "b"], [("1", "x"), ("2", "y")])
    batch = body["query"]["bool"]["filter"][2]
    assert batch == {
        "bool": {
            "should": [
                {"bool": {"filter": [{"term": {"a": "1"}}, {"term": {"b": "x"}}]}},
                {"bool": {"filter": [{"term": {"a": "2"}}, {"term": {"b": "y"}}]}},
            ],
            "minimum_should_match": 1,
        }
    }
    response = {
        "aggregations": {
            "terms": {
                "after_key": {"a": "2", "b": "y"},
                "buckets": [{"key": {"a": "1", "b": "x"}, "doc_count": 1}],
            }
        }
    }
    assert bodies.parse_history_multi(response, ["a", "b"]) == ([("1", "x")], None)


def test_history_superset_filters_each_field_by_the_batch_values() -> None:
    batch = [("1", "x"), ("2", "x"), ("1", "y")]
    body = bodies.history_superset(BASE, PLAIN, WINDOW, ["a", "b"], batch, {"a": "1", "b": "x"})
    filters = body["query"]["bool"]["filter"]
    assert filters[1] == bodies.time_range(PLAIN, WINDOW.history_start, WINDOW.start)
    assert filters[2:] == [{"terms": {"a": ["1", "2"]}}, {"terms": {"b": ["x", "y"]}}]
    assert not any("should" in clause.get("bool", {}) for clause in filters)
    assert body["aggs"]["terms"]["composite"]["after"] == {"a": "1", "b": "x"}
