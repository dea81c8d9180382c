"""Executions as the service runs them: catch-up, checkpoint, execution log, metrics, backfill.

`Runner.run_due(rule, current)` is what the scheduler calls with the wall clock (tests call it
with chosen times): it reads the rule's checkpoint, runs every due execution oldest first
(`detector.schedule.catchup.due`), reports a gap beyond `max_catchup` as a warning and in the first
execution's log document, and moves the checkpoint after each success. A failed execution
stops the catch-up and leaves the checkpoint where it was, so the next one retries its window,
until its `window_attempts`-th failure: then it is recorded as a failed window to backfill and
the checkpoint moves past it (`detector.execution_log.guard`). A checkpoint ahead of the clock is
not
trusted: the catch-up starts from the last execution that really ran.

Each execution's id is made here, written at once as a `running` execution-log document and
given to the engine, so its alerts and its log document share it; a `running` document left by
a killed process is reconciled with the alerts index (`detector.execution_log.records`).

Every execution goes through `engine.execute` (deterministic alert ids: backfills, catch-up and
live runs never duplicate an alert) and writes one execution-log document.

Under `detector run` the runner has a `keeper` (`detector.service.replica.Keeper`): then a rule's
due
executions run only while this replica holds the rule's lease, the scheduled times are the
rule's grid (multiples of its interval since the epoch, `detector.schedule.leases.grid_floor`), the
checkpoint is the one in the lease document, and each move of it is fenced: refused when the
lease was taken over, which the execution's log document records (`replica.fenced`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from detector.alerts.store import AlertStore
from detector.datemath import parse_interval
from detector.engine.execution import AlertWriter, execute
from detector.errors import DetectorError
from detector.es.client import Elastic
from detector.execution_log import documents, guard
from detector.execution_log.records import RunRecords
from detector.execution_log.store import ExecutionStore
from detector.logs import structured
from detector.query.baseline import ALERT, BaselineCache
from detector.results import FAILED, PARTIAL_FAILURE, ExecutionResult
from detector.rules import Rule
from detector.rules.exceptions import NO_EXCEPTIONS, ExceptionList, from_settings
from detector.schedule import catchup, leases
from detector.schedule.catchup import Gap
from detector.schedule.failed_windows import Skew
from detector.service.replica import FENCED, MOVED, Keeper, replica_id
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


@dataclass
class Runner:
    """Everything an execution needs besides the rule and its `now`."""

    elastic: Elastic
    store: AlertWriter
    log: ExecutionStore
    exceptions: ExceptionList = NO_EXCEPTIONS
    max_catchup: timedelta = DEFAULT_MAX_CATCHUP
    metrics: Metrics | None = None
    sinks: Sequence[AlertSink] = field(default=())
    keeper: Keeper | None = None
    replica_id: str | None = None
    window_attempts: int = DEFAULT_WINDOW_ATTEMPTS
    records: RunRecords = field(init=False)
    # Rules whose interrupted executions this runner reconciled since it (last) got to run them.
    _reconciled: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        alerts = self.store.index if isinstance(self.store, AlertStore) else None
        self.records = RunRecords(self.elastic, self.log.index, alerts)

    # DETECTOR_BASELINE, and how far back each rule's data reaches (asked once it is mature).
    baseline_mode: str = ALERT
    baselines: BaselineCache = field(default_factory=BaselineCache)

    @classmethod
    def for_settings(
        cls,
        elastic: Elastic,
        settings: Settings,
        *,
        ensure: bool = True,
        sinks: Sequence[AlertSink] = (),
        notify: bool = False,
    ) -> Runner:
        """A runner on `elastic` for the settings' indices (created first when `ensure`);
        with `notify`, its alerts are created pending for their notification channels."""
        store = AlertStore(elastic, settings.alerts_index)
        log = ExecutionStore(elastic, settings.execution_log_index)
        if ensure:
            store.ensure_index()
            log.ensure_index()
        exceptions = from_settings(settings)
        writer: AlertWriter = store
        if notify:
            writer = marking_writer(store, settings)
        runner = cls(elastic, writer, log, exceptions, settings.max_catchup, sinks=sinks)
        runner.replica_id = replica_id(settings)
        runner.window_attempts = settings.window_attempts
        runner.baseline_mode = settings.baseline
        return runner

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
        result, timing = self._engine(rule, now, execution_type, gap)
        self._record(rule, result, execution_type, timing, gap)
        self._deliver(rule, result)
        return result

    def _engine(
        self, rule: Rule, now: datetime, execution_type: str, gap: Gap | None = None
    ) -> tuple[ExecutionResult, documents.Timing]:
        started, execution_id = datetime.now(UTC), str(uuid.uuid4())
        log.info(
            "rule %s: executing %s (%s)",
            rule.rule_id,
            iso(now),
            execution_type,
            extra=structured(rule_id=rule.rule_id, scheduled=iso(now), execution_id=execution_id),
        )
        replica = documents.Replica(self.replica_id)
        self.records.started(rule, as_utc(now), (execution_type, execution_id), started, replica)
        result = execute(
            self.elastic,
            self.store,
            rule,
            now,
            exceptions=self.exceptions,
            execution_type=execution_type,
            execution_id=execution_id,
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
        plan = backfill_plan(rules, start, end)
        results: list[ExecutionResult] = []
        for rule, now in plan:
            results.append(self.execute(rule, now, documents.MANUAL))
            if progress is not None:
                progress(len(results), len(plan), results[-1])
        guard.clear_failed_windows(self.records, rules, results)
        return results

    def run_due(self, rule: Rule, current: datetime) -> list[ExecutionResult]:
        """The scheduled execution at `current`, after the missed ones since the checkpoint."""
        current = as_utc(current)
        if self.keeper is not None:
            return self._run_leased(rule, current, self.keeper)
        try:
            checkpoint = self.log.checkpoint(rule.rule_id)
        except DetectorError as exc:
            return [self._unreadable_checkpoint(rule, current, exc)]
        self._reconcile_once(rule)
        checkpoint, skew = guard.distrust(self.records, rule, checkpoint, current)
        due = catchup.due_executions(
            checkpoint, current, parse_interval(rule.interval), self.max_catchup
        )
        if due.behind:
            log.warning(
                "rule %s: nothing due, its checkpoint %s is not before %s",
                rule.rule_id,
                iso(checkpoint) if checkpoint else None,
                iso(current),
            )
            return []
        _announce(rule, due)

        def save(rule: Rule, now: datetime) -> str:
            self.log.save_checkpoint(rule, now)  # a failure is logged; the catch-up goes on
            return MOVED

        results: list[ExecutionResult] = []
        for position, now in enumerate(due.nows):
            first = _First(due.gap, skew) if position == 0 else _First()
            result, go_on = self._step(rule, now, first, save)
            results.append(result)
            if not go_on:
                break
        return results

    def _run_leased(self, rule: Rule, current: datetime, keeper: Keeper) -> list[ExecutionResult]:
        """`run_due` on the rule's grid, while this replica holds the rule's lease."""
        if not keeper.may_start(rule.rule_id):
            self._reconciled.discard(rule.rule_id)  # whoever holds it now may be killed
            return []
        self._reconcile_once(rule)
        interval = parse_interval(rule.interval)
        latest = leases.grid_floor(current, interval)
        checkpoint, skew = guard.distrust(
            self.records, rule, keeper.checkpoint(rule.rule_id), latest
        )
        due = catchup.due_executions(checkpoint, latest, interval, self.max_catchup, timedelta(0))
        if due.behind:  # this grid time ran already (a nudge, or a firing early in its cell)
            if skew is not None and checkpoint is not None:
                keeper.move_checkpoint(rule, checkpoint)  # back from the future
            return []
        _announce(rule, due)
        results: list[ExecutionResult] = []
        with keeper.running(rule.rule_id):
            for position, now in enumerate(due.nows):
                if not keeper.may_start(rule.rule_id):
                    why = "stopping" if keeper.draining else "lease not renewed in time"
                    log.warning(
                        "rule %s: %s; %s is left to its next holder", rule.rule_id, why, iso(now)
                    )
                    break
                first = _First(due.gap, skew) if position == 0 else _First()
                result, go_on = self._step(rule, now, first, keeper.move_checkpoint)
                results.append(result)
                if not go_on:
                    break
        return results

    def _step(
        self, rule: Rule, now: datetime, first: _First, move: Callable[[Rule, datetime], str]
    ) -> tuple[ExecutionResult, bool]:
        """One scheduled execution of a catch-up; whether the catch-up goes on. A window that
        failed its last allowed attempt is recorded as a failed window and passed (`move`)."""
        result, timing = self._engine(rule, now, documents.SCHEDULED, first.gap)
        if first.skew is not None and result.succeeded:
            result = dataclasses.replace(result, status=PARTIAL_FAILURE)
        skipped = (
            None
            if result.succeeded
            else guard.give_up(self.records, rule, result, self.window_attempts)
        )
        recorded = skipped is not None and guard.skip(self.records, skipped, self.metrics)
        moved = move(rule, now) if result.succeeded or recorded else None
        notes = [first.skew.message()] if first.skew is not None else []
        if recorded and skipped is not None:
            notes.append(skipped.message())
        extra = {"skew": first.skew.to_doc()} if first.skew is not None else {}
        self._record(
            rule, result, documents.SCHEDULED, timing, first.gap, moved == FENCED, notes, extra
        )
        self._deliver(rule, result)
        return result, moved == MOVED

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
            checkpoint = self.log.checkpoint(rule.rule_id)
        except DetectorError as exc:
            log.error("rule %s: cannot read its checkpoint: %s", rule.rule_id, exc)
            checkpoint, movable = None, False
        else:
            interval = parse_interval(rule.interval)
            movable = catchup.leaves_no_hole(checkpoint, as_utc(now), interval)
        result = self.execute(rule, now)
        if result.succeeded and movable:
            self.log.save_checkpoint(rule, as_utc(now))
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
        execution_type: str,
        timing: documents.Timing,
        gap: Gap | None,
        fenced: bool = False,
        notes: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        doc = documents.execution_doc(
            result,
            execution_id=result.execution_id or str(uuid.uuid4()),
            execution_type=execution_type,
            timing=timing,
            interval=rule.interval,
            gap=gap,
            replica=documents.Replica(self.replica_id, fenced),
            notes=notes,
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
        self.log.record(doc["execution"]["id"], doc)
        if self.metrics is not None:
            status = doc["execution"]["status"]
            seconds = gap.seconds if gap is not None else 0.0
            self.metrics.observe(result, status, execution_type, timing.ended, seconds)

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
        self._record(rule, result, documents.SCHEDULED, documents.Timing(now, now), None)
        return result


@dataclass(frozen=True)
class _First:
    """What only the first execution of a catch-up reports: the gap and the clock skew."""

    gap: Gap | None = None
    skew: Skew | None = None


def _announce(rule: Rule, due: catchup.Due) -> None:
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


def marking_writer(store: AlertWriter, settings: Settings) -> AlertWriter:
    """`store`, creating alerts pending for their channels when notifications are configured."""
    from detector.notify import routing  # lazy: only with notifications

    found = routing.from_settings(settings)
    if not found:
        return store
    from detector.notify.marks import MarkingWriter

    return MarkingWriter(store, found)


def backfill_plan(
    rules: Sequence[Rule], start: datetime, end: datetime
) -> list[tuple[Rule, datetime]]:
    """Each rule's scheduled times `start, start + interval, ... <= end`, rule after rule."""
    return [
        (rule, now)
        for rule in rules
        for now in catchup.backfill_times(as_utc(start), as_utc(end), parse_interval(rule.interval))
    ]


def backfill(
    elastic: Elastic,
    store: AlertWriter,
    log: ExecutionStore,
    rules: Sequence[Rule],
    start: datetime,
    end: datetime,
    progress: Progress | None = None,
    exceptions: ExceptionList = NO_EXCEPTIONS,
) -> list[ExecutionResult]:
    """`Runner.backfill` on these parts. The caller creates the indices first
    (`store.ensure_index()`, `log.ensure_index()`)."""
    return Runner(elastic, store, log, exceptions).backfill(rules, start, end, progress)
