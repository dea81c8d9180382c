"""Elasticsearch date math, as used by a rule's `from`, `to` and `history_window_start`.

An expression is an anchor followed by operations:

- anchor: `now`, or an ISO-8601 date followed by `||` when operations follow
  (`2024-01-01T00:00:00Z||-1d`), or a bare ISO-8601 date;
- `+N<unit>` / `-N<unit>` add or subtract (N defaults to 1, as in Elasticsearch);
- `/<unit>` rounds down to the start of the unit (or up to its last millisecond with
  `round_up=True`, as Elasticsearch does for the upper bound of a range).

Units: `y` years, `M` months, `w` weeks, `d` days, `h`/`H` hours, `m` minutes, `s` seconds.
Everything is computed in UTC; naive dates and a naive `now` are taken as UTC.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import UTC, datetime, timedelta

from detector.errors import DateMathError

UNITS = "yMwdhHms"
_OPERATION = re.compile(r"([+-])(\d*)([A-Za-z]?)|/([A-Za-z]?)")
_INTERVAL = re.compile(r"^([1-9]\d*)([smhd])$")
_INTERVAL_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_FIXED = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "H": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}


def parse(expr: str, now: datetime, *, round_up: bool = False) -> datetime:
    """The UTC datetime that the date-math expression `expr` denotes at `now`."""
    text = expr.strip()
    if not text:
        raise DateMathError("empty date-math expression")
    if text.startswith("now"):
        anchor, math = _as_utc(now), text[3:]
    elif "||" in text:
        date_text, math = text.split("||", 1)
        anchor = _parse_date(date_text, expr)
    else:
        return _parse_date(text, expr)
    return _apply(anchor, math, expr, round_up)


def parse_interval(text: str) -> timedelta:
    """A rule's schedule interval (`30s`, `5m`, `1h`, `1d`) as a timedelta."""
    match = _INTERVAL.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise DateMathError(
            f"invalid interval {text!r}: expected a positive whole number followed by "
            "s, m, h or d (e.g. '5m')"
        )
    return timedelta(seconds=int(match.group(1)) * _INTERVAL_SECONDS[match.group(2)])


def parse_duration(value: str | float) -> timedelta:
    """A duration setting or option: a number of seconds (`30`, `0.5`), or a number followed by
    s, m, h or d (`10s`, `5m`, `24h`, `1.5h`, `7d`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration_seconds(value.strip())
    else:
        raise DateMathError(f"invalid duration {value!r}")
    if not math.isfinite(seconds):
        raise DateMathError(f"invalid duration {value!r}: not a finite number")
    return timedelta(seconds=seconds)


def _duration_seconds(text: str) -> float:
    match = _DURATION.match(text)
    if match:
        return float(match.group(1)) * _INTERVAL_SECONDS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        raise DateMathError(
            f"invalid duration {text!r}: expected seconds (e.g. '30') or a number followed by "
            "s, m, h or d (e.g. '10s', '5m', '24h')"
        ) from None


def format_duration(duration: timedelta) -> str:
    """A duration in the largest of d, h, m, s that holds it whole (`30s`, `15m`, `24h`)."""
    seconds = duration.total_seconds()
    for unit in "dhm":
        size = _INTERVAL_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_date(text: str, expr: str) -> datetime:
    candidate = text.strip()
    if candidate.endswith(("z", "Z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        return _as_utc(datetime.fromisoformat(candidate))
    except ValueError:
        raise DateMathError(
            f"invalid date-math expression {expr!r}: {text!r} is neither 'now' nor an ISO-8601 date"
        ) from None


def _apply(anchor: datetime, math: str, expr: str, round_up: bool) -> datetime:
    result, position = anchor, 0
    while position < len(math):
        match = _OPERATION.match(math, position)
        if match is None:
            raise DateMathError(
                f"invalid date-math expression {expr!r}: unexpected {math[position:]!r} "
                "(expected +N<unit>, -N<unit> or /<unit>)"
            )
        sign, amount, unit, rounding = match.groups()
        if rounding is not None:
            result = _round(result, _unit(rounding, expr), round_up)
        else:
            count = int(amount) if amount else 1
            result = _add(result, count if sign == "+" else -count, _unit(unit, expr), expr)
        position = match.end()
    return result


def _unit(unit: str, expr: str) -> str:
    if not unit or unit not in UNITS:
        shown = repr(unit) if unit else "nothing"
        raise DateMathError(
            f"invalid date-math expression {expr!r}: unit {shown} is not one of {', '.join(UNITS)}"
        )
    return unit


def _add(value: datetime, count: int, unit: str, expr: str) -> datetime:
    try:
        if unit == "y":
            return _add_months(value, 12 * count)
        if unit == "M":
            return _add_months(value, count)
        return value + count * _FIXED[unit]
    except OverflowError:
        raise DateMathError(f"date-math expression {expr!r} is out of range") from None


def _add_months(value: datetime, months: int) -> datetime:
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError
    day = min(value.day, calendar.monthrange(year, month + 1)[1])
    return value.replace(year=year, month=month + 1, day=day)


def _round(value: datetime, unit: str, round_up: bool) -> datetime:
    start = _floor(value, unit)
    if not round_up:
        return start
    return _add(start, 1, unit, unit) - timedelta(milliseconds=1)


def _floor(value: datetime, unit: str) -> datetime:
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "y":
        return day.replace(month=1, day=1)
    if unit == "M":
        return day.replace(day=1)
    if unit == "w":
        return day - timedelta(days=day.weekday())
    if unit == "d":
        return day
    if unit in "hH":
        return value.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return value.replace(second=0, microsecond=0)
    return value.replace(microsecond=0)
