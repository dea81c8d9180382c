"""Which scheduled executions are due, given the last covered one. Pure.

The checkpoint of a rule is the `now` of its last successful execution. A scheduled execution
at the wall-clock time `current` runs `current` itself and, when the checkpoint is more than one
interval behind (downtime, failed executions), every missed execution before it, one interval
apart, oldest first: `current - k·interval` for each `k` whose time is still after the
checkpoint. So consecutive executions are never more than one interval apart, whatever the
rule's look-back, and each gets its own window and history (the engine computes them from its
`now`).

`tolerance` absorbs scheduling jitter: an execution a few seconds late is not a missed one
(without it, a late firing would add an extra catch-up execution half of the time).

At most `max_catchup` is caught up: anything older is a *gap*, returned so it is reported
(`[checkpoint, current - max_catchup]`), never silently dropped. A checkpoint at or after
`current` (the clock went backwards, or another replica ran already) makes nothing due.

Backfills replay `start, start + interval, ... <= end` (`backfill_times`), as Kibana's manual
runs do for each schedule interval of the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.datemath import parse_interval
from detector.rules import Rule
from detector.times import as_utc

# Default `tolerance`: this fraction of the interval.
TOLERANCE_FRACTION = 0.1


@dataclass(frozen=True)
class Gap:
    """A stretch that no execution will cover: `(start, end]` of scheduled `now` values."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """Its length in seconds."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Due:
    """The `now` of each execution to run, oldest first, and the gap left behind, if any."""

    nows: tuple[datetime, ...]
    gap: Gap | None = None
    behind: bool = False  # the checkpoint is not before `current`: nothing to run

    @property
    def missed(self) -> int:
        """How many of the executions are catch-up ones (all but the current)."""
        return max(len(self.nows) - 1, 0)


def due_executions(
    checkpoint: datetime | None,
    current: datetime,
    interval: timedelta,
    max_catchup: timedelta,
    tolerance: timedelta | None = None,
) -> Due:
    """The executions due at `current` for a rule last covered up to `checkpoint`."""
    _check_positive(interval, "interval")
    if checkpoint is None:
        return Due((current,))
    if current <= checkpoint:
        return Due((), behind=True)
    slack = default_tolerance(interval) if tolerance is None else tolerance
    floor = max(checkpoint, current - max_catchup)
    gap = Gap(checkpoint, floor) if floor > checkpoint else None
    nows = [current]
    # A missed execution is one whose time is clearly after what is already covered.
    while nows[-1] - interval > floor + slack:
        nows.append(nows[-1] - interval)
    return Due(tuple(reversed(nows)), gap)


def leaves_no_hole(
    checkpoint: datetime | None,
    current: datetime,
    interval: timedelta,
    tolerance: timedelta | None = None,
) -> bool:
    """Whether one execution at `current` continues the checkpoint without missing any.

    A single execution (`detector once`) may move the checkpoint only then; otherwise the missed
    executions would never be caught up.
    """
    if checkpoint is None:
        return True
    slack = default_tolerance(interval) if tolerance is None else tolerance
    return checkpoint < current <= checkpoint + interval + slack


def backfill_times(start: datetime, end: datetime, interval: timedelta) -> list[datetime]:
    """`start, start + interval, ...` up to `end` included; empty when `end` is before `start`."""
    _check_positive(interval, "interval")
    times: list[datetime] = []
    moment = start
    while moment <= end:
        times.append(moment)
        moment += interval
    return times


def default_tolerance(interval: timedelta) -> timedelta:
    """How late an execution may be without counting as a missed one."""
    return interval * TOLERANCE_FRACTION


def _check_positive(interval: timedelta, name: str) -> None:
    if interval <= timedelta(0):
        raise ValueError(f"{name} must be positive, got {interval}")


def backfill_plan(
    rules: Sequence[Rule], start: datetime, end: datetime
) -> list[tuple[Rule, datetime]]:
    """Each rule's scheduled times `start, start + interval, ... <= end`, rule after rule."""
    return [
        (rule, now)
        for rule in rules
        for now in backfill_times(as_utc(start), as_utc(end), parse_interval(rule.interval))
    ]
