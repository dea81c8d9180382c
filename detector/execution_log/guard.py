"""The run-level guards of `detector.service.runner`: a window that keeps failing is given up and
recorded, a checkpoint ahead of the clock is not trusted, and a backfill clears the failed
windows it covers (`detector.schedule.failed_windows` says what each one means). Every record lives
in
the execution log (`detector.execution_log.records`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from detector.errors import DetectorError
from detector.execution_log import documents
from detector.execution_log.records import RunRecords
from detector.logs import structured
from detector.results import ExecutionResult
from detector.rules import Rule
from detector.schedule import catchup
from detector.schedule.failed_windows import FailedWindow, Skew, covered, is_skewed
from detector.times import iso

if TYPE_CHECKING:
    from detector.metrics import Metrics

log = logging.getLogger(__name__)


def give_up(
    records: RunRecords, rule: Rule, result: ExecutionResult, allowed: int
) -> FailedWindow | None:
    """The failed window to record when this failure was the window's last allowed attempt
    (attempts are counted in the execution log: restarts and replicas count together)."""
    try:
        attempts = records.failed_attempts(rule.rule_id, result.now) + 1
    except DetectorError as exc:
        log.error("rule %s: cannot count the attempts of its window: %s", rule.rule_id, exc)
        return None
    if attempts < allowed:
        log.warning(
            "rule %s: attempt %d of %d at %s failed; the next run retries it",
            rule.rule_id,
            attempts,
            allowed,
            iso(result.now),
        )
        return None
    return FailedWindow(
        rule_id=rule.rule_id,
        rule_name=rule.name,
        now=result.now,
        start=result.window_start or result.now,
        end=result.window_end or result.now,
        attempts=attempts,
        error=result.error or "",
        execution_id=result.execution_id,
    )


def skip(records: RunRecords, window: FailedWindow, metrics: Metrics | None) -> bool:
    """Record the failed window (document, ERROR line, metric); False if it could not be
    recorded, and then the schedule does not pass it."""
    if not records.record_failed_window(window):
        return False
    log.error(
        "rule %s: %s",
        window.rule_id,
        window.message(),
        extra=structured(
            rule_id=window.rule_id,
            scheduled=iso(window.now),
            window_start=iso(window.start),
            window_end=iso(window.end),
            backfill=window.command,
        ),
    )
    if metrics is not None:
        metrics.skipped_window(window.rule_id)
    return True


def distrust(
    records: RunRecords, rule: Rule, checkpoint: datetime | None, clock: datetime
) -> tuple[datetime | None, Skew | None]:
    """A checkpoint ahead of `clock` claims executions that never ran: catch up from the
    last execution that really ran instead (and say so)."""
    if checkpoint is None or not is_skewed(checkpoint, clock):
        return checkpoint, None
    try:
        trusted = records.last_real_run(rule.rule_id, clock)
    except DetectorError as exc:
        log.error(
            "rule %s: checkpoint %s ahead of the clock, and the execution log cannot be read: %s",
            rule.rule_id,
            iso(checkpoint),
            exc,
        )
        return checkpoint, None
    skew = Skew(rule.rule_id, checkpoint, clock, trusted)
    log.warning(
        "rule %s: %s",
        rule.rule_id,
        skew.message(),
        extra=structured(rule_id=rule.rule_id, skew_seconds=skew.seconds),
    )
    return trusted, skew


def clear_failed_windows(
    records: RunRecords, rules: Sequence[Rule], results: Sequence[ExecutionResult]
) -> None:
    """Mark backfilled the failed windows that the successful `results` cover."""
    try:
        open_windows = records.open_failed_windows([rule.rule_id for rule in rules])
    except DetectorError as exc:
        log.warning("cannot read the failed windows to clear: %s", exc)
        return
    for window in open_windows:
        spans = {
            (result.window_start, result.window_end): result.execution_id
            for result in results
            if result.rule_id == window.rule_id and result.succeeded
            if result.window_start is not None and result.window_end is not None
        }
        if covered(window, spans):
            records.mark_backfilled(window, next(reversed(spans.values())))


def announce(rule: Rule, due: catchup.Due) -> None:
    """Warn of the gap before the due executions and of the missed ones caught up."""
    if due.gap is not None:
        log.warning(
            "rule %s: %s",
            rule.rule_id,
            documents.gap_message(due.gap),
            extra=structured(
                gap_seconds=due.gap.seconds,
                gap_start=iso(due.gap.start),
                gap_end=iso(due.gap.end),
            ),
        )
    if due.missed:
        log.warning(
            "rule %s: catching up %d missed execution(s) from %s",
            rule.rule_id,
            due.missed,
            iso(due.nows[0]),
            extra=structured(missed=due.missed),
        )
