"""`detector run`: every rule on its own interval, in a boring APScheduler `BlockingScheduler`.

- The first execution happens at start (`next_run_time=now`); later ones fire on the rule's
  grid (multiples of its interval since the epoch, plus a small offset), the same on every
  replica, whatever fired before: `nudge(rule_id)` makes a rule run now (a replica that just
  took its lease over) and its next firing is still the next grid slot (`GridTrigger`).
- At most one execution per rule at a time (`max_instances=1`); runs missed while one was still
  going are coalesced into one (`coalesce=True`) instead of piling up.
- SIGTERM and SIGINT let the running executions finish, then `run` returns 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger

from detector.datemath import parse_interval
from detector.rules import Rule
from detector.schedule.leases import grid_floor

log = logging.getLogger(__name__)

RunRule = Callable[[Rule], object]
Nudge = Callable[[str], None]
# Fire this long after each grid time (at most), so a firing is never early in the wrong cell.
MAX_OFFSET = timedelta(seconds=2)


class GridTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """Fires at every grid slot of `interval` plus `offset`.

    APScheduler's `IntervalTrigger` counts from the previous firing: a rule fired at start or
    nudged when its lease was taken would then fire at that time + k·interval, up to an
    interval after its slots. This one computes each firing from the grid alone.
    """

    def __init__(self, interval: timedelta, offset: timedelta) -> None:
        self.interval, self.offset = interval, offset

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first slot + offset after the previous firing (at or after `now` if none)."""
        if previous_fire_time is None:
            first = grid_floor(now - self.offset, self.interval) + self.offset
            return first if first >= now else first + self.interval
        return grid_floor(previous_fire_time - self.offset, self.interval) + (
            self.interval + self.offset
        )

    def __str__(self) -> str:
        return f"grid[{self.interval}+{self.offset}]"


def offset_of(interval: timedelta) -> timedelta:
    """How long after each grid slot the rule fires."""
    return min(interval / 10, MAX_OFFSET)


def build_scheduler(
    rules: Sequence[Rule], run_rule: RunRule, workers: int = 2
) -> BlockingScheduler:
    """A scheduler with one interval job per rule, the first run due now, and `workers` threads
    shared by the rules (DETECTOR_RULE_CONCURRENCY), so 49 rules firing together put at most
    `workers` executions on the cluster at once; the others wait their turn (a firing late by
    up to an interval still runs: `misfire_grace_time`)."""
    executor = ThreadPoolExecutor(max_workers=max(1, min(workers, len(rules))))
    scheduler = BlockingScheduler(executors={"default": executor}, timezone=UTC)
    now = datetime.now(UTC)
    for rule in rules:
        interval = parse_interval(rule.interval)
        scheduler.add_job(
            run_rule,
            trigger=GridTrigger(interval, offset_of(interval)),
            args=[rule],
            id=rule.rule_id,
            name=rule.name,
            next_run_time=now,
            coalesce=True,
            max_instances=1,
            # A run late by up to a whole interval still happens (once); later ones are coalesced.
            misfire_grace_time=max(1, int(interval.total_seconds())),
        )
    return scheduler


def nudger(scheduler: BlockingScheduler) -> Nudge:
    """A function that makes the rule `rule_id` run now (safe from any thread)."""

    def nudge(rule_id: str) -> None:
        if not scheduler.running:  # stopping: no new execution
            return
        try:
            scheduler.modify_job(rule_id, next_run_time=datetime.now(UTC))
        except JobLookupError:
            log.debug("no job for rule %s to run now", rule_id)

    return nudge


def run(
    rules: Sequence[Rule],
    run_rule: RunRule,
    on_start: Callable[[Nudge], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    workers: int = 2,
) -> int:
    """Run the rules until SIGTERM or SIGINT; the current executions finish first.
    `on_start` receives the nudge function before the scheduler starts; `on_stop` is called
    when a signal arrives, before waiting for the running executions."""
    scheduler = build_scheduler(rules, run_rule, workers)
    if on_start is not None:
        on_start(nudger(scheduler))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only set a flag: the handler runs on the main thread, possibly while the scheduler
        # holds its executor's lock there, so shutting down from here could deadlock.
        stopping.set()

    def stop_when_asked() -> None:
        stopping.wait()
        log.info("stopping: waiting for running executions to finish")
        if on_stop is not None:
            on_stop()
        if scheduler.running:
            scheduler.shutdown(wait=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    stopper = threading.Thread(target=stop_when_asked, name="detector-stop", daemon=True)
    stopper.start()
    try:
        log.info("scheduler started", extra={"rules": [rule.rule_id for rule in rules]})
        scheduler.start()
        stopper.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("scheduler stopped")
    return 0
