"""A failed scheduled execution is retried within its interval, never past its next slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detector.results import FAILED, SUCCEEDED, ExecutionResult
from detector.service.retries import Step, within_interval

T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


def outcome(status: str, goes_on: bool = False, transient: bool = True) -> Step:
    return ExecutionResult("r1", "Rule one", T, status, transient=transient), goes_on


def test_a_failure_is_retried_until_an_attempt_succeeds() -> None:
    answers = iter([outcome(FAILED), outcome(SUCCEEDED, True)])
    numbers: list[int] = []

    def attempt(number: int) -> Step:
        numbers.append(number)
        return next(answers)

    result, goes_on = within_interval(
        attempt, datetime.now(UTC) + timedelta(minutes=1), lambda: True
    )
    assert result.succeeded and goes_on
    assert numbers == [1, 2]


def test_a_failure_that_is_not_transient_waits_for_the_next_slot() -> None:
    calls: list[int] = []

    def attempt(number: int) -> Step:
        calls.append(number)
        return outcome(FAILED, transient=False)  # e.g. the query was rejected (400)

    result, goes_on = within_interval(
        attempt, datetime.now(UTC) + timedelta(minutes=1), lambda: True
    )
    assert (calls, result.status, goes_on) == ([1], FAILED, False)


def test_a_window_given_up_is_not_retried() -> None:
    calls: list[int] = []

    def attempt(number: int) -> Step:
        calls.append(number)
        return outcome(FAILED, goes_on=True)  # recorded as a failed window: the catch-up goes on

    within_interval(attempt, datetime.now(UTC) + timedelta(minutes=1), lambda: True)
    assert calls == [1]


def test_no_retry_would_start_after_the_next_slot() -> None:
    calls: list[int] = []

    def attempt(number: int) -> Step:
        calls.append(number)
        return outcome(FAILED)

    result, goes_on = within_interval(
        attempt, datetime.now(UTC) + timedelta(seconds=2.5), lambda: True
    )
    assert calls == [1, 2]  # waits 1 s, then the next wait (2 s) would end past the deadline
    assert not result.succeeded and not goes_on


def test_no_retry_once_the_rule_may_not_run_here() -> None:
    calls: list[int] = []

    def attempt(number: int) -> Step:
        calls.append(number)
        return outcome(FAILED)

    within_interval(attempt, datetime.now(UTC) + timedelta(minutes=1), lambda: False)
    assert calls == [1]


def test_a_catch_up_of_the_past_is_not_retried_in_place() -> None:
    calls: list[int] = []

    def attempt(number: int) -> Step:
        calls.append(number)
        return outcome(FAILED)

    within_interval(attempt, T, lambda: True)  # its next slot is long gone
    assert calls == [1]
