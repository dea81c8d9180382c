"""A window that keeps failing does not stall its rule (real node, behind a fault proxy): after
DETECTOR_WINDOW_ATTEMPTS failures it is recorded as a failed window to backfill, newer windows
run and alert as the brute-force oracle says, health is red until a backfill covers it, and
every alert carries the id of the execution-log document of the execution that wrote it."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.es.client import Elastic
from detector.execution_log.health import problem
from detector.execution_log.records import RunRecords, health_runs
from detector.execution_log.store import ExecutionStore
from detector.schedule.failed_windows import FailedWindow
from detector.service.runner import Runner
from detector.settings import Settings
from tests.conftest import EsNode
from tests.integration.test_engine import T0, cloudtrail_index, event, spec_for, token_rule
from tests.support import replicas as rp
from tests.support.bruteforce import Doc, Simulation, parse_time
from tests.support.http_faults import Fault, FaultProxy
from tests.support.runs import add_events, alerts_index, alerts_of, log_docs, runner_factory

EVERY = timedelta(minutes=5)
POISON = "203.0.113.66"  # every request naming it fails (as an alert the index rejects would)
LATER = ("198.51.100.81", "198.51.100.82")


@pytest.fixture
def proxy(es_settings: Settings) -> Iterator[FaultProxy]:
    faults = FaultProxy(es_settings.es_url[0], poison=(POISON.encode(),))
    yield faults
    faults.close()


@pytest.fixture
def proxied(es_settings: Settings, proxy: FaultProxy) -> Iterator[Elastic]:
    client = Elastic(es_settings.model_copy(update={"es_url": [proxy.url]}))
    yield client
    client.close()


def sources() -> list[dict[str, Any]]:
    """The poison source in the windows at +10 and +15 min, two new sources later on."""
    return [
        event("198.51.100.1", T0 - timedelta(days=2)),
        event("198.51.100.1", T0 + timedelta(minutes=3)),
        event(POISON, T0 + timedelta(minutes=7)),
        event(LATER[0], T0 + timedelta(minutes=21)),
        event(LATER[1], T0 + timedelta(minutes=31)),
    ]


def expected(docs: list[dict[str, Any]], index: str, rule: Any, nows: list[datetime]) -> Any:
    simulation = Simulation([Doc(index, doc) for doc in docs], spec_for(rule))
    return {(item.values, item.first_seen) for now in sorted(nows) for item in simulation.run(now)}


def stored(runner: Runner) -> set[tuple[Any, ...]]:
    return {(terms, datetime.fromisoformat(seen)) for terms, seen in alerts_of(runner).values()}


def test_a_poison_window_is_recorded_after_its_attempts_and_newer_sources_are_alerted(
    elastic: Elastic, proxied: Elastic, proxy: FaultProxy, token: str
) -> None:
    rule = token_rule(token)
    docs = sources()
    add_events(elastic, cloudtrail_index(token), docs)
    runner = runner_factory(proxied, token)("poison")
    ticks = [T0 + n * EVERY for n in range(1, 9)]  # +5 ... +40 min
    for tick in ticks:
        runner.run_due(rule, tick)

    logged = log_docs(runner)
    failed = [doc for doc in logged if doc["execution"]["status"] == "failed"]
    assert {doc["execution"]["scheduled"] for doc in failed} == {
        "2025-01-15T12:10:00.000Z",
        "2025-01-15T12:15:00.000Z",
    }
    assert len(failed) == 6  # three attempts each, then the schedule moved on
    assert proxy.rejected >= 6
    ran = [
        datetime.fromisoformat(doc["execution"]["scheduled"])
        for doc in logged
        if doc["execution"]["status"] != "failed"
    ]
    assert stored(runner) == expected(docs, cloudtrail_index(token), rule, ran)
    assert {values for values, _ in stored(runner)} == {(LATER[0],), (LATER[1],)}
    assert runner.executions.checkpoint(rule.rule_id) == ticks[-1]

    records = RunRecords(elastic, runner.executions.index, alerts_index(runner))
    windows = records.open_failed_windows([rule.rule_id])
    m = timedelta(minutes=1)
    assert [(w.now, w.start, w.end, w.attempts) for w in windows] == [
        (T0 + 10 * m, T0 + 1 * m, T0 + 10 * m, 3),
        (T0 + 15 * m, T0 + 6 * m, T0 + 15 * m, 3),
    ]
    assert "mapper_parsing_exception" in windows[0].error
    given_up = [
        doc for doc in failed if any("failed window" in w for w in doc["execution"]["warnings"])
    ]
    assert len(given_up) == 2
    assert windows[0].command in given_up[0]["execution"]["warnings"][0]

    red = problem(health_runs(runner.executions, rule, 1), ticks[-1], timedelta(hours=1))
    assert red is not None
    assert "2 failed window(s) not backfilled" in red


def test_a_backfill_of_the_failed_windows_clears_them_and_gives_the_oracle_s_alerts(
    elastic: Elastic, proxied: Elastic, proxy: FaultProxy, token: str
) -> None:
    rule = token_rule(token)
    docs = sources()
    add_events(elastic, cloudtrail_index(token), docs)
    runner = runner_factory(proxied, token)("backfill")
    ticks = [T0 + n * EVERY for n in range(1, 9)]
    for tick in ticks:
        runner.run_due(rule, tick)
    records = RunRecords(elastic, runner.executions.index, alerts_index(runner))
    assert len(records.open_failed_windows([rule.rule_id])) == 2

    proxy.poison = ()  # the cause is fixed (the alerts index accepts it now)
    first: FailedWindow = records.open_failed_windows([rule.rule_id])[0]
    runner.backfill([rule], first.now, first.now)
    elastic.refresh(runner.executions.index)
    left = records.open_failed_windows([rule.rule_id])
    assert [window.now for window in left] == [T0 + timedelta(minutes=15)]
    runner.backfill([rule], left[0].now, left[0].now)
    elastic.refresh(runner.executions.index)
    assert records.open_failed_windows([rule.rule_id]) == []

    assert stored(runner) == expected(docs, cloudtrail_index(token), rule, ticks)
    assert (POISON,) in {values for values, _ in stored(runner)}
    line = problem(health_runs(runner.executions, rule, 1), ticks[-1], timedelta(hours=1)) or ""
    assert "failed window" not in line


def test_every_alert_names_the_execution_log_document_of_its_execution(
    elastic: Elastic, token: str
) -> None:
    rule = dataclasses.replace(token_rule(token))
    docs = [event(f"198.51.100.{n}", T0 + timedelta(minutes=n)) for n in range(1, 30)]
    add_events(elastic, cloudtrail_index(token), docs)
    runner = runner_factory(elastic, token)("ids")
    for n in range(1, 8):
        runner.run_due(rule, T0 + n * EVERY)
    elastic.refresh(alerts_index(runner))
    hits = elastic.search([alerts_index(runner)], {"size": 1000})["hits"]["hits"]
    assert len(hits) == 29
    log = ExecutionStore(elastic, runner.executions.index)
    log.refresh()
    for hit in hits:
        execution_id = hit["_source"]["kibana"]["alert"]["rule"]["execution"]["uuid"]
        found = elastic.get_document(log.index, execution_id)
        assert found is not None, execution_id
        assert found["kind"] == "execution"
        assert found["execution"]["id"] == execution_id
        assert found["execution"]["status"] == "succeeded"
    counted: dict[str, int] = {}
    for hit in hits:
        key = hit["_source"]["kibana"]["alert"]["rule"]["execution"]["uuid"]
        counted[key] = counted.get(key, 0) + 1
    for doc in log_docs(runner):
        assert doc["metrics"]["alerts_written"] == counted.get(doc["execution"]["id"], 0)


RETRY_EVERY = timedelta(seconds=30)


def test_a_transient_failure_is_retried_within_the_interval_and_every_alert_is_counted_once(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    """A real `detector run` through the fault proxy, rules every 30 s. The first bulk write of
    rule 00 is executed by the node but its answer lost (429, twice: the client's attempts),
    rule 01's is refused as busy; each window is retried within its interval, and the alerts
    the failed attempt wrote are counted in its own execution document."""
    index = f"logs-aws.cloudtrail-transient-{token}"
    rules = tmp_path / "rules"
    lost_rule, refused_rule = rp.write_rules(rules, index, 2, interval="30s", lookback="40s")
    proxy = FaultProxy(
        es_settings.es_url[0],
        faults=(
            Fault(f'"{lost_rule}"'.encode(), times=2, lost=True),
            Fault(f'"{refused_rule}"'.encode(), times=2),
        ),
    )
    feeder = rp.Feeder(elastic, index)
    try:
        with feeder.running():
            slot = rp.wait_for_slot(RETRY_EVERY, into=1)
            replica = rp.start_replica(
                es_node,
                es_settings,
                rules,
                tmp_path,
                "flaky",
                url=proxy.url,
                extra={"DETECTOR_ES_RETRY_ATTEMPTS": "2"},
            )
            try:
                rp.sleep_until(slot + 3 * RETRY_EVERY + timedelta(seconds=8))
            finally:
                assert rp.stop([replica]) == [0]
    finally:
        proxy.close()
    assert proxy.faulted == 4, "the faults were not all met: the test proves nothing"

    docs = [
        doc
        for doc in rp.executions(elastic, es_settings.execution_log_index)
        if doc["execution"]["type"] == "scheduled"
    ]
    failed = {doc["rule"]["id"]: doc for doc in docs if doc["execution"]["status"] == "failed"}
    assert sorted(failed) == sorted([lost_rule, refused_rule])
    for rule_id, attempt in failed.items():
        retry = next(
            doc
            for doc in docs
            if doc["rule"]["id"] == rule_id
            and doc["execution"]["scheduled"] == attempt["execution"]["scheduled"]
            and doc["execution"]["status"] in rp.SUCCESSFUL
        )
        late = parse_time(retry["execution"]["started"]) - parse_time(
            retry["execution"]["scheduled"]
        )
        assert late < RETRY_EVERY, f"{rule_id} retried its window {late} after its slot"
    lost = failed[lost_rule]["metrics"]
    assert lost["alerts_counted"] == "alerts index"
    assert lost["alerts_written"] > 0

    elastic.refresh(es_settings.alerts_index)
    hits = elastic.search([es_settings.alerts_index], {"size": 10000})["hits"]["hits"]
    by_execution = Counter(
        hit["_source"]["kibana"]["alert"]["rule"]["execution"]["uuid"] for hit in hits
    )
    counted = {
        doc["execution"]["id"]: doc["metrics"]["alerts_written"]
        for doc in docs
        if doc["metrics"]["alerts_written"]
    }
    assert counted == dict(by_execution), "an alert is counted by no execution, or by two"
    scheduled = {doc["execution"]["id"]: doc["execution"]["scheduled"] for doc in docs}
    for hit in hits:
        source = hit["_source"]
        slot_of = parse_time(scheduled[source["kibana"]["alert"]["rule"]["execution"]["uuid"]])
        assert parse_time(source["@timestamp"]) - slot_of < RETRY_EVERY
    runs = rp.runs_by_rule(docs)
    expected = rp.expected_alerts(feeder.docs, rp.spec(index, timedelta(seconds=40)), runs)
    assert sorted(rp.stored_alerts(elastic, es_settings.alerts_index)) == sorted(expected)
    assert expected, "no alert at all: the test would prove nothing"
