"""`detector run` schedules each rule on its own interval and stops cleanly on a signal."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from detector.rules import Rule
from detector.service.scheduler import GridTrigger, build_scheduler, run
from tests.support.rules import make_rule

RULE = make_rule(rule_id="r-1", query="a: b")


def test_each_rule_gets_its_own_interval_and_runs_first_at_start() -> None:
    rules = [RULE, replace(RULE, rule_id="r-2", interval="1h")]
    scheduler = build_scheduler(rules, lambda rule: None)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert jobs["r-1"].trigger.interval == timedelta(minutes=5)
    assert jobs["r-2"].trigger.interval == timedelta(hours=1)
    assert jobs["r-1"].trigger.offset == timedelta(seconds=2)
    for job in jobs.values():
        assert abs(job.next_run_time - datetime.now(UTC)) < timedelta(seconds=5)


def test_one_execution_per_rule_at_a_time_and_misfires_coalesced() -> None:
    job = build_scheduler([RULE], lambda rule: None).get_jobs()[0]
    assert job.max_instances == 1
    assert job.coalesce is True
    assert job.misfire_grace_time == 300


def test_sigterm_lets_the_running_execution_finish_then_returns_zero() -> None:
    finished = threading.Event()

    def slow(rule: Rule) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        finished.set()

    started = time.monotonic()
    assert run([RULE], slow) == 0
    assert finished.is_set()
    assert time.monotonic() - started < 10


def test_the_rules_share_a_pool_of_workers_so_at_most_that_many_run_at_once() -> None:
    rules = [replace(RULE, rule_id=f"r-{n}") for n in range(5)]
    lock, running, peak, done = threading.Lock(), [0], [0], threading.Semaphore(0)

    def busy(rule: Rule) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        done.release()

    scheduler = build_scheduler(rules, busy, workers=2)
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        for _ in rules:  # every rule runs at start, two at a time
            assert done.acquire(timeout=10)
    finally:
        scheduler.shutdown(wait=True)
    assert peak[0] == 2


MINUTE = timedelta(minutes=1)
SLOT = datetime(2025, 1, 15, 15, 9, tzinfo=UTC)
GRID = GridTrigger(MINUTE, timedelta(seconds=2))


def test_a_firing_at_start_or_on_a_nudge_is_followed_by_the_next_grid_slot() -> None:
    nudged = SLOT + timedelta(seconds=46)  # a lease taken 46 s into the cell
    assert GRID.get_next_fire_time(nudged, nudged) == SLOT + MINUTE + timedelta(seconds=2)


def test_a_firing_on_the_grid_is_followed_by_the_next_slot() -> None:
    fired = SLOT + timedelta(seconds=2)
    assert GRID.get_next_fire_time(fired, fired) == SLOT + MINUTE + timedelta(seconds=2)


def test_a_firing_in_the_offset_after_a_slot_is_followed_by_that_slot() -> None:
    early = SLOT + timedelta(seconds=1)  # nudged between the slot and its firing
    assert GRID.get_next_fire_time(early, early) == SLOT + timedelta(seconds=2)


def test_the_first_firing_is_the_next_slot_plus_offset() -> None:
    now = SLOT + timedelta(seconds=30)
    assert GRID.get_next_fire_time(None, now) == SLOT + MINUTE + timedelta(seconds=2)
    assert GRID.get_next_fire_time(None, SLOT + timedelta(seconds=1)) == SLOT + timedelta(seconds=2)


def test_a_scheduled_rule_fires_on_its_grid_after_its_first_run_at_start() -> None:
    job = build_scheduler([replace(RULE, interval="1m")], lambda rule: None).get_jobs()[0]
    started = job.next_run_time
    following = job.trigger.get_next_fire_time(started, started)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert (following - timedelta(seconds=2) - epoch) % MINUTE == timedelta(0)
    assert timedelta(0) < following - started <= MINUTE + timedelta(seconds=2)
