"""`detector health`: the last execution and the last success, the baseline notes; red on
failures in a row, failed windows, a lagging checkpoint and clock skew (pure: the execution-log
documents are built here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from detector.execution_log import health
from detector.execution_log.health import RuleRuns
from detector.schedule.failed_windows import FailedWindow
from detector.times import iso

T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
MAX = timedelta(minutes=15)
EVERY = timedelta(minutes=5)


def execution(status: str, minutes_ago: float, error: str | None = None) -> dict[str, Any]:
    ended = iso(T - timedelta(minutes=minutes_ago))
    return {"execution": {"status": status, "ended": ended, "error": error}}


def runs(*recent: dict[str, Any], **changes: Any) -> RuleRuns:
    successes = [doc for doc in recent if doc["execution"]["status"] != "failed"]
    values: dict[str, Any] = {
        "recent": recent,
        "checkpoint": T - timedelta(minutes=1),
        "interval": EVERY,
    }
    values.update(changes)
    last = recent[0] if recent else None
    return RuleRuns("r1", "Rule one", last, successes[0] if successes else None, **values)


# --- the last execution and the last success (execution-log documents as they are read) ---


def runs_of(last: dict[str, object] | None, success: dict[str, object] | None) -> RuleRuns:
    return RuleRuns("r1", "Rule one", last, success)


def ended_at(status: str, ended: datetime, error: str | None = None) -> dict[str, object]:
    return {"execution": {"status": status, "ended": iso(ended), "error": error}}


def test_health_ok_with_a_recent_success() -> None:
    ok = ended_at("succeeded", T - timedelta(minutes=3))
    assert health.problem(runs_of(ok, ok), T, MAX) is None
    partial = ended_at("partial failure", T - timedelta(minutes=3))
    assert health.problem(runs_of(partial, partial), T, MAX) is None


def test_health_never_ran() -> None:
    assert health.problem(runs_of(None, None), T, MAX) == "rule r1 (Rule one): never ran"


def test_health_last_run_failed() -> None:
    failed = ended_at("failed", T - timedelta(minutes=1), "index_not_found")
    old = ended_at("succeeded", T - timedelta(hours=1))
    line = health.problem(runs_of(failed, old), T, MAX)
    assert line == (
        "rule r1 (Rule one): last execution failed at 2025-01-15T11:59:00.000Z: index_not_found "
        "(last success at 2025-01-15T11:00:00Z, 3600 s ago)"
    )
    never = health.problem(runs_of(failed, None), T, MAX)
    assert never is not None
    assert never.endswith("(never succeeded)")


def test_health_a_recent_failure_after_a_recent_success_is_red_by_default() -> None:
    failed = ended_at("failed", T - timedelta(minutes=1), "boom")
    ok = ended_at("succeeded", T - timedelta(minutes=6))
    line = health.problem(runs_of(failed, ok), T, MAX)
    assert line == (
        "rule r1 (Rule one): last execution failed at 2025-01-15T11:59:00.000Z: boom "
        "(last success at 2025-01-15T11:54:00Z, 360 s ago)"
    )


def test_health_success_too_old() -> None:
    old = ended_at("succeeded", T - timedelta(minutes=20))
    assert health.problems([runs_of(old, old)], T, MAX) == [
        "rule r1 (Rule one): last success at 2025-01-15T11:40:00Z, 1200 s ago "
        "(more than the 900 s allowed)"
    ]


def test_health_cuts_a_huge_error_with_a_marker() -> None:
    failed = ended_at("failed", T - timedelta(minutes=1), "x" * 40_000)
    line = health.problem(runs_of(failed, None), T, MAX)
    assert line is not None
    assert len(line) < 400
    assert "x" * 200 + "... [39800 more characters]" in line


def test_health_notes_a_baseline_that_does_not_cover_the_history() -> None:
    young = {
        **ended_at("succeeded", T),
        "baseline": {"coverage": 0.5, "since": "2025-01-12T00:00:00.000Z", "mature": False},
    }
    held = {**young, "baseline": {**young["baseline"], "mode": "hold"}}  # type: ignore[dict-item]
    mature = {**young, "baseline": {"coverage": 1.0, "mature": True}}
    assert health.baseline_notes([runs_of(young, young)]) == [
        "rule r1 (Rule one): baseline covers 50% of its history (data since "
        "2025-01-12T00:00:00.000Z); alerts carry it"
    ]
    assert health.baseline_notes([runs_of(held, held)])[0].endswith("new terms are held")
    assert health.baseline_notes([runs_of(mature, mature), runs_of(None, None)]) == []


# --- failures in a row, failed windows, a lagging checkpoint, clock skew -------------------


def test_healthy_when_the_last_execution_succeeded_and_the_checkpoint_keeps_up() -> None:
    assert health.problem(runs(execution("succeeded", 1)), T, MAX) is None


def test_one_failure_is_tolerated_when_two_in_a_row_are_allowed() -> None:
    recent = (execution("failed", 1, "boom"), execution("succeeded", 6))
    assert health.problem(runs(*recent), T, MAX, max_failures=2) is None


def test_two_failures_in_a_row_are_red_when_two_are_allowed() -> None:
    recent = (execution("failed", 1, "boom"), execution("failed", 6, "bang"))
    line = health.problem(runs(*recent), T, MAX, max_failures=2)
    assert line is not None
    assert ": last 2 executions failed, the last at 2025-01-15T11:59:00.000Z: boom" in line


def test_a_failed_window_not_backfilled_is_red_and_names_the_backfill() -> None:
    window = FailedWindow("r1", "Rule one", T - EVERY, T - 2 * EVERY, T - EVERY, 3, "boom")
    line = health.problem(runs(execution("succeeded", 1), failed_windows=(window,)), T, MAX)
    assert line == (
        "rule r1 (Rule one): 1 failed window(s) not backfilled, the oldest "
        "[2025-01-15T11:50:00Z, 2025-01-15T11:55:00Z]: detector backfill --rule r1 "
        "--start 2025-01-15T11:55:00.000Z --end 2025-01-15T11:55:00.000Z"
    )


def test_a_checkpoint_more_than_two_intervals_behind_is_red() -> None:
    lagging = runs(execution("succeeded", 1), checkpoint=T - timedelta(minutes=11))
    line = health.problem(lagging, T, MAX)
    assert line == (
        "rule r1 (Rule one): checkpoint 2025-01-15T11:49:00Z is 660 s behind the clock "
        "(more than 630 s)"
    )
    keeping_up = runs(execution("succeeded", 1), checkpoint=T - timedelta(minutes=10))
    assert health.problem(keeping_up, T, MAX) is None


def test_a_checkpoint_ahead_of_the_clock_is_skew() -> None:
    ahead = runs(execution("succeeded", 1), checkpoint=T + timedelta(minutes=4))
    line = health.problem(ahead, T, MAX)
    assert line is not None
    assert line.endswith("clock skew: checkpoint 2025-01-15T12:04:00Z is 240 s ahead of the clock")


def test_an_execution_that_ended_in_the_future_is_skew() -> None:
    line = health.problem(runs(execution("succeeded", -3)), T, MAX)
    assert line is not None
    assert "clock skew: the last execution ended at 2025-01-15T12:03:00.000Z" in line


def test_skew_found_by_the_last_execution_is_red_until_a_clean_one() -> None:
    found = {**execution("partial failure", 1), "skew": {"seconds": 240.0}}
    line = health.problem(runs(found), T, MAX)
    assert line is not None
    assert line.endswith("clock skew: the last execution found its checkpoint 240 s ahead")
    assert health.problem(runs(execution("succeeded", 1), found), T, MAX) is None


def test_several_reasons_share_one_short_line() -> None:
    window = FailedWindow("r1", "Rule one", T - EVERY, T - 2 * EVERY, T - EVERY, 3, "x" * 40_000)
    failing = runs(
        execution("failed", 1, "y" * 40_000),
        failed_windows=(window,),
        checkpoint=T - timedelta(hours=1),
    )
    line = health.problem(failing, T, MAX)
    assert line is not None
    assert len(line) < 700
    assert line.count("; ") == 2
    assert "x" * 20 not in line


def test_no_index_matched_is_a_note_unless_data_is_required() -> None:
    empty = execution("partial failure", 1)
    empty["execution"]["no_index_matched"] = True
    found = runs(empty)
    assert health.problem(found, T, MAX, require_data=False) is None
    (note,) = health.no_index_notes([found, runs(execution("succeeded", 1))])
    assert note == (
        "rule r1 (Rule one): its index patterns matched no index at its last execution "
        "(2025-01-15T11:59:00.000Z): nothing is searched"
    )
    line = health.problem(found, T, MAX, require_data=True)
    assert line == note
