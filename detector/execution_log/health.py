"""`detector health`: is every enabled rule running? Pure.

A rule is healthy when its last successful scheduled execution (`succeeded`, or `partial
failure`: it ran, with a warning) ended within the maximum age, its newest
`DETECTOR_HEALTH_MAX_FAILURES` scheduled executions did not all fail, it has no failed window
waiting for a backfill, its checkpoint trails the clock by at most two intervals (plus the
catch-up tolerance), nothing says the clocks disagree (a checkpoint or an execution in this
host's future, or skew found by the last execution), and, when data is required, its last
execution matched an index (a typo'd index name succeeds with nothing searched). Without that
requirement an index not there yet is a note: a stack started before its first CloudTrail log
is not broken. Otherwise one short line says why (errors cut to `HEALTH_ERROR` characters; the
execution log has them whole). Backfills and `once --at` (execution type `manual`) say
nothing about the schedule and are not looked at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from detector.errors import shorten
from detector.results import FAILED
from detector.schedule.catchup import default_tolerance
from detector.schedule.failed_windows import FailedWindow

Doc = Mapping[str, Any]


@dataclass(frozen=True)
class RuleRuns:
    """The newest scheduled execution of a rule, and its newest successful one; with
    `recent` (its newest scheduled executions, newest first), its checkpoint and interval,
    and its failed windows not backfilled yet, when they were read."""

    rule_id: str
    rule_name: str
    last: Doc | None
    last_success: Doc | None
    recent: tuple[Doc, ...] = ()
    checkpoint: datetime | None = None
    interval: timedelta | None = None
    failed_windows: tuple[FailedWindow, ...] = ()


# Characters of an execution's error in a health line (the execution log has it whole).
HEALTH_ERROR = 200
# How many intervals a checkpoint may trail the clock (one execution due, one running).
LAG_INTERVALS = 2


def problem(
    runs: RuleRuns,
    current: datetime,
    max_age: timedelta,
    max_failures: int = 1,
    *,
    require_data: bool = True,
) -> str | None:
    """Why the rule is unhealthy (its reasons joined by `; `), or None when it is healthy;
    matching no index is a reason only when `require_data`."""
    head = f"rule {runs.rule_id} ({runs.rule_name})"
    if runs.last is None:
        return f"{head}: never ran"
    reasons = [
        reason
        for reason in (
            _failures(runs, current, max_age, max_failures),
            _failed_windows(runs.failed_windows),
            _lag(runs, current),
            _skew(runs, current),
            _no_index(runs) if require_data else None,
        )
        if reason is not None
    ]
    return f"{head}: {'; '.join(reasons)}" if reasons else None


def problems(
    runs: Sequence[RuleRuns],
    current: datetime,
    max_age: timedelta,
    max_failures: int = 1,
    *,
    require_data: bool = True,
) -> list[str]:
    """One line per unhealthy rule, in the given order."""
    found = (
        problem(rule, current, max_age, max_failures, require_data=require_data) for rule in runs
    )
    return [line for line in found if line is not None]


def no_index_notes(runs: Sequence[RuleRuns]) -> list[str]:
    """One line per rule whose last execution matched no index: what `problem` says of it
    when data is required."""
    found = ((rule, _no_index(rule)) for rule in runs if rule.last is not None)
    return [
        f"rule {rule.rule_id} ({rule.rule_name}): {reason}"
        for rule, reason in found
        if reason is not None
    ]


def _no_index(runs: RuleRuns) -> str | None:
    """The last execution's index patterns matched no index: nothing was searched."""
    assert runs.last is not None
    if not runs.last["execution"].get("no_index_matched"):
        return None
    return (
        "its index patterns matched no index at its last execution "
        f"({runs.last['execution']['ended']}): nothing is searched"
    )


