"""Where the runner's catch-up loop reads and moves a rule's checkpoint, and when it may run.

Two kinds serve the one loop of `detector.service.runner.Runner.run_due`:

- `LogCheckpoints`, without leases (`detector once`, a runner driven with chosen times): the
  checkpoint document of the execution log; the scheduled time is the caller's `current`.
- `detector.service.replica.Keeper`, under `detector run`: the checkpoint in the rule's lease,
  moved by a fenced conditional write, only while this replica holds the lease; the scheduled
  time is the rule's grid slot (`detector.schedule.leases.grid_floor`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from detector.execution_log.store import ExecutionStore
from detector.rules import Rule

# What a checkpoint move did: moved, refused because another replica took the lease over
# (fenced), or not written (Elasticsearch unreachable).
MOVED, FENCED, FAILED = "moved", "fenced", "failed"


class Checkpoints(Protocol):
    """A rule's checkpoint as the catch-up loop sees it."""

    def scheduled(self, current: datetime, interval: timedelta) -> datetime:
        """The scheduled time of a firing at the wall-clock time `current`."""
        ...

    def may_start(self, rule_id: str) -> bool:
        """Whether an execution of the rule may start now."""
        ...

    def checkpoint(self, rule_id: str) -> datetime | None:
        """The `now` of the rule's last covered execution (raises `DetectorError`)."""
        ...

    def move_checkpoint(self, rule: Rule, now: datetime) -> str:
        """Move it to `now`: `MOVED`, `FENCED` or `FAILED`."""
        ...

    def running(self, rule_id: str) -> AbstractContextManager[None]:
        """Hold the rule as executing for the block."""
        ...


@dataclass(frozen=True)
class LogCheckpoints:
    """The checkpoint documents of the execution log, without leases."""

    store: ExecutionStore

    def scheduled(self, current: datetime, interval: timedelta) -> datetime:
        """`current` itself: the caller chose it."""
        return current

    def may_start(self, rule_id: str) -> bool:
        """Always: nothing else runs the rule."""
        return True

    def checkpoint(self, rule_id: str) -> datetime | None:
        """The later of the `once` checkpoint and a lease's (raises)."""
        return self.store.checkpoint(rule_id)

    def move_checkpoint(self, rule: Rule, now: datetime) -> str:
        """Save it; a failure is logged and the catch-up goes on (the next one repeats the
        executions since the checkpoint that was saved)."""
        self.store.save_checkpoint(rule, now)
        return MOVED

    def running(self, rule_id: str) -> AbstractContextManager[None]:
        """Nothing to hold."""
        return nullcontext()
