"""The catch-up maths: which scheduled executions are due, and what is left as a gap."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.schedule.catchup import Gap, backfill_times, due_executions, leaves_no_hole

T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=5)
DAY = timedelta(hours=24)


def minutes(*values: float) -> tuple[datetime, ...]:
    return tuple(T + timedelta(minutes=value) for value in values)


def test_first_run_executes_now_only() -> None:
    assert due_executions(None, T, EVERY, DAY).nows == (T,)
    assert due_executions(None, T, EVERY, DAY).gap is None


def test_on_time_executes_now_only() -> None:
    due = due_executions(T, T + EVERY, EVERY, DAY)
    assert due.nows == (T + EVERY,)
    assert due.missed == 0
    assert due.gap is None


def test_a_little_late_or_early_is_not_a_missed_execution() -> None:
    assert due_executions(T, T + EVERY + timedelta(seconds=20), EVERY, DAY).nows == minutes(
        5 + 1 / 3
    )
    assert due_executions(T, T + timedelta(minutes=4, seconds=59), EVERY, DAY).nows == minutes(
        4 + 59 / 60
    )
    # a restart two minutes after the last execution: one execution, no catch-up
    assert due_executions(T, T + timedelta(minutes=2), EVERY, DAY).nows == minutes(2)


def test_one_missed_execution_is_run_first() -> None:
    due = due_executions(T, T + 2 * EVERY, EVERY, DAY)
    assert due.nows == minutes(5, 10)
    assert due.missed == 1


def test_many_missed_executions_one_interval_apart_oldest_first() -> None:
    due = due_executions(T, T + timedelta(minutes=45), EVERY, DAY)
    assert due.nows == minutes(5, 10, 15, 20, 25, 30, 35, 40, 45)
    assert due.gap is None


def test_missed_executions_keep_the_current_time_when_off_the_grid() -> None:
    due = due_executions(T, T + timedelta(minutes=17), EVERY, DAY)
    assert due.nows == minutes(2, 7, 12, 17)


def test_beyond_the_maximum_is_a_gap_and_the_last_maximum_is_covered() -> None:
    current = T + timedelta(hours=30)
    due = due_executions(T, current, EVERY, DAY)
    assert due.gap == Gap(T, current - DAY)
    assert due.gap.seconds == 6 * 3600
    assert len(due.nows) == 288  # 24 h of 5-minute executions
    assert due.nows[-1] == current
    assert due.nows[0] == current - DAY + EVERY
    assert all(b - a == EVERY for a, b in itertools.pairwise(due.nows))


def test_exactly_the_maximum_is_no_gap() -> None:
    due = due_executions(T, T + DAY, EVERY, DAY)
    assert due.gap is None
    assert due.nows[0] == T + EVERY


def test_clock_going_backwards_runs_nothing() -> None:
    due = due_executions(T, T - timedelta(minutes=3), EVERY, DAY)
    assert due.nows == ()
    assert due.behind
    assert due_executions(T, T, EVERY, DAY).behind


def test_a_zero_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        due_executions(T, T, timedelta(0), DAY)


@given(
    elapsed=st.integers(min_value=1, max_value=3 * 24 * 3600),
    interval=st.sampled_from([30, 60, 300, 3600]),
    maximum=st.sampled_from([3600, 24 * 3600]),
)
def test_executions_never_leave_a_hole_beyond_the_reported_gap(
    elapsed: int, interval: int, maximum: int
) -> None:
    current = T + timedelta(seconds=elapsed)
    every = timedelta(seconds=interval)
    due = due_executions(T, current, every, timedelta(seconds=maximum))
    covered_from = due.gap.end if due.gap else T
    starts = [covered_from, *due.nows]
    assert due.nows[-1] == current
    assert all(b - a <= every * 1.1 for a, b in itertools.pairwise(starts))
    assert all(b > a for a, b in itertools.pairwise(starts))
    assert current - covered_from <= timedelta(seconds=maximum)


def test_a_single_execution_moves_the_checkpoint_only_without_a_hole() -> None:
    assert leaves_no_hole(None, T, EVERY)
    assert leaves_no_hole(T, T + EVERY, EVERY)
    assert not leaves_no_hole(T, T + 3 * EVERY, EVERY)
    assert not leaves_no_hole(T, T - EVERY, EVERY)


def test_backfill_times_from_start_to_end_included() -> None:
    assert backfill_times(T, T + timedelta(minutes=12), EVERY) == list(minutes(0, 5, 10))
    assert backfill_times(T, T + timedelta(minutes=10), EVERY) == list(minutes(0, 5, 10))
    assert backfill_times(T, T, EVERY) == [T]
    assert backfill_times(T, T - EVERY, EVERY) == []
    assert len(backfill_times(T, T + DAY, EVERY)) == 289