def _failures(
    runs: RuleRuns, current: datetime, max_age: timedelta, max_failures: int
) -> str | None:
    """The last `max_failures` executions failed, or the last success is too old."""
    assert runs.last is not None
    success = _ended(runs.last_success) if runs.last_success is not None else None
    since = _since(success, current)
    recent = runs.recent or (runs.last,)
    failed = [doc for doc in recent[:max_failures] if doc["execution"]["status"] == FAILED]
    if len(failed) >= max_failures:
        execution = runs.last["execution"]
        what = "last execution failed"
        if max_failures > 1:
            what = f"last {max_failures} executions failed, the last"
        lost = execution.get("unavailable_clusters") or []
        if lost:
            what += f" (cluster {', '.join(lost)} unavailable)"
        error = shorten(str(execution.get("error")), HEALTH_ERROR)
        return f"{what} at {execution['ended']}: {error} ({since})"
    if success is not None and current - success <= max_age:
        return None
    return f"{since} (more than the {max_age.total_seconds():.0f} s allowed)"


def _failed_windows(windows: Sequence[FailedWindow]) -> str | None:
    if not windows:
        return None
    oldest = windows[0]
    return (
        f"{len(windows)} failed window(s) not backfilled, the oldest "
        f"[{_text(oldest.start)}, {_text(oldest.end)}]: {oldest.command}"
    )


def _lag(runs: RuleRuns, current: datetime) -> str | None:
    """The checkpoint trails the clock by more than two intervals (and their tolerance)."""
    if runs.checkpoint is None or runs.interval is None:
        return None
    allowed = runs.interval * LAG_INTERVALS + default_tolerance(runs.interval)
    behind = current - runs.checkpoint
    if behind <= allowed:
        return None
    return (
        f"checkpoint {_text(runs.checkpoint)} is {behind.total_seconds():.0f} s behind the "
        f"clock (more than {allowed.total_seconds():.0f} s)"
    )


def _skew(runs: RuleRuns, current: datetime) -> str | None:
    """A checkpoint or an execution in the future of this clock, or skew found by the last
    execution."""
    slack = default_tolerance(runs.interval) if runs.interval is not None else timedelta(0)
    if runs.checkpoint is not None and runs.checkpoint > current + slack:
        ahead = (runs.checkpoint - current).total_seconds()
        return (
            f"clock skew: checkpoint {_text(runs.checkpoint)} is {ahead:.0f} s ahead of the clock"
        )
    last = runs.last or {}
    if last.get("execution", {}).get("ended") and _ended(last) > current + slack:
        ended = last["execution"]["ended"]
        return f"clock skew: the last execution ended at {ended}, ahead of the clock"
    if last.get("skew"):
        ahead = float(last["skew"]["seconds"])
        return f"clock skew: the last execution found its checkpoint {ahead:.0f} s ahead"
    return None


def _since(success: datetime | None, current: datetime) -> str:
    if success is None:
        return "never succeeded"
    age = (current - success).total_seconds()
    return f"last success at {_text(success)}, {age:.0f} s ago"


def _ended(doc: Doc) -> datetime:
    return datetime.fromisoformat(str(doc["execution"]["ended"]).replace("Z", "+00:00"))


def _text(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def baseline_notes(runs: Sequence[RuleRuns]) -> list[str]:
    """One line per rule whose last successful execution had a baseline not covering its
    history yet (`detector.query.baseline`): not a health problem, but its alerts are less certain
    (`alert`) or held (`hold`)."""
    lines = []
    for rule in runs:
        baseline = (rule.last_success or {}).get("baseline") or {}
        if not baseline or baseline.get("mature"):
            continue
        effect = "new terms are held" if baseline.get("mode") == "hold" else "alerts carry it"
        since = baseline.get("since")
        data = f"data since {since}" if since else "no data in it"
        lines.append(
            f"rule {rule.rule_id} ({rule.rule_name}): baseline covers "
            f"{float(baseline.get('coverage') or 0.0):.0%} of its history ({data}); {effect}"
        )
    return lines
