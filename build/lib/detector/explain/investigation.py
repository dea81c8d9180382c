"""`detector explain`: gather the facts about one term at one time (the verdict is pure, in
`detector.explain.verdict`).

Every request is the engine's own, with the engine's filter (query and exceptions), so the
answer is the one an execution at that time gives: the first-seen time and first document of the
window (`phases.first_seen`, `phases.details`), the newest history document, the exception
entries that removed documents of the term, an alert of the same episode, the baseline
(`phases.oldest_document`) and, for a new term without an alert, whether it was beyond
`max_signals`: a dry run of that execution which counts as alerted only the alerts of executions
scheduled before it, as they were when it ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from detector import kql
from detector.alerts.document import term_key
from detector.alerts.store import AlertStore
from detector.engine import execution, phases
from detector.errors import DetectorError
from detector.es.client import BulkResult, Elastic
from detector.explain.verdict import (
    DocRef,
    ExceptionMatch,
    Explanation,
    episode_alert_body,
    exceptions_body,
    latest_history_body,
    parse_episode_alert,
    parse_exceptions,
    parse_latest_history,
)
from detector.query import bodies
from detector.query.baseline import ALERT, Baseline
from detector.query.bodies import Plan
from detector.query.window import time_fields, window_for
from detector.results import NewTerm, Values
from detector.rules import Rule
from detector.rules.exceptions import NO_EXCEPTIONS, ExceptionList
from detector.times import as_utc


class _AsOf:
    """The alert store as it was when the execution at `at` started: only alerts of earlier
    executions count as alerted; nothing is written."""

    def __init__(self, store: AlertStore, at: datetime) -> None:
        self.store, self.at = store, at

    def already_alerted(
        self, rule: Rule, terms: Sequence[NewTerm], history: timedelta
    ) -> set[tuple[Any, ...]]:
        return self.store.already_alerted(rule, terms, history, before=self.at)

    def write(self, alerts: Mapping[str, Mapping[str, Any]]) -> BulkResult:
        raise DetectorError("detector explain writes no alert")  # its dry run never calls this


def explain(
    elastic: Elastic,
    store: AlertStore,
    rule: Rule,
    at: datetime,
    values: Values,
    *,
    exceptions: ExceptionList = NO_EXCEPTIONS,
    baseline_mode: str = ALERT,
) -> Explanation:
    """Why `values` of the rule's new-terms fields did or did not alert at `at` (raises
    `DetectorError` when a request fails)."""
    at = as_utc(at)
    window = window_for(rule, at)
    base = bodies.rule_filter(kql.to_dsl(rule.query), exceptions.must_not(rule.rule_id))
    plan = Plan(rule, window, time_fields(rule), base)
    facts = _window_facts(elastic, plan, values)
    since = phases.oldest_document(elastic, plan)
    baseline = Baseline(since, window.history_start, window.start, rule.baseline or baseline_mode)
    explanation = Explanation(
        rule.rule_id,
        rule.new_terms_fields,
        values,
        at,
        window,
        last_history=parse_latest_history(_search(elastic, plan, _latest(plan, values))),
        exceptions=_exceptions(elastic, plan, values, exceptions),
        alert_id=_episode_alert(elastic, store, plan, values, facts.get("first_seen")),
        baseline=baseline.to_json(),
        held=baseline.holding,
        **facts,
    )
    if explanation.new and explanation.alert_id is None and not explanation.held:
        overflow = _overflow(elastic, store, rule, at, values, exceptions, baseline_mode)
        explanation = _with(explanation, overflow=overflow)
    return explanation


def _window_facts(elastic: Elastic, plan: Plan, values: Values) -> dict[str, Any]:
    """Count, first-seen time and first document of the term in the window (phase 3's)."""
    found = phases.first_seen(elastic, plan, [values])
    if not found:
        return {}
    details = phases.details(elastic, plan, found)
    if not details:
        return {}
    (term,) = details
    hit = term.hit
    first = DocRef(term.first_seen, str(hit.get("_index")), str(hit.get("_id")))
    return {
        "window_count": term.event_count,
        "first_seen": term.first_seen,
        "first_document": first,
    }


def _latest(plan: Plan, values: Values) -> dict[str, Any]:
    return latest_history_body(plan.base, plan.fields, plan.window, plan.terms_fields, values)


def _exceptions(
    elastic: Elastic, plan: Plan, values: Values, exceptions: ExceptionList
) -> tuple[ExceptionMatch, ...]:
    entries = [item for item in exceptions.items if item.applies_to(plan.rule.rule_id)]
    if not entries:
        return ()
    body = exceptions_body(
        kql.to_dsl(plan.rule.query), plan.fields, plan.window, plan.terms_fields, values, entries
    )
    return parse_exceptions(_search(elastic, plan, body), entries)


def _episode_alert(
    elastic: Elastic, store: AlertStore, plan: Plan, values: Values, first: datetime | None
) -> str | None:
    around = first if first is not None else plan.window.start
    key = term_key(plan.rule, values)
    body = episode_alert_body(plan.rule.rule_id, key, around, plan.window.history_length)
    return parse_episode_alert(elastic.search([store.index], body))


def _overflow(
    elastic: Elastic,
    store: AlertStore,
    rule: Rule,
    at: datetime,
    values: Values,
    exceptions: ExceptionList,
    baseline_mode: str,
) -> bool:
    """Whether the execution at `at` left the term beyond `max_signals` (a dry run of it)."""
    result = execution.execute(
        elastic,
        _AsOf(store, at),
        rule,
        at,
        dry_run=True,
        exceptions=exceptions,
        execution_type="manual",
        baseline_mode=baseline_mode,
    )
    if not result.succeeded:
        raise DetectorError(f"the execution at that time fails: {result.error}")
    return values in set(result.overflow_terms)


def _search(elastic: Elastic, plan: Plan, body: dict[str, Any]) -> dict[str, Any]:
    return elastic.search(plan.rule.index, body)


def _with(explanation: Explanation, **changes: Any) -> Explanation:
    return dataclasses.replace(explanation, **changes)
