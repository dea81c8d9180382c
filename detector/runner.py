"""Executions as the service runs them: catch-up, checkpoint, execution log, metrics, backfill.

`Runner.run_due(rule, current)` is what the scheduler calls with the wall clock (tests call it
with chosen times): it reads the rule's checkpoint, runs every due execution oldest first
(`detector.catchup.plan`), reports a gap beyond `max_catchup` as a warning and in the first
execution's log document, and moves the checkpoint after each success. A failed execution
stops the catch-up and leaves the checkpoint where it was, so the next one retries its window.

Every execution goes through `engine.execute` (deterministic alert ids: backfills, catch-up and
live runs never duplicate an alert) and writes one execution-log document.

Under `detector run` the runner has a `keeper` (`detector.replica.Keeper`): then a rule's due
executions run only while this replica holds the rule's lease, the scheduled times are the
rule's grid (multiples of its interval since the epoch, `detector.leases.grid_floor`), the
checkpoint is the one in the lease document, and each move of it is fenced: refused when the
lease was taken over, which the execution's log document records (`replica.fenced`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from detector import catchup, execution_docs, leases
from detector.alert_store import AlertStore
from detector.allowlist import EMPTY_ALLOWLIST, Allowlist, from_settings
from detector.baseline import ALERT, BaselineCache
from detector.catchup import Gap
from detector.datemath import parse_interval
from detector.engine import AlertWriter, execute
from detector.errors import DetectorError
from detector.es import Elastic
from detector.execution_store import ExecutionStore
from detector.logs import structured
from detector.replica import FENCED, MOVED, Keeper, replica_id
from detector.results import FAILED, PARTIAL_FAILURE, ExecutionResult
from detector.rules import Rule
from detector.settings import Settings
from detector.sinks import AlertSink
from detector.times import as_utc, iso

if TYPE_CHECKING:
    from detector.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_MAX_CATCHUP = timedelta(hours=24)

# Called after each backfill execution with (done, total, result).
Progress = Callable[[int, int, ExecutionResult], None]


@dataclass
class Runner:
    """Everything an execution needs besides the rule and its `now`."""

    elastic: Elastic
    store: AlertWriter
    log: ExecutionStore
    allowlist: Allowlist = EMPTY_ALLOWLIST
    max_catchup: timedelta = DEFAULT_MAX_CATCHUP
    metrics: Metrics | None = None
    sinks: Sequence[AlertSink] = field(default=())
    keeper: Keeper | None = None
    replica_id: str | None = None
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
    ) -> Runner:
        """A runner on `elastic` for the settings' indices (created first when `ensure`)."""
        store = AlertStore(elastic, settings.alerts_index)
        log = ExecutionStore(elastic, settings.execution_log_index)
        if ensure:
            store.ensure_index()
            log.ensure_index()
        allowlist = from_settings(settings)
        runner = cls(elastic, store, log, allowlist, settings.max_catchup_delta, sinks=sinks)
        runner.replica_id = replica_id(settings)
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
            allowlist=self.allowlist,
            baseline_mode=self.baseline_mode,
            baselines=self.baselines,
        )

    def execute(
        self,
        rule: Rule,
        now: datetime,
        execution_type: str = execution_docs.SCHEDULED,
        gap: Gap | None = None,
    ) -> ExecutionResult:
        """One execution, logged to the execution log (and counted in the metrics)."""
        result, timing = self._engine(rule, now, execution_type, gap)
        self._record(rule, result, execution_type, timing, gap)
        self._deliver(rule, result)
        return result

    def _engine(
        self, rule: Rule, now: datetime, execution_type: str, gap: Gap | None = None
    ) -> tuple[ExecutionResult, execution_docs.Timing]:
        started = datetime.now(UTC)
        log.info(
            "rule %s: executing %s (%s)",
            rule.rule_id,
            iso(now),
            execution_type,
            extra=structured(rule_id=rule.rule_id, scheduled=iso(now)),
        )
        result = execute(
            self.elastic,
            self.store,
            rule,
            now,
            allowlist=self.allowlist,
            execution_type=execution_type,
            baseline_mode=self.baseline_mode,
            baselines=self.baselines,
        )
        if gap is not None and result.succeeded:
            # The gap before it makes a success partial, as in the execution log.
            result = dataclasses.replace(result, status=PARTIAL_FAILURE)
        return result, execution_docs.Timing(started, datetime.now(UTC))

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
            results.append(self.execute(rule, now, execution_docs.MANUAL))
            if progress is not None:
                progress(len(results), len(plan), results[-1])
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
        due = catchup.plan(checkpoint, current, parse_interval(rule.interval), self.max_catchup)
        if due.behind:
            log.warning(
                "rule %s: nothing due, its checkpoint %s is not before %s (clock went back?)",
                rule.rule_id,
                iso(checkpoint) if checkpoint else None,
                iso(current),
            )
            return []
        _announce(rule, due)
        results: list[ExecutionResult] = []
        for position, now in enumerate(due.nows):
            result = self.execute(rule, now, gap=due.gap if position == 0 else None)
            results.append(result)
            if not result.succeeded:
                break
            self.log.save_checkpoint(rule, now)
        return results

    def _run_leased(self, rule: Rule, current: datetime, keeper: Keeper) -> list[ExecutionResult]:
        """`run_due` on the rule's grid, while this replica holds the rule's lease."""
        if not keeper.may_start(rule.rule_id):
            return []
        interval = parse_interval(rule.interval)
        latest = leases.grid_floor(current, interval)
        checkpoint = keeper.checkpoint(rule.rule_id)
        due = catchup.plan(checkpoint, latest, interval, self.max_catchup, timedelta(0))
        if due.behind:  # this grid time ran already (a nudge, or a firing early in its cell)
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
                gap = due.gap if position == 0 else None
                result, timing = self._engine(rule, now, execution_docs.SCHEDULED, gap)
                moved = keeper.move_checkpoint(rule, now) if result.succeeded else None
                fenced = moved == FENCED
                self._record(rule, result, execution_docs.SCHEDULED, timing, gap, fenced)
                self._deliver(rule, result)
                results.append(result)
                if moved != MOVED:
                    break
        return results

    def once(self, rule: Rule, now: datetime, *, manual: bool) -> ExecutionResult:
        """`detector once`: one execution; a scheduled one moves the checkpoint unless that
        would skip missed executions (those are left for `detector run` to catch up)."""
        if manual:
            return self.execute(rule, now, execution_docs.MANUAL)
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
        timing: execution_docs.Timing,
        gap: Gap | None,
        fenced: bool = False,
    ) -> None:
        doc = execution_docs.execution_doc(
            result,
            execution_id=uuid.uuid4().hex,
            execution_type=execution_type,
            timing=timing,
            interval=rule.interval,
            gap=gap,
            replica=execution_docs.Replica(self.replica_id, fenced),
        )
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
        self._record(rule, result, execution_docs.SCHEDULED, execution_docs.Timing(now, now), None)
        return result


def _announce(rule: Rule, due: catchup.Plan) -> None:
    if due.gap is not None:
        log.warning(
            "rule %s: %s",
            rule.rule_id,
            execution_docs.gap_message(due.gap),
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
    allowlist: Allowlist = EMPTY_ALLOWLIST,
) -> list[ExecutionResult]:
    """`Runner.backfill` on these parts. The caller creates the indices first
    (`store.ensure_index()`, `log.ensure_index()`)."""
    return Runner(elastic, store, log, allowlist).backfill(rules, start, end, progress)
