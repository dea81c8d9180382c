"""How the client retries: backoff curves, deadlines and the retry log line (tenacity).

Only transient failures are retried (`detector.errors.UnavailableError`: connection errors,
timeouts, 429 and 502/503/504), with exponential backoff and jitter, bounded both in attempts
and in seconds, so a flaky cluster slows an execution down but never hangs it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from tenacity import RetryCallState, wait_exponential, wait_random
from tenacity.wait import wait_base

from detector.errors import TlsError, UnavailableError


def backoff(max_seconds: float) -> wait_base:
    """Exponential backoff from 0.2 s up to `max_seconds`, plus up to 1 s of jitter.

    (`wait_exponential_jitter(initial=...)` warns since tenacity 9.2, and its replacement
    argument `multiplier` does not exist before it.)
    """
    return wait_exponential(multiplier=0.2, max=max_seconds) + wait_random(0, 1)


def until(deadline: float, wait: wait_base) -> Callable[[RetryCallState], float]:
    """`wait`, cut so that no sleep ends after `deadline` (a `time.monotonic()` value)."""

    def capped(state: RetryCallState) -> float:
        return max(0.0, min(float(wait(state)), deadline - time.monotonic()))

    return capped


def log_retry(
    log: logging.Logger, what: str, level: int = logging.INFO
) -> Callable[[RetryCallState], None]:
    """A `before_sleep` hook: one line per retry, with the reason and the delay, so a flaky
    cluster shows in the logs before an execution fails."""

    def log_it(state: RetryCallState) -> None:
        outcome = state.outcome
        reason = outcome.exception() if outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.log(
            level,
            "%s: %s; attempt %d failed, retrying in %.1f s",
            what,
            reason,
            state.attempt_number,
            delay,
            extra={"retry_attempt": state.attempt_number, "retry_in_seconds": round(delay, 3)},
        )

    return log_it


def worth_waiting_for(exc: BaseException) -> bool:
    """Unreachable, timed out or not yellow yet; not a TLS failure (see `Elastic.wait_ready`)."""
    return isinstance(exc, UnavailableError) and not isinstance(exc, TlsError)


def item_backoff(retry: int) -> float:
    """Seconds before the `retry`-th resend of bulk items refused with 429: `backoff`'s curve
    (0.2 s doubling up to 10 s, plus up to 1 s of jitter)."""
    return float(min(0.2 * 2 ** (retry - 1), 10.0) + random.uniform(0, 1))
