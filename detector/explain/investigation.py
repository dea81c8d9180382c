"""`detector explain`: gather the facts about one term at one time (the verdict is pure, in
`detector.explain.verdict`).

The plan is the engine's own (`type_split.plan_execution`: the filter of query and exceptions,
the groups of indices of one type per field, each group's exception values), and so are the
requests, so the answer is the one an execution at that time gives: the first-seen time and
first document of the window (`SplitPhases.first_seen`, `.details`), the newest history
document and the exception entries that removed documents of the term (asked of each group in
the spellings it can hold), an alert of the same episode, the baseline
(`SplitPhases.oldest_document`) and, for a new term without an alert, whether it was beyond
`max_signals`: a dry run of that execution which counts as alerted only the alerts of executions
scheduled before it, as they were when it ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from detector import kql
from detector.alerts.document import term_key
from detector.alerts.store import AlertStore
from detector.engine import execution, type_split
from detector.engine.history import default_history
from detector.errors import DetectorError
from detector.es.client import Elastic
from detector.es.responses import BulkResult
from detector.explain.verdict import (
    DocRef,
    ExceptionMatch,
    Explanation,
    episode_alert_body,
    exceptions_body,
    latest_history_body,
    newest,
    parse_episode_alert,
    parse_exceptions,
    parse_latest_history,
    spelled,
)
from detector.query.baseline import ALERT, Baseline
from detector.query.bodies import Body
from detector.query.window import window_for
from detector.results import ExecutionRef, NewTerm, Values
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

    def write(
        self, alerts: Mapping[str, Mapping[str, Any]], execution_id: str | None = None
    ) -> BulkResult:
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
    run = _Term(
        type_split.SplitPhases(
            elastic,
            default_history(elastic),
            type_split.plan_execution(elastic, rule, window, exceptions),
        ),
        values,
    )
    facts = _window_facts(run)
    since = run.phases.oldest_document()
    baseline = Baseline(since, window.history_start, window.start, rule.baseline or baseline_mode)
    explanation = Explanation(
        rule.rule_id,
        rule.new_terms_fields,
        values,
        at,
        window,
        last_history=_latest(run),
        exceptions=_exceptions(run, exceptions),
        alert_id=_episode_alert(store, run, facts.get("first_seen")),
        baseline=baseline.to_json(),
        held=baseline.holding,
        enabled=rule.enabled,
        **facts,
    )
    if explanation.new and explanation.alert_id is None and not explanation.held:
        overflow = _overflow(store, run, at, exceptions, baseline_mode)
        explanation = _with(explanation, overflow=overflow)
    return explanation


class _Term:
    """The term asked about, in the execution's plan: in the form the engine's terms have
    (`type_split.Split.as_found`), and each group of indices with its spellings of it.

    With fields of conflicting types, phase 1 is read first, as the engine reads it: a
    `keyword` group is asked every spelling of the address the window holds."""

    def __init__(self, phases: type_split.SplitPhases, values: Values) -> None:
        self.phases, self.elastic = phases, phases.elastic
        self.whole = phases.split.whole
        self.canonical = phases.split.as_found(values)
        if phases.split.canonical_fields:
            phases.read_window()
        self.groups = phases.per_group([self.canonical])

    def searches(self, body: Callable[[type_split.Asked, Body], Body]) -> list[dict[str, Any]]:
        """The answers of `body`, given each group asked and its clause for the term."""
        fields = self.whole.terms_fields
        return [
            self.elastic.search(
                group.plan.index,
                body(group, spelled(fields, list(group.spellings))),
                group.plan.clusters,
            )
            for group in self.groups
        ]


def _window_facts(run: _Term) -> dict[str, Any]:
    """Count, first-seen time and first document of the term in the window (phase 3's)."""
    if not run.groups:  # no index can hold it (`AWS Internal` where the field is `ip`)
        return {}
    found = run.phases.first_seen([run.canonical])
    if not found:
        return {}
    details = run.phases.details(found)
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


def _latest(run: _Term) -> DocRef | None:
    def body(asked: type_split.Asked, term: Body) -> Body:
        plan = asked.plan
        return latest_history_body(plan.base, plan.fields, plan.window, term)

    return newest([parse_latest_history(answer) for answer in run.searches(body)])


def _exceptions(run: _Term, exceptions: ExceptionList) -> tuple[ExceptionMatch, ...]:
    entries = [item for item in exceptions.items if item.applies_to(run.whole.rule.rule_id)]
    if not entries:
        return ()
    query = kql.to_dsl(run.whole.rule.query)

    def body(asked: type_split.Asked, term: Body) -> Body:
        # Each entry's values this group can hold, as the engine's filter has them.
        clauses = [entry.clauses(asked.group.holds) for entry in entries]
        return exceptions_body(query, asked.plan.fields, asked.plan.window, term, clauses)

    return parse_exceptions(run.searches(body), entries)


def _episode_alert(store: AlertStore, run: _Term, first: datetime | None) -> str | None:
    """The alert of the term's episode (its key of the canonical term, as the engine's)."""
    window, rule = run.whole.window, run.whole.rule
    around = first if first is not None else window.start
    key = term_key(rule, run.canonical)
    body = episode_alert_body(rule.rule_id, key, around, window.history_length)
    return parse_episode_alert(run.elastic.search([store.index], body))


def _overflow(
    store: AlertStore, run: _Term, at: datetime, exceptions: ExceptionList, baseline_mode: str
) -> bool:
    """Whether the execution at `at` left the term beyond `max_signals` (a dry run of it)."""
    result = execution.execute(
        run.elastic,
        _AsOf(store, at),
        run.whole.rule,
        at,
        dry_run=True,
        exceptions=exceptions,
        execution=ExecutionRef.new("manual"),
        baseline_mode=baseline_mode,
        quiet=True,
    )
    if not result.succeeded:
        raise DetectorError(f"the execution at that time fails: {result.error}")
    return run.canonical in set(result.overflow_terms)


def _with(explanation: Explanation, **changes: Any) -> Explanation:
    return dataclasses.replace(explanation, **changes)
