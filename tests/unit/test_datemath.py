from datetime import UTC, datetime, timedelta, timezone

import pytest

from detector.datemath import parse, parse_interval
from detector.errors import DateMathError

NOW = datetime(2024, 3, 15, 13, 45, 30, 123456, tzinfo=UTC)


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_now_is_now() -> None:
    assert parse("now", NOW) == NOW


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("now-7d", NOW - timedelta(days=7)),
        ("now-9m", NOW - timedelta(minutes=9)),
        ("now+1h", NOW + timedelta(hours=1)),
        ("now+1H", NOW + timedelta(hours=1)),
        ("now-30s", NOW - timedelta(seconds=30)),
        ("now-2w", NOW - timedelta(weeks=2)),
        ("now-d", NOW - timedelta(days=1)),
    ],
)
def test_fixed_units(expr: str, expected: datetime) -> None:
    assert parse(expr, NOW) == expected


def test_months_and_years_are_calendar_units() -> None:
    assert parse("now-1M", NOW) == NOW.replace(month=2)
    assert parse("now+1y", NOW) == NOW.replace(year=2025)


def test_month_arithmetic_clamps_to_the_last_day() -> None:
    assert parse("now-1M", at(2024, 3, 31)) == at(2024, 2, 29)
    assert parse("now+1y", at(2024, 2, 29)) == at(2025, 2, 28)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("y", at(2024, 1, 1)),
        ("M", at(2024, 3, 1)),
        ("w", at(2024, 3, 11)),  # a Monday
        ("d", at(2024, 3, 15)),
        ("h", at(2024, 3, 15, 13)),
        ("m", at(2024, 3, 15, 13, 45)),
        ("s", at(2024, 3, 15, 13, 45, 30)),
    ],
)
def test_rounding_down(unit: str, expected: datetime) -> None:
    assert parse(f"now/{unit}", NOW) == expected


def test_rounding_up_gives_the_last_millisecond_of_the_unit() -> None:
    expected = datetime(2024, 3, 15, 23, 59, 59, 999000, tzinfo=UTC)
    assert parse("now/d", NOW, round_up=True) == expected


def test_chains_apply_left_to_right() -> None:
    assert parse("now-1d/d+2h", NOW) == at(2024, 3, 14, 2)


def test_absolute_dates() -> None:
    assert parse("2024-01-01T00:00:00Z", NOW) == at(2024, 1, 1)
    assert parse("2024-01-01", NOW) == at(2024, 1, 1)
    assert parse("2024-01-01T02:00:00+02:00", NOW) == at(2024, 1, 1)


def test_anchored_absolute_date_with_math() -> None:
    assert parse("2024-01-01T00:00:00Z||-1d", NOW) == at(2023, 12, 31)
    assert parse("2024-01-01||+1M/M", NOW) == at(2024, 2, 1)


def test_results_are_utc_aware() -> None:
    paris = timezone(timedelta(hours=1))
    result = parse("now", datetime(2024, 1, 1, 1, tzinfo=paris))
    assert result.tzinfo == UTC
    assert result == at(2024, 1, 1)


def test_naive_now_is_taken_as_utc() -> None:
    assert parse("now-1d", datetime(2024, 1, 2)) == at(2024, 1, 1)


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "now-",
        "now-7",
        "now-7x",
        "now/",
        "now/q",
        "now-7dd",
        "yesterday",
        "now-7d junk",
        "x||-1d",
    ],
)
def test_invalid_expressions_raise_and_name_the_value(expr: str) -> None:
    with pytest.raises(DateMathError) as info:
        parse(expr, NOW)
    if expr:
        assert repr(expr) in str(info.value)


def test_out_of_range_is_an_error() -> None:
    with pytest.raises(DateMathError, match="out of range"):
        parse("now+10000y", NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
    ],
)
def test_parse_interval(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "0m", "-5m", "5M", "1w", "5 m", "1.5h"])
def test_invalid_intervals_raise_and_name_the_value(text: str) -> None:
    with pytest.raises(DateMathError, match=f"invalid interval {text!r}"):
        parse_interval(text)
