"""Baseline coverage and its cache, the oldest-document request, and skipped documents. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detector.query import baseline, skipped
from detector.query.baseline import ALERT, HOLD, Baseline, BaselineCache
from detector.query.window import TimeFields, Window

T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
START = T - timedelta(minutes=9)
HISTORY_START = T - timedelta(days=7)
WINDOW = Window(START, T, HISTORY_START)
DAY = timedelta(days=1)


def at(since: datetime | None, mode: str = ALERT) -> Baseline:
    return Baseline(since, HISTORY_START, START, mode)


def test_coverage_is_the_part_of_the_history_the_data_spans() -> None:
    two_days = at(START - timedelta(days=2))
    assert two_days.coverage == round(2 / (7 - 9 / 1440), 4)
    assert not two_days.mature


def test_data_reaching_the_history_start_is_mature_and_covers_all() -> None:
    assert at(HISTORY_START).coverage == 1.0
    assert at(HISTORY_START).mature
    assert at(HISTORY_START - timedelta(days=30)).coverage == 1.0


def test_no_data_before_the_window_covers_nothing() -> None:
    assert at(None).coverage == 0.0
    assert at(START + timedelta(minutes=1)).coverage == 0.0
    assert not at(None).mature


def test_only_hold_with_an_immature_baseline_holds() -> None:
    young = START - timedelta(days=1)
    assert at(young, HOLD).holding
    assert not at(young, ALERT).holding
    assert not at(HISTORY_START, HOLD).holding


def test_the_cache_answers_only_when_the_known_data_reaches_the_history_start() -> None:
    cache = BaselineCache()
    assert cache.known("r", HISTORY_START) is None
    cache.remember("r", at(HISTORY_START - timedelta(hours=1)))
    assert cache.known("r", HISTORY_START) == HISTORY_START - timedelta(hours=1)
    # An earlier execution's history starts before the known data: ask again.
    assert cache.known("r", HISTORY_START - timedelta(days=1)) is None


def test_becoming_mature_is_reported_once_and_only_after_being_immature() -> None:
    cache = BaselineCache()
    assert cache.remember("r", at(START - timedelta(days=1))) is False
    assert cache.remember("r", at(HISTORY_START)) is True
    assert cache.remember("r", at(HISTORY_START)) is False
    assert BaselineCache().remember("other", at(HISTORY_START)) is False


def test_the_cache_keeps_the_oldest_time_seen() -> None:
    cache = BaselineCache()
    cache.remember("r", at(HISTORY_START - timedelta(days=2)))
    cache.remember("r", at(HISTORY_START - timedelta(days=1)))
    assert cache.known("r", HISTORY_START) == HISTORY_START - timedelta(days=2)


def test_the_cache_forgets_a_time_beyond_the_lookback_of_a_later_history() -> None:
    cache = BaselineCache()
    imported = HISTORY_START - timedelta(days=900)  # logs of long ago, imported
    cache.remember("r", Baseline(imported, imported + timedelta(days=1), imported + 8 * DAY))
    assert cache.known("r", HISTORY_START) is None  # a live history: ask the node
    cache.remember("r", at(START - timedelta(days=1)))  # live data since yesterday
    assert cache.known("r", HISTORY_START) is None
    assert cache.oldest["r"] == START - timedelta(days=1)


def test_the_oldest_request_looks_from_a_history_before_up_to_the_window_end() -> None:
    body = baseline.oldest_body(
        {"match_all": {}}, TimeFields("event.ingested", "@timestamp"), WINDOW
    )
    up_to = body["query"]["bool"]["filter"][1]["bool"]["should"]
    assert up_to[0] == {
        "range": {
            "event.ingested": {
                "gte": "2025-01-01T12:09:00.000Z",  # 7 days before the history start
                "lte": "2025-01-15T12:00:00.000Z",
                "format": "strict_date_optional_time",
            }
        }
    }
    assert set(body["aggs"]) == {"first_seen_override", "first_seen_fallback"}


def test_the_oldest_time_is_the_smaller_of_the_override_and_the_fallback() -> None:
    answer = {
        "aggregations": {
            "first_seen_override": {"min": {"value": 1736900000000.0}},
            "first_seen_fallback": {"min": {"value": 1736800000000.0}},
        }
    }
    assert baseline.parse_oldest(answer) == datetime.fromtimestamp(1736800000, UTC)
    assert baseline.parse_oldest({"aggregations": {"first_seen_override": {"value": None}}}) is None


def test_skipped_documents_lack_any_one_of_the_fields() -> None:
    body = skipped.skipped_body({"match_all": {}}, TimeFields("@timestamp"), WINDOW, ("a", "b"))
    lacking = body["query"]["bool"]["filter"][2]["bool"]
    assert lacking["minimum_should_match"] == 1
    assert [clause["bool"]["must_not"]["exists"]["field"] for clause in lacking["should"]] == [
        "a",
        "b",
    ]
    assert body["track_total_hits"] is True


def test_the_skipped_answer_gives_the_count_and_one_example() -> None:
    answer = {"hits": {"total": {"value": 3}, "hits": [{"_index": "logs-x", "_id": "d1"}]}}
    assert skipped.parse_skipped(answer).example() == "logs-x/d1"
    assert skipped.parse_skipped(answer).count == 3
    assert skipped.parse_skipped({"hits": {"total": {"value": 0}, "hits": []}}).example() is None
