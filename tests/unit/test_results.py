"""One status vocabulary for an execution: the result, its summary line and its log document."""

from __future__ import annotations

from datetime import UTC, datetime

from detector.execution_log.documents import status_of
from detector.results import ExecutionResult

NOW = datetime(2025, 1, 15, 12, 5, tzinfo=UTC)


def test_a_partial_failure_is_a_success_that_says_so() -> None:
    result = ExecutionResult("r1", "Rule", NOW, "partial failure", overflow=3)
    assert result.succeeded
    assert "r1 (Rule) at 2025-01-15T12:05:00.000Z: partial failure: 0 term(s)" in result.summary()
    assert result.to_json()["status"] == "partial failure" == status_of(result)


def test_a_plain_success_has_no_status_word_in_its_summary() -> None:
    result = ExecutionResult("r1", "Rule", NOW, "succeeded")
    assert result.summary().startswith("r1 (Rule) at 2025-01-15T12:05:00.000Z: 0 term(s)")


def test_a_failure_is_not_a_success() -> None:
    result = ExecutionResult("r1", "Rule", NOW, "failed", error="boom")
    assert not result.succeeded
    assert result.summary().endswith(": FAILED: boom")
