"""Failed windows and clock skew, as the execution log records them (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detector.execution_log import documents
from detector.results import ExecutionRef, ExecutionResult
from detector.schedule.failed_windows import (
    FailedWindow,
    Skew,
    covered,
    failed_window_doc,
    is_skewed,
    parse_failed_window,
)

T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
WINDOW = FailedWindow("r1", "Rule one", T, T - 9 * M, T, 3, "boom", "e-1")


def test_a_failed_window_names_its_window_and_the_backfill_that_covers_it() -> None:
    assert WINDOW.message() == (
        "window [2025-01-15T11:51:00.000Z, 2025-01-15T12:00:00.000Z] (now "
        "2025-01-15T12:00:00.000Z) failed 3 time(s) and is skipped so newer windows run; it is "
        "recorded as a failed window to backfill: detector backfill --rule r1 --start "
        "2025-01-15T12:00:00.000Z --end 2025-01-15T12:00:00.000Z"
    )
    assert WINDOW.doc_id == "failed-window:r1:2025-01-15T12:00:00.000Z"


def test_a_failed_window_document_round_trips_and_cuts_a_huge_error() -> None:
    huge = FailedWindow("r1", "Rule one", T, T - 9 * M, T, 3, "x" * 40_000, "e-1")
    doc = failed_window_doc(huge, T)
    assert doc["failed_window"]["backfilled"] is None
    assert len(doc["execution"]["error"]) < 1100
    back = parse_failed_window(doc)
    assert (back.now, back.start, back.end, back.attempts) == (T, T - 9 * M, T, 3)


def test_a_window_is_covered_only_by_windows_that_reach_over_all_of_it() -> None:
    assert covered(WINDOW, [(T - 9 * M, T)])
    assert covered(WINDOW, [(T - 4 * M, T + M), (T - 10 * M, T - 4 * M)])
    assert not covered(WINDOW, [(T - 10 * M, T - 5 * M), (T - 4 * M, T)])  # a hole
    assert not covered(WINDOW, [(T - 8 * M, T)])
    assert not covered(WINDOW, [])


def test_only_a_checkpoint_after_the_clock_is_skew() -> None:
    assert is_skewed(T + M, T)
    assert not is_skewed(T, T)
    assert not is_skewed(None, T)
    skew = Skew("r1", T + 4 * M, T, T - 5 * M)
    assert skew.seconds == 240
    assert "240 s ahead" in skew.message()
    assert skew.to_doc()["trusted"] == "2025-01-15T11:55:00.000Z"


def test_an_interrupted_execution_says_its_count_comes_from_the_alerts_index() -> None:
    pending = ExecutionResult("r1", "Rule one", T, documents.RUNNING)
    started = documents.running_doc(
        pending, execution=ExecutionRef("scheduled", "e-1"), started=T, interval="5m"
    )
    assert started["execution"]["status"] == "running"
    assert started["execution"]["ended"] is None
    done = documents.interrupted_doc(started, 7, T + M)
    assert done["execution"]["status"] == "failed"
    assert done["execution"]["ended"] == "2025-01-15T12:01:00.000Z"
    assert done["metrics"]["alerts_written"] == 7
    assert done["metrics"]["alerts_counted"] == "alerts index"
    assert started["execution"]["status"] == "running"  # the original is left alone
