"""Many rules on a bounded pool: the same results as one after the other, each execution's own
request count, never more executions at once than `rule_concurrency`."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

from detector.engine import field_caps
from detector.es.client import Elastic
from detector.results import ExecutionResult
from detector.rules import Rule
from detector.service import pool
from detector.service.runner import Runner
from detector.settings import Settings
from tests.integration.test_engine import T0, cloudtrail_index, event, token_rule
from tests.support.runs import add_events


def _rules(token: str) -> list[Rule]:
    fields = [("source.address",), ("source.address", "tls.client.server_name")] * 3
    return [
        dataclasses.replace(
            token_rule(token, new_terms_fields=terms), rule_id=f"pool-{n}", name=f"pool {n}"
        )
        for n, terms in enumerate(fields)
    ]


def test_rules_on_the_pool_match_one_after_the_other(
    elastic: Elastic, es_settings: Settings, token: str
) -> None:
    at = T0 - timedelta(minutes=2)
    docs = [event(f"10.7.0.{n}", at, bucket=f"b{n % 3}") for n in range(30)]
    docs += [event(f"10.7.0.{n}", T0 - timedelta(days=1)) for n in range(0, 30, 4)]
    add_events(elastic, cloudtrail_index(token), docs)
    rules = _rules(token)
    sequential = Runner.for_settings(elastic, es_settings)
    expected = [sequential.dry_run(rule, T0) for rule in rules]

    running, most = 0, 0
    lock = threading.Lock()

    def execution(runner: Runner, rule: Rule) -> ExecutionResult:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return runner.dry_run(rule, T0)
        finally:
            with lock:
                running -= 1

    settings = es_settings.model_copy(update={"rule_concurrency": 2})
    field_caps.SHARED.clear()  # each kind of rule asks `_field_caps` first, as it did above
    results = list(pool.run_rules(settings, rules, execution))

    assert [result.rule_id for result in results] == [rule.rule_id for rule in rules]
    assert all(result.succeeded for result in results)
    assert [r.new_terms for r in results] == [r.new_terms for r in expected]
    assert all(r.alerts for r in results)
    assert [_ids(r) for r in results] == [_ids(r) for r in expected]
    # Each execution counts its own requests, though two ran at once.
    assert [r.requests for r in results] == [r.requests for r in expected]
    assert 1 <= most <= 2


def _ids(result: ExecutionResult) -> list[str]:
    return [alert["kibana"]["alert"]["uuid"] for alert in result.alerts]
