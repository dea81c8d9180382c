"""Executions racing, crashing half-way, run from the command line: no duplicate, no loss."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.alerts.store import AlertStore
from detector.engine import execution
from detector.errors import BulkError
from detector.es.client import Elastic
from detector.es.responses import BulkResult
from detector.results import ExecutionResult
from detector.rules import builtin_rules
from detector.settings import Settings
from tests.integration.test_engine import (
    BUILTIN_ID,
    T0,
    Harness,
    cloudtrail_index,
    event,
    spec_for,
    token_rule,
)
from tests.support import cloudtrail as ct
from tests.support.commands import detector_env
from tests.support.es_node import EsNode
from tests.support.http_faults import Fault, FaultProxy

SOURCES = [f"198.51.100.{n}" for n in range(1, 41)]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loaded(elastic: Elastic, store: AlertStore, token: str) -> Harness:
    """40 new sources in the window of an execution at T0."""
    rule = token_rule(token)
    harness = Harness(elastic, store, rule, spec_for(rule))
    at = T0 - timedelta(minutes=4)
    harness.add(
        cloudtrail_index(token),
        [event(source, at + timedelta(seconds=n)) for n, source in enumerate(SOURCES)],
    )
    return harness


def assert_each_source_alerted_once(harness: Harness) -> None:
    stored = harness.stored()
    assert sorted(doc["kibana"]["alert"]["new_terms"][0] for doc in stored) == sorted(SOURCES)


def test_two_threads_at_the_same_time_write_each_alert_once(
    loaded: Harness, es_settings: Settings
) -> None:
    barrier = threading.Barrier(2)
    results: list[ExecutionResult] = []

    def run() -> None:
        elastic = Elastic(es_settings)  # each process-like worker has its own client
        try:
            barrier.wait()
            store = AlertStore(elastic, es_settings.alerts_index)
            results.append(execution.execute(elastic, store, loaded.rule, T0))
        finally:
            elastic.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [result.status for result in results] == ["succeeded", "succeeded"]
    assert sum(result.alerts_written for result in results) == len(SOURCES)
    assert_each_source_alerted_once(loaded)


class HalfThenCrash:
    """A store that writes the first half of a bulk, then fails as if the process died."""

    def __init__(self, store: AlertStore) -> None:
        self.store = store

    def already_alerted(self, *args: Any) -> set[tuple[Any, ...]]:
        return self.store.already_alerted(*args)

    def write(
        self, alerts: Mapping[str, Mapping[str, Any]], execution_id: str | None = None
    ) -> BulkResult:
        half = dict(list(alerts.items())[: len(alerts) // 2])
        self.store.write(half, execution_id)
        raise BulkError("connection lost in the middle of the bulk", [])


def test_a_crash_in_the_middle_of_a_bulk_then_a_rerun_loses_and_duplicates_nothing(
    loaded: Harness,
) -> None:
    crashed = execution.execute(loaded.elastic, HalfThenCrash(loaded.store), loaded.rule, T0)
    assert crashed.status == "failed"
    assert "connection lost" in (crashed.error or "")
    assert len(loaded.stored()) == len(SOURCES) // 2

    rerun = execution.execute(loaded.elastic, loaded.store, loaded.rule, T0)

    assert rerun.status == "succeeded"
    assert rerun.already_alerted == len(SOURCES) // 2
    assert rerun.alerts_written == len(SOURCES) - len(SOURCES) // 2
    assert_each_source_alerted_once(loaded)


def test_a_failing_search_is_a_failed_execution_not_an_exception(
    elastic: Elastic, store: AlertStore, token: str
) -> None:
    rule = dataclasses.replace(token_rule(token), query='source.ip: "not-an-ip"')
    one_event_index(elastic, token)
    result = execution.execute(elastic, store, rule, T0)
    assert result.status == "failed"
    assert result.error
    assert "not-an-ip" in result.error


def one_event_index(elastic: Elastic, token: str) -> None:
    """An index with one event in the window (an empty shard would be skipped, not fail)."""
    ct.create_index(elastic, cloudtrail_index(token))
    ct.index_documents(
        elastic, cloudtrail_index(token), [event("192.0.2.1", T0 - timedelta(minutes=1))]
    )


# --- detector once ---------------------------------------------------------------------------


def rule_file(tmp_path: Path, patterns: list[str]) -> Path:
    """The built-in rule's file with other index patterns."""
    source = next(rule for rule in builtin_rules() if rule.rule_id == BUILTIN_ID).source
    assert source is not None
    text = source.read_text(encoding="utf-8")
    original = 'index = ["filebeat-*", "logs-aws.cloudtrail*"]'
    assert original in text
    path = tmp_path / "rule.toml"
    path.write_text(text.replace(original, f"index = {json.dumps(patterns)}"), encoding="utf-8")
    return path


