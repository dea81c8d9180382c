"""One execution of one new_terms rule at `now`: find the new terms, write their alerts.

Kibana's V1 aggregation approach (§1.3 of the Kibana notes), without scripts:

1. window terms: plain composite pages of 10,000 over `[start, end]`; every page is read;
2. history (`detector.engine.history`, a `TermHistory`): which of a page's terms occur in
   `[history_start, start]` (exact: terms aggregation with `include` for one field, a
   composite under a `terms` filter per field for several); those are not new. Then the
   first-seen time (min combined timestamp) of the new terms only;
3. details, for the at most `max_signals` terms chosen: one aggregation per batch of terms,
   giving the first document, the event count and the actions.

The requests are in `detector.engine.phases`.

Then the alerts are written through the store with deterministic ids (op_type create), after the
terms already alerted in the same episode were dropped; duplicates therefore never consume the
`max_signals` budget (Kibana dedups before truncating, §2.6). Terms beyond the budget are the
overflow: counted, listed and logged, and alerted by a later execution while still new.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from detector.alerts.document import build_alert
from detector.engine import field_caps, type_split
from detector.engine.history import TermHistory, default_history
from detector.engine.outcome import Findings, Head, Meter, Trust
from detector.engine.outcome import result as outcome_result
from detector.errors import (
    BulkError,
    DetectorError,
    PartialResultError,
    TlsError,
    UnavailableError,
)
from detector.es.client import Elastic
from detector.es.responses import BulkResult
from detector.logs import structured
from detector.query.baseline import ALERT, Baseline, BaselineCache
from detector.query.bodies import Plan, WindowTerm
from detector.query.skipped import Skipped
from detector.query.window import Window, time_fields, window_for
from detector.results import (
    ExecutionContext,
    ExecutionRef,
    ExecutionResult,
    NewTerm,
    Values,
)
from detector.rules import Rule
from detector.rules.exceptions import NO_EXCEPTIONS, ExceptionList
from detector.times import as_utc, iso

log = logging.getLogger(__name__)

# Overflow terms named in the log line (all of them are in the result).
LOGGED_OVERFLOW = 20
# A new term before phase 3 (its first-seen time only) or after it (with its details).
_Term = TypeVar("_Term", WindowTerm, NewTerm)


class AlertWriter(Protocol):
    """What the engine needs from the alert store (`detector.alerts.store.AlertStore`)."""

    def already_alerted(
        self, rule: Rule, terms: Sequence[NewTerm], history: timedelta
    ) -> set[tuple[Any, ...]]:
        """Values of the terms alerted before within `history` of their first-seen time."""
        ...

    def write(
        self, alerts: Mapping[str, Mapping[str, Any]], execution_id: str | None = None
    ) -> BulkResult:
        """Create the alerts under their ids (op_type create: existing ids are no-ops; with
        `execution_id`, those this execution wrote itself count as created)."""
        ...


def execute(
    elastic: Elastic,
    store: AlertWriter,
    rule: Rule,
    now: datetime,
    *,
    dry_run: bool = False,
    exceptions: ExceptionList = NO_EXCEPTIONS,
    execution: ExecutionRef | None = None,
    history: TermHistory | None = None,
    baseline_mode: str = ALERT,
    baselines: BaselineCache | None = None,
    quiet: bool = False,
) -> ExecutionResult:
    """Run `rule` once at `now`; a failure is reported in the result, never raised.

    `history` answers phase 2 (default: `history.default_history` on `elastic`);
    `execution` is which execution this is (default: a new scheduled one): its id is the one
    its alerts carry, also in the result.
    `baseline_mode` applies unless the rule sets its own; `baselines` caches how far back each
    rule's data reaches (`detector.query.baseline`; without one it is asked every execution).
    `quiet`: the result is not logged (`explain`'s dry run: its caller says what it means).
    """
    meter = Meter.start(elastic)
    execution = execution or ExecutionRef.new("scheduled")
    window: Window | None = None
    outcome: Findings | str
    transient, lost = False, tuple[str, ...]()
    try:
        window = window_for(rule, now)
        split = type_split.plan_execution(elastic, rule, window, exceptions)
        services = _Services(
            elastic,
            store,
            history or default_history(elastic),
            rule.baseline or baseline_mode,
            baselines if baselines is not None else BaselineCache(),
        )
        outcome = _run(services, split, now, dry_run, execution)
    except DetectorError as exc:
        outcome = str(exc)
        transient = _transient(exc)
        lost = exc.clusters if isinstance(exc, PartialResultError) else ()
        # A mapping may have changed under the cached `_field_caps`: the retry asks again.
        field_caps.SHARED.clear()
    head = Head(rule, as_utc(now), execution, dry_run, window)
    result = outcome_result(head, outcome, meter.spent(elastic, outcome))
    if transient:
        result = dataclasses.replace(result, transient=True, unavailable_clusters=lost)
    if not quiet:
        _log(rule, result)
    return result


def _transient(exc: DetectorError) -> bool:
    """Whether trying again soon may succeed: Elasticsearch unreachable or busy (a TLS failure
    stays), bulk items refused or left unanswered, or a partial answer (a remote cluster or a
    node lost); a rejected query or mapping does not."""
    if isinstance(exc, TlsError):
        return False
    return isinstance(exc, UnavailableError | BulkError | PartialResultError)


@dataclass(frozen=True)
class _Services:
    """What the phases talk to."""

    elastic: Elastic
    store: AlertWriter
    history: TermHistory
    baseline_mode: str = ALERT
    baselines: BaselineCache = field(default_factory=BaselineCache)


def _run(
    services: _Services,
    split: type_split.Split,
    now: datetime,
    dry_run: bool,
    execution: ExecutionRef,
) -> Findings:
    elastic, store, plan = services.elastic, services.store, split.whole
    run = type_split.SplitPhases(elastic, services.history, split)
    baseline = _baseline(services, run)
    found = run.new_values()
    skipped = found.skipped  # counted on the first phase-1 page
    chosen = _alertable(run, store, plan, found.new, (baseline, skipped))
    context = ExecutionContext(
        execution_uuid=execution.id,
        started_at=datetime.now(UTC),
        now=as_utc(now),
        window_start=plan.window.start,
        window_end=plan.window.end,
        history_start=plan.window.history_start,
        execution_type=execution.type,
        baseline_coverage=baseline.coverage,
        baseline_since=baseline.since,
    )
    built = (build_alert(plan.rule, term, context) for term in chosen.terms)
    alerts = {alert["kibana"]["alert"]["uuid"]: alert for alert in built}  # `alert_id`
    created: tuple[str, ...] = ()
    index_seconds = 0.0
    if alerts and not dry_run:
        before = elastic.stats.seconds
        created = tuple(store.write(alerts, execution.id).created)
        index_seconds = elastic.stats.seconds - before
    return Findings(
        terms_checked=found.checked,
        new_terms=len(found.new),
        already_alerted=chosen.duplicates,
        alerts=tuple(alerts.values()),
        created_ids=created,
        overflow_terms=chosen.rest,
        index_seconds=index_seconds,
        no_index_matched=found.shards == 0,
        future_documents=found.future,
        trust=chosen.trust,
    )


@dataclass(frozen=True)
class _Chosen:
    """The new terms to alert with their details, the overflow's values, how many were alerted
    already, and what the result says of the baseline and the skipped documents."""

    terms: list[NewTerm]
    rest: tuple[Values, ...]
    duplicates: int
    trust: Trust


def _alertable(
    run: type_split.SplitPhases,
    store: AlertWriter,
    plan: Plan,
    new: list[Values],
    known: tuple[Baseline, Skipped],
) -> _Chosen:
    """The new terms to alert (`_Chosen`)."""
    baseline, skipped = known
    if baseline.holding:  # nothing alerts: the fresh terms are held, no phase 3
        fresh, duplicates = _drop_alerted(store, plan, _oldest_first(run.first_seen(new)))
        return _Chosen([], (), duplicates, _trust(baseline, skipped, fresh))
    trust = _trust(baseline, skipped, [])
    if len(new) <= plan.rule.max_signals:
        # All of them are alerted (less the duplicates): no first-seen request needed first.
        unseen = _oldest_first(run.details_unseen(new))
        terms, rest, duplicates = _choose(store, plan, unseen)
        return _Chosen(terms, tuple(term.values for term in rest), duplicates, trust)
    ordered = _oldest_first(run.first_seen(new))
    chosen, left, duplicates = _choose(store, plan, ordered)
    return _Chosen(run.details(chosen), tuple(t.values for t in left), duplicates, trust)


def _oldest_first(terms: list[_Term]) -> list[_Term]:
    # Oldest first, as Kibana's pages are read; values break ties so the choice is stable.
    return sorted(terms, key=lambda term: (term.first_seen, _sortable(term.values)))


def _trust(baseline: Baseline, skipped: Skipped, held: list[WindowTerm]) -> Trust:
    """What the result says of the baseline, the skipped documents and the terms held."""
    return Trust(
        skipped_documents=skipped.count,
        skipped_example=skipped.example(),
        baseline=baseline.to_json(),
        held_terms=tuple(term.values for term in held),
    )


def _baseline(services: _Services, run: type_split.SplitPhases) -> Baseline:
    """How far back the rule's data reaches (cached once it reaches the history start)."""
    plan = run.split.whole
    rule_id, window = plan.rule.rule_id, plan.window
    since = services.baselines.known(rule_id, window.history_start)
    if since is None:
        since = run.oldest_document()
    baseline = Baseline(since, window.history_start, window.start, services.baseline_mode)
    if services.baselines.remember(rule_id, baseline):
        log.warning(
            "rule %s: its baseline is mature now: the data (since %s) covers the whole history "
            "window from %s",
            rule_id,
            iso(since) if since is not None else None,
            iso(window.history_start),
            extra=structured(rule_id=rule_id, baseline=baseline.to_json()),
        )
    return baseline


def _sortable(values: Values) -> tuple[tuple[bool, Any], ...]:
    # Strings and numbers never compare with each other: order by kind first.
    return tuple((isinstance(value, str), value) for value in values)


# --- dedup and phase 3 ----------------------------------------------------------------------


def _choose(
    store: AlertWriter, plan: Plan, ordered: list[_Term]
) -> tuple[list[_Term], list[_Term], int]:
    """The at most `max_signals` oldest terms not alerted yet, the overflow, and the duplicates.

    Only the terms that can still alert are checked against the alerts index: the oldest
    `max_signals` first, then (while duplicates left room) twice as many of the next each round,
    so a flood of 10,000 new terms costs one small check, not one over all of them. The overflow
    is what was not chosen; its terms not checked yet are dedup'ed by the execution that alerts
    them.
    """
    budget = plan.rule.max_signals
    chosen: list[_Term] = []
    duplicates, position, size = 0, 0, budget
    while len(chosen) < budget and position < len(ordered):
        batch = ordered[position : position + size]
        position, size = position + len(batch), size * 2
        fresh, alerted = _drop_alerted(store, plan, batch)
        chosen.extend(fresh)
        duplicates += alerted
    return chosen[:budget], chosen[budget:] + ordered[position:], duplicates


def _drop_alerted(store: AlertWriter, plan: Plan, ordered: list[_Term]) -> tuple[list[_Term], int]:
    """The terms not alerted yet in this episode, and how many were."""
    if not ordered:
        return [], 0
    probes = [NewTerm(term.values, term.first_seen, {}) for term in ordered]
    alerted = store.already_alerted(plan.rule, probes, plan.window.history_length)
    fresh = [term for term in ordered if term.values not in alerted]
    return fresh, len(ordered) - len(fresh)


def _log(rule: Rule, result: ExecutionResult) -> None:
    fields = result.to_json()
    fields["overflow_terms"] = fields["overflow_terms"][:LOGGED_OVERFLOW]
    fields["held_terms"] = fields["held_terms"][:LOGGED_OVERFLOW]
    if result.no_index_matched:
        log.warning(
            "rule %s: no index matched its index patterns %s",
            result.rule_id,
            ", ".join(rule.index),
            extra=structured(**fields),
        )
    if result.future_documents:
        log.warning(
            "rule %s: %d document(s) have %s in the future (they will alert late)",
            result.rule_id,
            result.future_documents,
            time_fields(rule).primary,
            extra=structured(**fields),
        )
    if result.succeeded:
        log.info(
            "rule %s: %d new term(s), %d alert(s) written, %d left over%s",
            result.rule_id,
            result.new_terms,
            result.alerts_written,
            result.overflow,
            result.trust_text(),
            extra=structured(**fields),
        )
    else:
        log.error("rule %s failed: %s", result.rule_id, result.error, extra=structured(**fields))
