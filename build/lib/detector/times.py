"""Time helpers shared by the whole detector: UTC, milliseconds, ISO-8601. Pure.

Elasticsearch `date` fields hold milliseconds since the epoch, and Kibana writes alert dates as
ISO-8601 UTC with milliseconds and `Z`; every time the detector sends or writes goes through
these few functions, so all of them agree to the millisecond.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def truncate_ms(value: datetime) -> datetime:
    """`value` without its sub-millisecond part."""
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def to_millis(value: datetime) -> int:
    """Milliseconds since the epoch (naive values are taken as UTC)."""
    return (as_utc(value) - _EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: float) -> datetime:
    """The UTC datetime of an epoch-millisecond value (as aggregations return it)."""
    return _EPOCH + timedelta(milliseconds=int(millis))


# An alert writes the execution's few times several times over: cache their text.
@functools.lru_cache(maxsize=4096)
def iso(value: datetime) -> str:
    """`2025-01-15T12:00:00.000Z`: ISO-8601 UTC with milliseconds, as Kibana writes alert dates
    and `strict_date_optional_time` parses them."""
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: Any) -> datetime | None:
    """An ISO-8601 date string as an aware UTC datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # trim nanoseconds to microseconds for fromisoformat
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:digits][:6] + rest[digits:]
        text = f"{head}.{rest}"
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None