def once(node: EsNode, settings: Settings, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = detector_env(
        node,
        DETECTOR_ALERTS_INDEX=settings.alerts_index,
        DETECTOR_EXECUTION_LOG_INDEX=settings.execution_log_index,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_ES_READY_TIMEOUT="30",
    )
    command = [sys.executable, "-m", "detector", "once", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_two_detector_once_processes_at_the_same_time(
    loaded: Harness, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    path = rule_file(tmp_path, list(loaded.rule.index))
    at = "2025-01-15T12:00:00Z"
    processes = [
        once(es_node, es_settings, tmp_path, "--at", at, "--rule", str(path), "--json")
        for _ in range(2)
    ]
    outcomes = [finish(process) for process in processes]

    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    reports = [json.loads(out.splitlines()[-1]) for _, out, _ in outcomes]
    assert sum(report["alerts_written"] for report in reports) == len(SOURCES)
    assert_each_source_alerted_once(loaded)


def test_once_dry_run_prints_the_alerts_and_writes_nothing(
    loaded: Harness, es_node: EsNode, es_settings: Settings, tmp_path: Path
) -> None:
    path = rule_file(tmp_path, list(loaded.rule.index))
    code, out, err = finish(
        once(
            es_node,
            es_settings,
            tmp_path,
            "--at",
            "2025-01-15T12:00:00",
            "--rule",
            str(path),
            "--dry-run",
        )
    )
    assert code == 0, err
    summary, *alerts = out.splitlines()
    assert "would write 40 alert(s)" in summary
    assert len(alerts) == len(SOURCES)
    assert {line.split()[1] for line in alerts} == set(SOURCES)
    assert all("Anonymous GetObject" in line for line in alerts)
    assert loaded.stored() == []


def test_once_dry_run_json_includes_the_alert_documents(
    loaded: Harness, es_node: EsNode, es_settings: Settings, tmp_path: Path
) -> None:
    path = rule_file(tmp_path, list(loaded.rule.index))
    at = "2025-01-15T12:00:00"
    code, out, err = finish(
        once(es_node, es_settings, tmp_path, "--at", at, "--rule", str(path), "--dry-run", "--json")
    )
    assert code == 0, err
    alerts = json.loads(out)["alerts"]
    assert {alert["kibana"]["alert"]["new_terms"][0] for alert in alerts} == set(SOURCES)
    assert loaded.stored() == []


def test_once_on_missing_indices_is_a_partial_failure_with_exit_0(
    es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    path = rule_file(tmp_path, [f"nothing-{token}-*", f"logs-none-{token}"])
    code, out, err = finish(
        once(
            es_node,
            es_settings,
            tmp_path,
            "--at",
            "2025-01-15T12:00:00Z",
            "--rule",
            str(path),
            "--json",
        )
    )
    assert code == 0, err
    report = json.loads(out.splitlines()[-1])
    assert (report["status"], report["alerts_written"], report["terms_checked"]) == (
        "partial failure",  # no index matched: a warning, as in Kibana
        0,
        0,
    )


def test_once_exit_codes_for_a_failed_execution_and_a_bad_time(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    one_event_index(elastic, token)
    path = rule_file(tmp_path, [cloudtrail_index(token)])
    path.write_text(
        path.read_text().replace('cloud.account.id: "anonymous"', 'source.ip: "not-an-ip"')
    )
    at = "2025-01-15T12:00:00Z"
    code, out, _ = finish(once(es_node, es_settings, tmp_path, "--at", at, "--rule", str(path)))
    assert code == 1
    assert "FAILED" in out

    code, _, err = finish(once(es_node, es_settings, tmp_path, "--at", "yesterday-ish"))
    assert code == 2
    assert "--at" in err and "ISO-8601" in err


def test_alerts_of_a_bulk_whose_answer_was_lost_are_counted_by_the_execution_that_wrote_them(
    loaded: Harness, es_settings: Settings
) -> None:
    """The node indexes the alerts' bulk but its answer is lost (a 429 after the fact); the
    client sends the bulk again, whose items answer 409. They are this execution's own alerts:
    counted as written by it, not as alerted before."""
    marker = f'"{loaded.rule.rule_id}"'.encode()
    proxy = FaultProxy(es_settings.es_url[0], faults=(Fault(marker, times=1, lost=True),))
    elastic = Elastic(es_settings.model_copy(update={"es_url": [proxy.url]}))
    try:
        store = AlertStore(elastic, es_settings.alerts_index)
        result = execution.execute(elastic, store, loaded.rule, T0)
    finally:
        elastic.close()
        proxy.close()

    assert proxy.faulted == 1
    assert result.status == "succeeded"
    assert (result.alerts_written, result.already_alerted) == (len(SOURCES), 0)
    assert len(result.created_alerts()) == len(SOURCES)
    assert_each_source_alerted_once(loaded)


@pytest.mark.parametrize(
    ("fault", "transient"),
    [
        (Fault(b"", times=100, path="/_search", status=429), True),  # busy: try again soon
        (Fault(b"", times=100, path="/_search", status=400), False),  # rejected: fails again
    ],
    ids=["busy", "rejected"],
)
def test_a_failed_execution_says_whether_trying_again_soon_may_succeed(
    loaded: Harness, es_settings: Settings, fault: Fault, transient: bool
) -> None:
    proxy = FaultProxy(es_settings.es_url[0], faults=(fault,))
    settings = es_settings.model_copy(update={"es_url": [proxy.url], "es_retry_attempts": 1})
    elastic = Elastic(settings)
    try:
        result = execution.execute(
            elastic, AlertStore(elastic, es_settings.alerts_index), loaded.rule, T0
        )
    finally:
        elastic.close()
        proxy.close()

    assert (result.status, result.transient) == ("failed", transient)
