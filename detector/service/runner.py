"""Executions as the service runs them: catch-up, checkpoint, execution log, metrics, backfill.

`Runner.run_due(rule, current)` is what the scheduler calls with the wall clock (tests call it
with chosen times): it reads the rule's checkpoint, runs every due execution oldest first
(`detector.schedule.catchup.due`), reports a gap beyond `max_catchup` as a warning and in the first
execution's log document, and moves the checkpoint after each success. A failed execution
stops the catch-up and leaves the checkpoint where it was, so the next one retries its window,
until its `window_attempts`-th failure: then it is recorded as a failed window to backfill and
the checkpoint moves past it (`detector.execution_log.guard`). A checkpoint ahead of the clock
is not trusted: the catch-up starts from the last execution that really ran.

Each execution's id is made here, written at once as a `running` execution-log document and
given to the engine, so its alerts and its log document share it; a `running` document left by
a killed process is reconciled with the alerts index (`detector.execution_log.records`).

Every execution goes through `engine.execute` (deterministic alert ids: backfills, catch-up and
live runs never duplicate an alert) and writes one execution-log document.

The runner is built once with all its parts (`Runner.on`, `Runner.for_settings`). Its
checkpoints (`detector.service.checkpoints`) decide where the one catch-up loop reads and moves a
rule's checkpoint: the execution log's checkpoint document without leases; under `detector run`
the replica's `Keeper`, so a rule's due executions run only while this replica holds the rule's
lease, the scheduled times are the rule's grid (multiples of its interval since the epoch,
`detector.schedule.leases.grid_floor`), and each move of the checkpoint is fenced: refused when
the lease was taken over, which the execution's log document records (`replica.fenced`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from detector.alerts.store import AlertStore
from detector.datemath import parse_interval
from detector.engine.execution import AlertWriter, execute
from detector.errors import DetectorError
from detector.es.client import Elastic
from detector.execution_log import documents, guard
from detector.execution_log.records import RunRecords
from detector.execution_log.store import ExecutionStore
from detector.logs import structured
from detector.notify.marks import MarkingWriter
from detector.notify.routing import Routing
from detector.query.baseline import ALERT, BaselineCache
from detector.results import FAILED, PARTIAL_FAILURE, ExecutionRef, ExecutionResult
from detector.rules import Rule
from detector.rules.exceptions import NO_EXCEPTIONS, ExceptionList, from_settings
from detector.schedule import catchup
from detector.schedule.catchup import Gap
from detector.schedule.failed_windows import Skew
from detector.service import retries
from detector.service.checkpoints import FENCED, MOVED, Checkpoints, LogCheckpoints
from detector.service.replica import Keeper, replica_id
from detector.service.sinks import AlertSink
from detector.settings import Settings
from detector.times import as_utc, iso

if TYPE_CHECKING:
    from detector.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_MAX_CATCHUP = timedelta(hours=24)
DEFAULT_WINDOW_ATTEMPTS = 3

# Called after each backfill execution with (done, total, result).
Progress = Callable[[int, int, ExecutionResult], None]


class Options(TypedDict, total=False):
    """The `Runner` fields `Runner.on` passes through (each has a default)."""

    exceptions: ExceptionList
    max_catchup: timedelta
    metrics: Metrics | None
    sinks: Sequence[AlertSink]
    replica_id: str | None
    window_attempts: int
    baseline_mode: str


@dataclass
class Runner:
    """Everything an execution needs besides the rule and its `now`, given at construction
    (`Runner.for_settings` builds it from the settings)."""

    elastic: Elastic
    store: AlertWriter
    executions: ExecutionStore
    # Cross-execution records; they count a killed execution's alerts in the alerts index.
    records: RunRecords
    checkpoints: Checkpoints
    exceptions: ExceptionList = NO_EXCEPTIONS
    max_catchup: timedelta = DEFAULT_MAX_CATCHUP
    metrics: Metrics | None = None
    sinks: Sequence[AlertSink] = field(default=())
    replica_id: str | None = None
    window_attempts: int = DEFAULT_WINDOW_ATTEMPTS
    # DETECTOR_BASELINE, and how far back each rule's data reaches (asked once it is mature).
    baseline_mode: str = ALERT
    baselines: BaselineCache = field(default_factory=BaselineCache)
    # Rules whose interrupted executions this runner reconciled since it (last) got to run them.
    _reconciled: set[str] = field(init=False, default_factory=set)

    @classmethod
    def on(
        cls,
        elastic: Elastic,
        alerts: AlertStore,
        executions: ExecutionStore,
        *,
        routing: Routing | None = None,
        keeper: Keeper | None = None,
        **options: Unpack[Options],
    ) -> Runner:
        """A runner writing to `alerts` and `executions`; with a `routing` that has channels,
        its alerts are created pending for them; with a `keeper`, it runs only the rules whose
        lease it holds, on their grid (`detector run`). `options`: the other fields."""
        writer: AlertWriter = MarkingWriter(alerts, routing) if routing else alerts
        records = RunRecords(elastic, executions.index, alerts.index)
        checkpoints: Checkpoints = keeper if keeper is not None else LogCheckpoints(executions)
        if keeper is not None:
            options["replica_id"] = keeper.replica
        return cls(elastic, writer, executions, records, checkpoints, **options)

    @classmethod
    def for_settings(
        cls,
        elastic: Elastic,
        settings: Settings,
        *,
        sinks: Sequence[AlertSink] = (),
        routing: Routing | None = None,
        keeper: Keeper | None = None,
        metrics: Metrics | None = None,
    ) -> Runner:
        """A runner on `elastic` for the settings' indices (`ensure_indices` creates them);
        `routing` is the notifications' (parsed once per process), `keeper` the leases'."""
        return cls.on(
            elastic,
            AlertStore(elastic, settings.alerts_index),
            ExecutionStore(elastic, settings.execution_log_index),
            routing=routing,
            keeper=keeper,
            exceptions=from_settings(settings),
            max_catchup=settings.max_catchup,
            metrics=metrics,
            sinks=sinks,
            replica_id=replica_id(settings),
            window_attempts=settings.window_attempts,
            baseline_mode=settings.baseline,
        )

    def dry_run(self, rule: Rule, now: datetime) -> ExecutionResult:
        """One execution that writes nothing (no alert, no execution log, no checkpoint)."""
        return execute(
            self.elastic,
            self.store,
            rule,
            now,
            dry_run=True,
            exceptions=self.exceptions,
            baseline_mode=self.baseline_mode,
            baselines=self.baselines,
        )

    def execute(
        self,
        rule: Rule,
        now: datetime,
        execution_type: str = documents.SCHEDULED,
        gap: Gap | None = None,
    ) -> ExecutionResult:
        """One execution, logged to the execution log (and counted in the metrics)."""
        execution = ExecutionRef.new(execution_type)
        result, timing = self._engine(rule, now, execution, gap)
        self._record(rule, result, execution, timing, gap)
        self._deliver(rule, result)
        return result

    def _engine(
        self,
        rule: Rule,
        now: datetime,
        execution: ExecutionRef,
        gap: Gap | None = None,
    ) -> tuple[ExecutionResult, documents.Timing]:
        started = datetime.now(UTC)
        log.info(
            "rule %s: executing %s (%s)",
            rule.rule_id,
            iso(now),
            execution.type,
            extra=structured(rule_id=rule.rule_id, scheduled=iso(now), execution_id=execution.id),
        )
        replica = documents.Replica(self.replica_id)
        self.records.started(rule, as_utc(now), execution, started, replica)
        result = execute(
            self.elastic,
            self.store,
            rule,
            now,
            exceptions=self.exceptions,
            execution=execution,
            baseline_mode=self.baseline_mode,
            baselines=self.baselines,
        )
        if gap is not None and result.succeeded:
            # The gap before it makes a success partial, as in the execution log.
            result = dataclasses.replace(result, status=PARTIAL_FAILURE)
        return result, documents.Timing(started, datetime.now(UTC))

    def backfill(
        self,
        rules: Sequence[Rule],
        start: datetime,
        end: datetime,
        progress: Progress | None = None,
    ) -> list[ExecutionResult]:
        """Replay the scheduled executions of `[start, end]` as manual ones (Kibana's backfill).

        The checkpoint is left alone; a failed execution does not stop the others.
        """
        plan = catchup.backfill_plan(rules, start, end)
        results: list[ExecutionResult] = []
        for rule, now in plan:
            results.append(self.execute(rule, now, documents.MANUAL))
            if progress is not None:
                progress(len(results), len(plan), results[-1])
        guard.clear_failed_windows(self.records, rules, results)
        return results

    def run_due(self, rule: Rule, current: datetime) -> list[ExecutionResult]:
        """The scheduled execution at `current` (the wall clock under `detector run`), after
        the missed ones since the checkpoint."""
        current = as_utc(current)
        if not self.checkpoints.may_start(rule.rule_id):
            self._reconciled.discard(rule.rule_id)  # whoever holds it now may be killed
            return []
        try:
            stored = self.checkpoints.checkpoint(rule.rule_id)
        except DetectorError as exc:
            return [self._unreadable_checkpoint(rule, current, exc)]
        self._reconcile_once(rule)
        interval = parse_interval(rule.interval)
        latest = self.checkpoints.scheduled(current, interval)
        # Skew is a checkpoint ahead of the wall clock, not of the slot: `once` leaves one a
        # moment after the slot, and `run` started in the same cell must trust it.
        checkpoint, skew = guard.distrust(self.records, rule, stored, current)
        due = catchup.due_executions(checkpoint, latest, interval, self.max_catchup)
        if due.behind:  # this time ran already (a nudge, or a firing early in its cell)
            if skew is not None and checkpoint is not None:
                self.checkpoints.move_checkpoint(rule, checkpoint)  # back from the future
            log.debug("rule %s: nothing due at %s", rule.rule_id, iso(latest))
            return []
        guard.announce(rule, due)
        with self.checkpoints.running(rule.rule_id):
            return self._catch_up(rule, due, skew)

    def _catch_up(self, rule: Rule, due: catchup.Due, skew: Skew | None) -> list[ExecutionResult]:
        """The due executions oldest first, until one fails or the rule may not run on."""
        deadline = due.nows[-1] + parse_interval(rule.interval)  # the next slot
        results: list[ExecutionResult] = []
        for position, now in enumerate(due.nows):
            if not self.checkpoints.may_start(rule.rule_id):
                log.warning(
                    "rule %s: this replica may not run it any more (stopping, or its lease was "
                    "not renewed in time); %s is left to its next holder",
                    rule.rule_id,
                    iso(now),
                )
                break
            first = _First(due.gap, skew) if position == 0 else _First()
            result, go_on = self._retried(rule, now, first, deadline)
            results.append(result)
            if not go_on:
                break
        return results

    def _retried(
        self, rule: Rule, now: datetime, first: _First, deadline: datetime
    ) -> tuple[ExecutionResult, bool]:
        """`_step`, retried within the interval while it fails (`detector.service.retries`);
        only the first attempt reports the gap and the skew."""

        def attempt(number: int) -> tuple[ExecutionResult, bool]:
            return self._step(rule, now, first if number == 1 else _First())

        return retries.within_interval(
            attempt, deadline, lambda: self.checkpoints.may_start(rule.rule_id)
        )

    def _step(self, rule: Rule, now: datetime, first: _First) -> tuple[ExecutionResult, bool]:
        """One scheduled execution of a catch-up; whether the catch-up goes on. A window that
        failed its last allowed attempt is recorded as a failed window and passed."""
        execution = ExecutionRef.new(documents.SCHEDULED)
        result, timing = self._engine(rule, now, execution, first.gap)
        result, counted = self._counted(result)
        if first.skew is not None and result.succeeded:
            result = dataclasses.replace(result, status=PARTIAL_FAILURE)
        skipped = (
            None
            if result.succeeded
            else guard.give_up(self.records, rule, result, self.window_attempts)
        )
        recorded = skipped is not None and guard.skip(self.records, skipped, self.metrics)
        moved = (
            self.checkpoints.move_checkpoint(rule, now) if result.succeeded or recorded else None
        )
        notes = [first.skew.message()] if first.skew is not None else []
        if recorded and skipped is not None:
            notes.append(skipped.message())
        extra = {"skew": first.skew.to_doc()} if first.skew is not None else {}
        self._record(
            rule, result, execution, timing, first.gap, moved == FENCED, notes, extra, counted
        )
        self._deliver(rule, result)
        return result, moved == MOVED

    def _counted(self, result: ExecutionResult) -> tuple[ExecutionResult, str]:
        """A failed execution may have written alerts before it failed (some bulk items
        accepted, or an answer lost): when the alerts index holds another count of its
        execution id, that count; with where the count comes from (`metrics.alerts_counted`)."""
        if result.succeeded or result.execution_id is None:
            return result, documents.COUNTED_BY_EXECUTION
        written = self.records.alerts_written(result.execution_id)
        if written is None or written == result.alerts_written:
            return result, documents.COUNTED_BY_EXECUTION
        counted = dataclasses.replace(result, alerts_written=written)
        return counted, documents.COUNTED_IN_ALERTS_INDEX

    def _reconcile_once(self, rule: Rule) -> None:
        """Reconcile the rule's interrupted executions, once per stretch of running it."""
        if rule.rule_id not in self._reconciled:
            self.records.reconcile(rule.rule_id)
            self._reconciled.add(rule.rule_id)

    def once(self, rule: Rule, now: datetime, *, manual: bool) -> ExecutionResult:
        """`detector once`: one execution; a scheduled one moves the checkpoint unless that
        would skip missed executions (those are left for `detector run` to catch up)."""
        if manual:
            done = self.execute(rule, now, documents.MANUAL)
            guard.clear_failed_windows(self.records, [rule], [done])
            return done
        try:
            checkpoint = self.checkpoints.checkpoint(rule.rule_id)
        except DetectorError as exc:
            log.error("rule %s: cannot read its checkpoint: %s", rule.rule_id, exc)
            checkpoint, movable = None, False
        else:
            interval = parse_interval(rule.interval)
            movable = catchup.leaves_no_hole(checkpoint, as_utc(now), interval)
        result = self.execute(rule, now)
        if result.succeeded and movable:
            self.checkpoints.move_checkpoint(rule, as_utc(now))
        elif result.succeeded:
            log.warning(
                "rule %s: checkpoint left at %s; `detector run` catches up the executions missed "
                "since then",
                rule.rule_id,
                iso(checkpoint) if checkpoint else "(unreadable)",
            )
        return result

    def _record(
        self,
        rule: Rule,
        result: ExecutionResult,
        execution: ExecutionRef,
        timing: documents.Timing,
        gap: Gap | None,
        fenced: bool = False,
        notes: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
        counted: str = documents.COUNTED_BY_EXECUTION,
    ) -> None:
        doc = documents.execution_doc(
            result,
            execution=execution,
            timing=timing,
            interval=rule.interval,
            gap=gap,
            replica=documents.Replica(self.replica_id, fenced),
            notes=notes,
            counted=counted,
        )
        doc.update(extra or {})
        if fenced:
            log.warning(
                "rule %s: the execution at %s was fenced: its checkpoint move was refused "
                "because another replica took the lease over (its alerts are harmless)",
                rule.rule_id,
                iso(result.now),
                extra=structured(rule_id=rule.rule_id, scheduled=iso(result.now), fenced=True),
            )
        self.executions.record(execution.id, doc)
        if self.metrics is not None:
            status = doc["execution"]["status"]
            seconds = gap.seconds if gap is not None else 0.0
            self.metrics.observe(result, status, execution.type, timing.ended, seconds)

    def _deliver(self, rule: Rule, result: ExecutionResult) -> None:
        """Hand the created alerts to every sink; a failing sink is logged, never raised."""
        created = result.created_alerts() if self.sinks else []
        for sink in self.sinks if created else ():
            try:
                sink.deliver(rule, created)
            except DetectorError as exc:
                log.error("rule %s: the %s sink failed: %s", rule.rule_id, sink.name, exc)

    def _unreadable_checkpoint(
        self, rule: Rule, current: datetime, exc: DetectorError
    ) -> ExecutionResult:
        result = ExecutionResult(
            rule_id=rule.rule_id,
            rule_name=rule.name,
            now=current,
            status=FAILED,
            error=f"cannot read the checkpoint: {exc}",
        )
        log.error("rule %s: %s", rule.rule_id, result.error)
        now = datetime.now(UTC)
        execution = ExecutionRef.new(documents.SCHEDULED)
        self._record(rule, result, execution, documents.Timing(now, now), None)
        return result


@dataclass(frozen=True)
class _First:
    """What only the first execution of a catch-up reports: the gap and the clock skew."""

    gap: Gap | None = None
    skew: Skew | None = None


def ensure_indices(elastic: Elastic, settings: Settings) -> None:
    """Put the templates and create the alerts and execution-log indices (once per command)."""
    AlertStore(elastic, settings.alerts_index).ensure_index()
    ExecutionStore(elastic, settings.execution_log_index).ensure_index()


def backfill(
    elastic: Elastic,
    store: AlertStore,
    executions: ExecutionStore,
    rules: Sequence[Rule],
    start: datetime,
    end: datetime,
    progress: Progress | None = None,
    exceptions: ExceptionList = NO_EXCEPTIONS,
) -> list[ExecutionResult]:
    """`Runner.backfill` on these parts. The caller creates the indices first
    (`store.ensure_index()`, `executions.ensure_index()`)."""
    runner = Runner.on(elastic, store, executions, exceptions=exceptions)
    return runner.backfill(rules, start, end, progress)
