"""Runs a fixture's cases with the real engine, in throw-away indices of a real node.

For each case: one data index per index pattern its events use (the CloudTrail integration's
mapping, `detector.ruletest.data`) and one alerts index, all named
`newterms-ruletest-<token>-<case>-...` and created here (an existing name is refused: the test
writes only indices it creates); the events in one bulk request per index and one refresh; then
the rule, its index patterns replaced by those indices only (a user's data never changes an
outcome), runs at each of the case's times through `Runner.execute` as `detector once --at`
runs it (a manual execution), its execution log in an index of the session's own. The case's
indices are deleted after it, the log's at the end of the session.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from detector.alerts.store import AlertStore
from detector.errors import DetectorError, RuleTestIndexError
from detector.es.client import Elastic
from detector.es.templates import MANAGED_BY
from detector.execution_log import documents
from detector.execution_log.store import ExecutionStore
from detector.rules import Rule
from detector.rules.exceptions import ExceptionList
from detector.ruletest.data import data_mappings
from detector.ruletest.fixture import Case, Fixture
from detector.ruletest.verdict import CaseResult, RunOutcome, compare
from detector.service.runner import Runner

PREFIX = "newterms-ruletest"
_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0}
REFRESH_INTERVAL = "50ms"
# Cases run side by side: each spends most of its time waiting for the node.
PARALLEL_CASES = 4


class Session:
    """The indices of one `rules test` run: a token, and the execution log they share."""

    def __init__(self, elastic: Elastic, token: str | None = None) -> None:
        self.elastic = elastic
        self.token = token or uuid.uuid4().hex[:10]
        self.log = ExecutionStore(elastic, f"{PREFIX}-{self.token}-executions")
        self.cases = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Session:
        _create(self.elastic, self.log.index, ExecutionStore.template_body(self.log.index))
        return self

    def __exit__(self, *_exc: object) -> None:
        self.elastic.delete_index(self.log.index)

    def run_fixture(self, fixture: Fixture, rule: Rule) -> list[CaseResult]:
        """Every case of the fixture, in order."""
        return [self.run_case(fixture, rule, case) for case in fixture.cases]

    def run_case(self, fixture: Fixture, rule: Rule, case: Case) -> CaseResult:
        """One case in indices of its own, deleted afterwards."""
        started = time.monotonic()
        with self._lock:
            self.cases += 1
            number = self.cases
        result = CaseResult(fixture.path, rule.rule_id, case)
        try:
            with self._indices(rule, case, number) as (patterns, alerts):
                runs = self._execute(_for_case(rule, case, patterns), case, alerts)
        except DetectorError as exc:
            return dataclasses.replace(result, error=str(exc), seconds=_since(started))
        failed = next((run.error for run in runs if run.error is not None), None)
        return dataclasses.replace(
            result,
            runs=tuple(runs),
            differences=compare(case, runs, rule.new_terms_fields),
            error=None if failed is None else f"an execution failed: {failed}",
            seconds=_since(started),
        )

    @contextmanager
    def _indices(self, rule: Rule, case: Case, number: int) -> Iterator[tuple[dict[str, str], str]]:
        base = f"{PREFIX}-{self.token}-{number}"
        patterns = _used_patterns(rule, case)
        names = {pattern: f"{base}-{_slug(pattern)}" for pattern in patterns}
        alerts = f"{base}-alerts"
        created: list[str] = []
        try:
            for name in names.values():
                body = {"settings": _SETTINGS, "mappings": data_mappings(MANAGED_BY)}
                created.append(_create(self.elastic, name, body))
            created.append(_create(self.elastic, alerts, _alerts_body(alerts)))
            self._load(rule, case, names)
            yield names, alerts
        finally:
            if created:
                self.elastic.delete_index(",".join(created))

    def _load(self, rule: Rule, case: Case, names: dict[str, str]) -> None:
        docs: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in names.values()}
        for number, event in enumerate(case.events):
            docs[names[event.index or rule.index[0]]][f"event-{number}"] = event.doc
        for name, batch in docs.items():
            if batch:
                self.elastic.bulk_create(name, batch, refresh=False)
        self.elastic.refresh(",".join(names.values()))

    def _execute(self, rule: Rule, case: Case, alerts: str) -> list[RunOutcome]:
        store = AlertStore(self.elastic, alerts)
        runner = Runner.on(self.elastic, store, self.log, exceptions=ExceptionList(case.exceptions))
        outcomes = []
        for run in case.runs:
            result = runner.execute(rule, run.at, documents.MANUAL)
            terms = tuple(
                tuple(alert["kibana"]["alert"]["new_terms"]) for alert in result.created_alerts()
            )
            outcomes.append(RunOutcome(run.at, terms, result.status, result.error))
        return outcomes


def _create(elastic: Elastic, name: str, body: dict[str, Any]) -> str:
    """Create `name` from `body` (a template's `template` part, or settings and mappings)."""
    if not elastic.create_index(name, body.get("template", body)):
        raise RuleTestIndexError(
            f"index {name} exists already: refused (a test writes only indices it creates)"
        )
    return name


def _alerts_body(name: str) -> dict[str, Any]:
    """The alerts index's template body, refreshed every 50 ms: the alert store writes with
    `refresh=wait_for`, which waits for the next periodic refresh (1 s by default)."""
    body: dict[str, Any] = AlertStore.template_body(name)["template"]
    body["settings"]["index"]["refresh_interval"] = REFRESH_INTERVAL
    return body


def _used_patterns(rule: Rule, case: Case) -> list[str]:
    """The rule's index patterns the case's events land in (the first one at least)."""
    used = {event.index or rule.index[0] for event in case.events}
    return [pattern for pattern in rule.index if pattern in used] or [rule.index[0]]


def _for_case(rule: Rule, case: Case, names: dict[str, str]) -> Rule:
    """The rule as the case runs it: on its indices only, with the case's settings."""
    return dataclasses.replace(
        rule,
        index=tuple(names.values()),
        max_signals=case.max_signals or rule.max_signals,
        baseline=case.baseline or rule.baseline,
        enabled=True,
    )


def _slug(pattern: str) -> str:
    """An index pattern as part of an index name (`filebeat-*` -> `filebeat`)."""
    return re.sub(r"[^a-z0-9._-]+", "", pattern.lower()).strip("-._") or "data"


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def run_all(elastic: Elastic, work: Sequence[tuple[Fixture, Rule]]) -> list[CaseResult]:
    """Every case of every fixture, in one session, `PARALLEL_CASES` at a time (each in its
    own indices), in order."""
    cases = [(fixture, rule, case) for fixture, rule in work for case in fixture.cases]
    with Session(elastic) as session, ThreadPoolExecutor(PARALLEL_CASES) as pool:
        return list(pool.map(lambda item: session.run_case(*item), cases))
