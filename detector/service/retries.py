"""A failed scheduled execution is retried within its interval, before the rule's next slot.

A transient failure (bulk items rejected, a request left unanswered, a 429 that outlasted the
client's own retries) would otherwise wait for the next firing: alerts one or more intervals
late. Each retry is a new execution (its own id and execution-log document), so the window's
attempts are counted as before (`DETECTOR_WINDOW_ATTEMPTS`, across restarts and replicas) and
the window is given up and recorded the same way; the retries only come sooner, with
exponential backoff (tenacity), as long as the next one can start before the deadline (the next
slot) and the rule may still run here (its lease).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tenacity import RetryCallState, Retrying, retry_if_result, wait_exponential

from detector.results import ExecutionResult

log = logging.getLogger(__name__)

# Seconds before the first retry; the wait doubles up to `RETRY_MAX`.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0

# One attempt's result and whether the catch-up goes on after it.
Step = tuple[ExecutionResult, bool]


def within_interval(
    attempt: Callable[[int], Step], deadline: datetime, may_start: Callable[[], bool]
) -> Step:
    """`attempt(1)`, then `attempt(2)`, ... while it failed without its window being given
    up, and the next one can start before `deadline` while `may_start()`; the last step."""
    numbers = itertools.count(1)

    def stop(state: RetryCallState) -> bool:
        upcoming = datetime.now(UTC) + timedelta(seconds=state.upcoming_sleep)
        return upcoming >= deadline or not may_start()

    retrying = Retrying(
        retry=retry_if_result(_failed),
        wait=wait_exponential(multiplier=RETRY_FIRST, max=RETRY_MAX),
        stop=stop,
        before_sleep=_announce,
        retry_error_callback=_last,
    )
    step: Step = retrying(lambda: attempt(next(numbers)))
    return step


def _failed(step: Step) -> bool:
    """Failed on a transient error, and its window not given up (that moves the catch-up on);
    a rejected query fails again at once, so it waits for the next slot."""
    result, goes_on = step
    return not result.succeeded and result.transient and not goes_on


def _last(state: RetryCallState) -> Step:
    assert state.outcome is not None  # called after an attempt
    step: Step = state.outcome.result()
    return step


def _announce(state: RetryCallState) -> None:
    assert state.outcome is not None
    result, _ = state.outcome.result()
    log.warning(
        "rule %s: retrying the window at %s in %.1f s (before its next slot)",
        result.rule_id,
        result.now.isoformat(),
        state.upcoming_sleep,
        extra={"rule_id": result.rule_id, "retry_in_seconds": round(state.upcoming_sleep, 3)},
    )
