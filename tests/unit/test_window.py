from datetime import UTC, datetime, timedelta

import pytest

from detector.errors import RuleError
from detector.query.window import TimeFields, Window, time_fields, window_for
from detector.times import from_millis, iso, to_millis, truncate_ms
from tests.support.rules import make_rule

NOW = datetime(2025, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)


def test_window_is_relative_to_the_same_now_truncated_to_milliseconds() -> None:
    window = window_for(make_rule(from_="now-9m"), NOW)
    now = datetime(2025, 1, 15, 12, 0, 0, 123000, tzinfo=UTC)
    assert window == Window(
        start=now - timedelta(minutes=9), end=now, history_start=now - timedelta(days=7)
    )
    assert window.history_length == timedelta(days=7) - timedelta(minutes=9)


def test_naive_now_is_utc() -> None:
    naive = datetime(2025, 1, 15, 12, 0)
    assert window_for(make_rule(), naive).end == datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


def test_rounding_in_date_math() -> None:
    window = window_for(make_rule(history_window_start="now-7d/d"), NOW)
    assert window.history_start == datetime(2025, 1, 8, tzinfo=UTC)


def test_history_must_reach_before_the_window() -> None:
    with pytest.raises(RuleError, match="must be earlier than from"):
        window_for(make_rule(from_="now-9m", history_window_start="now-5m"), NOW)
    with pytest.raises(RuleError, match="must be earlier"):
        window_for(make_rule(from_="now-9m", history_window_start="now-9m"), NOW)


def test_empty_window_is_an_error() -> None:
    with pytest.raises(RuleError, match="window is empty"):
        window_for(make_rule(from_="now-9m", to="now-10m"), NOW)


def test_time_fields() -> None:
    assert time_fields(make_rule()) == TimeFields("@timestamp")
    assert time_fields(make_rule(timestamp_override="@timestamp")) == TimeFields("@timestamp")
    assert time_fields(make_rule(timestamp_override="event.ingested")) == TimeFields(
        "event.ingested", "@timestamp"
    )
    disabled = make_rule(
        timestamp_override="event.ingested", timestamp_override_fallback_disabled=True
    )
    assert time_fields(disabled) == TimeFields("event.ingested")


def test_millisecond_conversions_round_trip() -> None:
    moment = truncate_ms(NOW)
    assert from_millis(to_millis(moment)) == moment
    assert from_millis(1736942400123.0) == datetime(2025, 1, 15, 12, 0, 0, 123000, tzinfo=UTC)
    assert iso(moment) == "2025-01-15T12:00:00.123Z"
