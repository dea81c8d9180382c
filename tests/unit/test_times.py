"""Time helpers: ISO-8601 in and out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from detector.times import parse_iso


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-15T12:00:00Z", datetime(2025, 1, 15, 12, tzinfo=UTC)),
        ("2021-11-11T01:02:03.123456789Z", datetime(2021, 11, 11, 1, 2, 3, 123456, tzinfo=UTC)),
        ("2025-01-15T13:00:00.5+01:00", datetime(2025, 1, 15, 12, 0, 0, 500000, tzinfo=UTC)),
        ("garbage", None),
        (12, None),
    ],
)
def test_parse_iso(text: Any, expected: datetime | None) -> None:
    assert parse_iso(text) == expected
