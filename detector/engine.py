"""One execution of one new_terms rule at `now`: find the new terms, write their alerts.

Kibana's V1 aggregation approach (§1.3 of the Kibana notes), without scripts:

1. window terms: plain composite pages of 10,000 over `[start, end]`; every page is read;
2. history (`detector.history`, a `TermHistory`): which of a page's terms occur in
   `[history_start, start]` (exact: terms aggregation with `include` for one field, a
   composite under a `terms` filter per field for several); those are not new. Then the
   first-seen time (min combined timestamp) of the new terms only;
3. details, for the at most `max_signals` terms chosen: one aggregation per batch of terms,
   giving the first document, the event count and the actions.

The requests are in `detector.phases`.

Then the alerts are written through the store with deterministic ids (op_type create), after the
terms already alerted in the same episode were dropped; duplicates therefore never consume the
`max_signals` budget (Kibana dedups before truncating, §2.6). Terms beyond the budget are the
overflow: counted, listed and logged, and alerted by a later execution while still new.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from detector import kql, phases, query
from detector.alerts import alert_id, build_alert
from detector.allowlist import EMPTY_ALLOWLIST, Allowlist
from detector.baseline import ALERT, HELD_TERMS_RECORDED, Baseline, BaselineCache
from detector.errors import DetectorError
from detector.es import BulkResult, Elastic
from detector.history import TermHistory, default_history
from detector.logs import structured
from detector.query import Plan, WindowTerm
from detector.results import (
    PARTIAL_FAILURE,
    SUCCEEDED,
    ExecutionContext,
    ExecutionResult,
    NewTerm,
    Values,
)
from detector.rules import Rule
from detector.skipped import Skipped
from detector.times import as_utc, iso
from detector.window import time_fields, window_for

log = logging.getLogger(__name__)

# Overflow terms named in the log line (all of them are in the result).
LOGGED_OVERFLOW = 20


class AlertWriter(Protocol):
    """What the engine needs from the alert store (`detector.alert_store.AlertStore`)."""

    def already_alerted(
        self, rule: Rule, terms: Sequence[NewTerm], history: timedelta
    ) -> set[tuple[Any, ...]]:
        """Values of the terms alerted before within `history` of their first-seen time."""
        ...

    def write(self, alerts: Mapping[str, Mapping[str, Any]]) -> BulkResult:
        """Create the alerts under their ids (op_type create: existing ids are no-ops)."""
        ...


def execute(
    elastic: Elastic,
    store: AlertWriter,
    rule: Rule,
    now: datetime,
    *,
    dry_run: bool = False,
    allowlist: Allowlist = EMPTY_ALLOWLIST,
    execution_type: str = "scheduled",
    history: TermHistory | None = None,
    baseline_mode: str = ALERT,
    baselines: BaselineCache | None = None,
) -> ExecutionResult:
    """Run `rule` once at `now`; a failure is reported in the result, never raised.

    `history` answers phase 2 (default: `history.default_history` on `elastic`).
    `baseline_mode` applies unless the rule sets its own; `baselines` caches how far back each
    rule's data reaches (`detector.baseline`; without one it is asked every execution).
    """
    started, requests, waited = time.monotonic(), elastic.stats.requests, elastic.stats.seconds
    outcome: dict[str, Any] = {"dry_run": dry_run}
    try:
        window = window_for(rule, now)
        outcome.update(
            window_start=window.start, window_end=window.end, history_start=window.history_start
        )
        base = query.rule_filter(kql.to_dsl(rule.query), allowlist.must_not(rule.rule_id))
        plan = Plan(rule, window, time_fields(rule), base)
        services = _Services(
            elastic,
            store,
            history or default_history(elastic),
            rule.baseline or baseline_mode,
            baselines if baselines is not None else BaselineCache(),
        )
        outcome.update(_run(services, plan, now, dry_run, execution_type))
        outcome["status"] = PARTIAL_FAILURE if outcome["overflow"] else SUCCEEDED
    except DetectorError as exc:
        outcome.update(status="failed", error=str(exc))
    searched = elastic.stats.seconds - waited - outcome.pop("index_seconds", 0.0)
    result = ExecutionResult(
        rule_id=rule.rule_id,
        rule_name=rule.name,
        now=as_utc(now),
        duration_ms=round((time.monotonic() - started) * 1000),
        search_ms=round(max(searched, 0.0) * 1000),
        requests=elastic.stats.requests - requests,
        **outcome,
    )
    _log(result)
    return result


@dataclass(frozen=True)
class _Services:
    """What the phases talk to."""

    elastic: Elastic
    store: AlertWriter
    history: TermHistory
    baseline_mode: str = ALERT
    baselines: BaselineCache = field(default_factory=BaselineCache)


def _run(
    services: _Services, plan: Plan, now: datetime, dry_run: bool, execution_type: str
) -> dict[str, Any]:
    elastic, store = services.elastic, services.store
    skipped = phases.skipped_documents(elastic, plan)
    baseline = _baseline(services, plan)
    found = phases.new_values(elastic, services.history, plan)
    new = phases.first_seen(elastic, plan, found.new)
    # Oldest first, as Kibana's pages are read; values break ties so the choice is stable.
    ordered = sorted(new, key=lambda term: (term.first_seen, _sortable(term.values)))
    fresh, duplicates = _drop_alerted(store, plan, ordered)
    fresh, trust = _trust(baseline, skipped, fresh)
    chosen, rest = fresh[: plan.rule.max_signals], fresh[plan.rule.max_signals :]
    terms = phases.details(elastic, plan, chosen)
    context = ExecutionContext(
        execution_uuid=str(uuid.uuid4()),
        started_at=datetime.now(UTC),
        now=as_utc(now),
        window_start=plan.window.start,
        window_end=plan.window.end,
        history_start=plan.window.history_start,
        execution_type=execution_type,
        baseline_coverage=baseline.coverage,
        baseline_since=baseline.since,
    )
    alerts = {alert_id(plan.rule, term): build_alert(plan.rule, term, context) for term in terms}
    created: tuple[str, ...] = ()
    index_seconds = 0.0
    if alerts and not dry_run:
        before = elastic.stats.seconds
        created = tuple(store.write(alerts).created)
        index_seconds = elastic.stats.seconds - before
    return {
        "terms_checked": found.checked,
        "new_terms": len(found.new),
        "already_alerted": duplicates,
        "alerts_written": len(created),
        "alerts": tuple(alerts.values()),
        "created_ids": created,
        "overflow": len(rest),
        "overflow_terms": tuple(term.values for term in rest),
        "index_ms": round(index_seconds * 1000),
        "index_seconds": index_seconds,
        **trust,
    }


def _trust(
    baseline: Baseline, skipped: Skipped, fresh: list[WindowTerm]
) -> tuple[list[WindowTerm], dict[str, Any]]:
    """The terms to alert, and what the result says of the baseline and the skipped documents:
    with `hold` and an immature baseline, every fresh term is held instead of alerted."""
    trust: dict[str, Any] = {
        "skipped_documents": skipped.count,
        "skipped_example": skipped.example(),
        "baseline": baseline.to_json(),
    }
    if not baseline.holding:
        return fresh, trust
    held = tuple(term.values for term in fresh)
    trust.update(held=len(held), held_terms=held[:HELD_TERMS_RECORDED])
    return [], trust


def _baseline(services: _Services, plan: Plan) -> Baseline:
    """How far back the rule's data reaches (cached once it reaches the history start)."""
    rule_id, window = plan.rule.rule_id, plan.window
    since = services.baselines.known(rule_id, window.history_start)
    if since is None:
        since = phases.oldest_document(services.elastic, plan)
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


def _drop_alerted(
    store: AlertWriter, plan: Plan, ordered: list[WindowTerm]
) -> tuple[list[WindowTerm], int]:
    """The terms not alerted yet in this episode, and how many were."""
    if not ordered:
        return [], 0
    probes = [NewTerm(term.values, term.first_seen, {}) for term in ordered]
    alerted = store.already_alerted(plan.rule, probes, plan.window.history_length)
    fresh = [term for term in ordered if term.values not in alerted]
    return fresh, len(ordered) - len(fresh)


def _log(result: ExecutionResult) -> None:
    fields = result.to_json()
    fields["overflow_terms"] = fields["overflow_terms"][:LOGGED_OVERFLOW]
    fields["held_terms"] = fields["held_terms"][:LOGGED_OVERFLOW]
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
