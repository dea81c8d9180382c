"""Windows the schedule gave up on, and checkpoints that claim more than was run. Pure.

A scheduled window that fails `DETECTOR_WINDOW_ATTEMPTS` times in a row (counted in the
execution log, so restarts and replicas count together) is recorded as a *failed window*: a
document `failed-window:<rule id>:<now>` in the execution log naming the rule, its `now`, the
window `[start, end]`, the last error and the `detector backfill` command that covers it. The
checkpoint then moves past it, so newer windows run. A later successful execution whose window
covers it (a backfill, or a scheduled retry) marks it backfilled; until then `detector health`
is red.

A checkpoint ahead of the wall clock (a replica on a fast-clocked host, a manual change) is
*skew*: it claims executions that no execution really ran (Kibana's task manager trusts
`runAt` the same way, so a future one stalls the task). It is not trusted: catch-up restarts
from the newest successful scheduled execution that is not in the future (`trusted_base`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.errors import shorten
from detector.times import iso, parse_iso

FAILED_WINDOW = "failed_window"
# Characters of the last error kept in a failed-window document (the execution log has it).
ERROR_CHARS = 1000


@dataclass(frozen=True)
class FailedWindow:
    """A scheduled execution that the schedule skipped after it failed `attempts` times."""

    rule_id: str
    rule_name: str
    now: datetime
    start: datetime
    end: datetime
    attempts: int
    error: str
    execution_id: str | None = None

    @property
    def doc_id(self) -> str:
        """Its document id in the execution log."""
        return failed_window_id(self.rule_id, self.now)

    @property
    def command(self) -> str:
        """The backfill that covers it (one manual execution at the same `now`)."""
        return backfill_command(self.rule_id, self.now)

    def message(self) -> str:
        """The ERROR log line and the warning of its last execution."""
        return (
            f"window [{iso(self.start)}, {iso(self.end)}] (now {iso(self.now)}) failed "
            f"{self.attempts} time(s) and is skipped so newer windows run; it is recorded as a "
            f"failed window to backfill: {self.command}"
        )


def failed_window_id(rule_id: str, now: datetime) -> str:
    """`failed-window:<rule id>:<now>`: one per rule and scheduled time."""
    return f"failed-window:{rule_id}:{iso(now)}"


def backfill_command(rule_id: str, now: datetime) -> str:
    """`detector backfill` over exactly that scheduled time."""
    return f"detector backfill --rule {rule_id} --start {iso(now)} --end {iso(now)}"


def failed_window_doc(window: FailedWindow, recorded: datetime) -> dict[str, Any]:
    """Its execution-log document (`failed_window.backfilled` stays null until covered)."""
    return {
        "@timestamp": iso(recorded),
        "kind": FAILED_WINDOW,
        "rule": {"id": window.rule_id, "name": window.rule_name},
        "execution": {
            "id": window.execution_id,
            "scheduled": iso(window.now),
            "error": shorten(window.error, ERROR_CHARS),
        },
        "window": {"start": iso(window.start), "end": iso(window.end)},
        "failed_window": {
            "attempts": window.attempts,
            "command": window.command,
            "backfilled": None,
            "backfilled_by": None,
        },
    }


def parse_failed_window(source: Mapping[str, Any]) -> FailedWindow:
    """A failed window from its document."""
    execution, span = source["execution"], source["window"]
    return FailedWindow(
        rule_id=str(source["rule"]["id"]),
        rule_name=str(source["rule"].get("name") or ""),
        now=_time(execution["scheduled"]),
        start=_time(span["start"]),
        end=_time(span["end"]),
        attempts=int(source["failed_window"]["attempts"]),
        error=str(execution.get("error") or ""),
        execution_id=execution.get("id"),
    )


def covered(window: FailedWindow, spans: Iterable[tuple[datetime, datetime]]) -> bool:
    """Whether the union of the successful executions' windows `spans` holds `[start, end]`."""
    reach = window.start
    for start, end in sorted(spans):
        if start > reach:
            break
        reach = max(reach, end)
        if reach >= window.end:
            return True
    return False


@dataclass(frozen=True)
class Skew:
    """A checkpoint ahead of the wall clock, and where catch-up restarts instead."""

    rule_id: str
    checkpoint: datetime
    clock: datetime
    trusted: datetime | None  # the newest successful scheduled execution not in the future

    @property
    def seconds(self) -> float:
        """How far ahead the checkpoint is."""
        return (self.checkpoint - self.clock).total_seconds()

    def message(self) -> str:
        """The warning of the log line and of the next execution's log document."""
        since = iso(self.trusted) if self.trusted is not None else "nothing (no trusted run)"
        return (
            f"clock skew: the checkpoint {iso(self.checkpoint)} is {self.seconds:.0f} s ahead of "
            f"this replica's clock {iso(self.clock)} (a fast-clocked replica or a manual change); "
            f"it is not trusted and the executions since the last one that really ran ({since}) "
            "are caught up"
        )

    def to_doc(self) -> dict[str, Any]:
        """The `skew` object of the execution-log document."""
        return {
            "seconds": self.seconds,
            "checkpoint": iso(self.checkpoint),
            "clock": iso(self.clock),
            "trusted": iso(self.trusted) if self.trusted is not None else None,
        }


def is_skewed(checkpoint: datetime | None, clock: datetime) -> bool:
    """Whether `checkpoint` lies after `clock`: no execution can have run there yet."""
    return checkpoint is not None and checkpoint > clock


def _time(text: Any) -> datetime:
    moment = parse_iso(text)
    if moment is None:
        raise ValueError(f"not a time: {text!r}")
    return moment
