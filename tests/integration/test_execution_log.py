"""The execution log holds each execution's figures; `detector health` reads it; metrics."""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detector.alerts.store import AlertStore
from detector.es.client import Elastic
from detector.execution_log.store import ExecutionStore
from detector.metrics import Metrics
from detector.notify.channels import url_name
from detector.results import ExecutionResult
from detector.settings import Settings
from detector.times import iso, parse_iso
from tests.integration.test_backfill import detector
from tests.integration.test_engine import T0, cloudtrail_index, event, token_rule
from tests.integration.test_engine_runs import rule_file
from tests.support import cloudtrail as ct
from tests.support.commands import detector_env
from tests.support.es_node import EsNode
from tests.support.runs import MakeRunner, add_events, log_docs

EVERY = timedelta(minutes=5)


def assert_logged(doc: dict[str, Any], result: ExecutionResult, status: str) -> None:
    assert doc["rule"]["id"] == result.rule_id
    assert doc["rule"]["name"] == result.rule_name
    execution = doc["execution"]
    assert execution["status"] == status
    assert execution["type"] == "scheduled"
    assert execution["scheduled"] == iso(result.now)
    assert execution["error"] == result.error
    assert execution["duration_ms"] >= result.duration_ms - 1
    assert doc["window"] == {
        "start": iso(result.window_start) if result.window_start else None,
        "end": iso(result.window_end) if result.window_end else None,
        "history_start": iso(result.history_start) if result.history_start else None,
    }
    figures = ["terms_checked", "new_terms", "already_alerted", "alerts_written", "overflow"]
    figures += ["search_ms", "index_ms", "requests", "future_documents", "skipped_documents"]
    counted = {"alerts_counted": "execution"}  # not reconciled from the alerts index
    expected = {name: getattr(result, name) for name in figures}
    assert doc["metrics"] == {**expected, **counted, "held_terms": result.held}


def test_one_log_document_per_execution_with_the_results_figures(
    elastic: Elastic, token: str, make_runner: MakeRunner
) -> None:
    rule = dataclasses.replace(token_rule(token), max_signals=1)
    add_events(
        elastic,
        cloudtrail_index(token),
        [
            event("198.51.100.1", T0 - timedelta(minutes=3)),
            event("198.51.100.2", T0 - timedelta(minutes=2)),
            event("198.51.100.1", T0 + timedelta(minutes=2)),
        ],
    )
    runner = make_runner("figures")
    results = [result for n in range(3) for result in runner.run_due(rule, T0 + n * EVERY)]
    results += runner.run_due(dataclasses.replace(rule, query="source.address:("), T0 + 3 * EVERY)

    logged = log_docs(runner)
    assert len(logged) == 4
    assert [result.alerts_written for result in results] == [1, 1, 0, 0]
    assert_logged(logged[0], results[0], "partial failure")  # one term left over
    assert results[0].status == "partial failure"  # the same word in the result (CLI, --json)
    assert "1 new term(s) beyond max_signals" in logged[0]["execution"]["warnings"][0]
    assert_logged(logged[1], results[1], "succeeded")
    assert_logged(logged[2], results[2], "succeeded")
    assert_logged(logged[3], results[3], "failed")
    assert results[0].terms_checked == 2
    assert results[0].requests > 0
    assert logged[3]["execution"]["error"].startswith("expected")


def bad_index(elastic: Elastic, token: str) -> str:
    """An index where `source.address` is text: the terms aggregation fails on it."""
    name = f"logs-bad-{token}"
    body = json.loads(json.dumps(ct.INDEX_BODY))
    body["mappings"]["properties"]["source"] = {"properties": {"address": {"type": "text"}}}
    elastic.client.indices.create(index=name, body=body)
    ct.index_documents(elastic, name, [ct.anonymous_s3_event("198.51.100.9", at=datetime.now(UTC))])
    elastic.refresh(name)
    return name


def test_health_after_successes_failures_and_old_successes(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    log_index = f"detector-executions-{token}"
    rules = rule_file(tmp_path, [cloudtrail_index(token)])
    env = {
        "DETECTOR_ALERTS_INDEX": es_settings.alerts_index,
        "DETECTOR_EXECUTION_LOG_INDEX": log_index,
        "DETECTOR_BUILTIN_RULES": "false",
        "DETECTOR_RULES_PATH": str(rules),
    }
    ct.create_index(elastic, cloudtrail_index(token))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = detector(es_node, env, *args)
        assert "Traceback" not in done.stderr
        elastic.refresh(log_index)
        return done

    never = run("health")
    assert never.returncode == 1
    assert never.stdout.endswith("never ran\n")
    assert run("once").returncode == 0
    assert run("once", "--at", "2025-01-15T12:00:00Z").returncode == 0  # manual: not health
    healthy = run("health")
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.startswith("healthy: 1 rule(s) succeeded within 900 s\n")
    # The rule's index is empty: its baseline covers nothing (a note, not a health problem).
    assert "baseline covers 0% of its history (no data in it)" in healthy.stdout
    time.sleep(0.3)
    stale = run("health", "--max-age", "0.2")
    assert stale.returncode == 1
    assert "s allowed)" in stale.stdout
    assert "last success at" in stale.stdout

    rules.write_text(rules.read_text().replace(cloudtrail_index(token), bad_index(elastic, token)))
    failing = run("once")
    assert failing.returncode == 1
    assert "FAILED" in failing.stdout
    # The success of a moment ago is recent, but the last execution failed: red (one failure
    # is DETECTOR_HEALTH_MAX_FAILURES' default); allowing two in a row, it is green again.
    assert run("health").returncode == 1
    tolerant = {**env, "DETECTOR_HEALTH_MAX_FAILURES": "2"}
    assert detector(es_node, tolerant, "health").returncode == 0
    broken = run("health", "--max-age", "0.2")
    assert broken.returncode == 1
    line = broken.stdout.strip()
    assert line.startswith("unhealthy: rule 59bf26c2-bcbe-11ef-a215-f661ea17fbce (")
    assert ": last execution failed at " in line
    assert "Text fields are not optimised" in line or "fielddata" in line.lower(), line
    assert "last success at" in line

    docs = elastic.search([log_index], {"size": 10, "sort": [{"@timestamp": "asc"}]})
    sources = [hit["_source"] for hit in docs["hits"]["hits"]]
    kinds = [(doc["kind"], doc.get("execution", {}).get("type")) for doc in sources]
    expected = [("checkpoint", None), ("execution", "manual")] + [("execution", "scheduled")] * 2
    assert sorted(kinds, key=str) == sorted(expected, key=str)
    checkpoint = next(doc for doc in sources if doc["kind"] == "checkpoint")
    assert checkpoint["checkpoint"] > "2025-01-16"  # `once --at` (manual) did not move it


def test_health_reads_the_execution_that_just_ended_success_or_failure(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    """`detector health` right after `detector once` judges that execution, never the one
    before it (nor "never ran"), whatever the log index's refresh has done meanwhile."""
    log_index = f"detector-executions-{token}"
    ExecutionStore(elastic, log_index).ensure_index()
    # A refresh far away (a loaded cluster, or an operator's setting): what `once` wrote last
    # is not searchable unless someone refreshes.
    elastic.client.indices.put_settings(
        index=log_index, settings={"index": {"refresh_interval": "1h"}}
    )
    good = cloudtrail_index(token)
    ct.create_index(elastic, good)
    rules = rule_file(tmp_path, [good])
    env = {
        "DETECTOR_ALERTS_INDEX": es_settings.alerts_index,
        "DETECTOR_EXECUTION_LOG_INDEX": log_index,
        "DETECTOR_BUILTIN_RULES": "false",
        "DETECTOR_RULES_PATH": str(rules),
    }
    succeeding, failing = (
        rules.read_text(),
        rules.read_text().replace(good, bad_index(elastic, token)),
    )
    for attempt in range(3):
        rules.write_text(succeeding)
        assert detector(es_node, env, "once").returncode == 0
        healthy = detector(es_node, env, "health")
        assert healthy.returncode == 0, (attempt, healthy.stdout)
        rules.write_text(failing)
        assert detector(es_node, env, "once").returncode == 1
        failed = detector(es_node, env, "health")
        assert failed.returncode == 1, (attempt, failed.stdout)
        assert ": last execution failed at " in failed.stdout
    shown = json.loads(detector(es_node, env, "status", "--json").stdout)
    assert shown["last_status"] == "failed"


def command_env(es_settings: Settings, rules: Path) -> dict[str, str]:
    return {
        "DETECTOR_ALERTS_INDEX": es_settings.alerts_index,
        "DETECTOR_EXECUTION_LOG_INDEX": es_settings.execution_log_index,
        "DETECTOR_BUILTIN_RULES": "false",
        "DETECTOR_RULES_PATH": str(rules),
    }


def test_an_index_not_there_yet_is_a_note_unless_health_requires_data(
    es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    env = command_env(es_settings, rule_file(tmp_path, [cloudtrail_index(token)]))
    assert detector(es_node, env, "once").returncode == 0  # no index: a warning, as in Kibana

    lenient = detector(es_node, env, "health")
    assert lenient.returncode == 0, lenient.stdout
    assert lenient.stdout.startswith("healthy: 1 rule(s) succeeded within 900 s\n")
    assert "\nnote: rule 59bf26c2-bcbe-11ef-a215-f661ea17fbce (" in lenient.stdout
    assert "matched no index at its last execution" in lenient.stdout
    strict = detector(es_node, env, "health", "--require-data")
    assert strict.returncode == 1
    assert strict.stdout.startswith("unhealthy: rule 59bf26c2-bcbe-11ef-a215-f661ea17fbce (")
    assert "matched no index at its last execution" in strict.stdout


def alert_marked(channel: str, status: str, at: datetime) -> dict[str, Any]:
    mark: dict[str, Any] = {"status": status, "attempts": 0, "updated_at": iso(at)}
    if status == "failed":
        mark.update(attempts=1, last_error="connection refused")
    return {
        "@timestamp": iso(at),
        "kibana": {"alert": {"rule": {"rule_id": "r1"}}},
        "detector": {"notifications": {channel: mark}},
    }


def test_health_counts_every_alert_a_failing_channel_has_not_received(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    url = "webhook+http://127.0.0.1:9/hook"
    channel = url_name(url)
    store = AlertStore(elastic, es_settings.alerts_index)
    store.ensure_index()
    # Marks not refreshed yet (a delivery pass writes them without waiting): still counted.
    elastic.client.indices.put_settings(
        index=store.index, settings={"index": {"refresh_interval": "1h"}}
    )
    now = datetime.now(UTC)
    statuses = ["failed"] + ["pending"] * 24 + ["sent"] * 3
    operations: list[dict[str, Any]] = []
    for number, status in enumerate(statuses):
        at = now - timedelta(seconds=number)
        operations += [{"create": {"_id": f"a{number}"}}, alert_marked(channel, status, at)]
    assert not elastic.client.bulk(index=store.index, operations=operations)["errors"]
    env = command_env(es_settings, rule_file(tmp_path, [cloudtrail_index(token)]))

    done = detector(es_node, {**env, "DETECTOR_NOTIFY_URLS": url}, "health")

    assert done.returncode == 1
    assert (
        f"unhealthy: notification channel {channel}: 25 alert(s) not delivered (24 pending, "
        f"1 failed); last attempt at {iso(now)} failed: connection refused\n"
    ) in done.stdout


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
    return text


def test_metrics_count_executions_failures_alerts_and_last_success(
    elastic: Elastic, token: str, make_runner: MakeRunner
) -> None:
    rule = token_rule(token)
    add_events(elastic, cloudtrail_index(token), [event("198.51.100.1", T0 - timedelta(minutes=1))])
    metrics = Metrics()
    runner = make_runner("metrics", metrics=metrics)
    server = metrics.serve(0, "127.0.0.1")
    try:
        runner.run_due(rule, T0)
        runner.run_due(rule, T0 + EVERY)
        runner.run_due(dataclasses.replace(rule, query="a:("), T0 + 2 * EVERY)
        text = scrape(server.port)
    finally:
        server.close()
    rid = rule.rule_id
    assert (
        f'detector_executions_total{{rule_id="{rid}",status="succeeded",type="scheduled"}} 2.0'
        in text
    )
    assert (
        f'detector_executions_total{{rule_id="{rid}",status="failed",type="scheduled"}} 1.0' in text
    )
    assert f'detector_execution_failures_total{{rule_id="{rid}"}} 1.0' in text
    assert f'detector_alerts_written_total{{rule_id="{rid}"}} 1.0' in text
    assert f'detector_execution_duration_seconds_count{{rule_id="{rid}"}} 3.0' in text
    gauge = next(
        line for line in text.splitlines() if line.startswith("detector_last_success_timestamp")
    )
    assert abs(float(gauge.split()[-1]) - time.time()) < 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_run_writes_the_log_and_checkpoint_and_serves_metrics(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index, log_index, port = cloudtrail_index(token), f"detector-executions-{token}", free_port()
    ct.create_index(elastic, index)
    rules = rule_file(tmp_path, [index])
    rules.write_text(rules.read_text().replace('interval = "5m"', 'interval = "2s"'))
    env = detector_env(
        es_node,
        DETECTOR_ALERTS_INDEX=es_settings.alerts_index,
        DETECTOR_EXECUTION_LOG_INDEX=log_index,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
        DETECTOR_METRICS_PORT=str(port),
    )
    output = tmp_path / "run.log"
    with output.open("w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "detector", "run"], env=env, stdout=stream, stderr=stream
        )
    try:
        text = wait_for_metrics(port, 'status="succeeded",type="scheduled"} 3.0')
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert "detector_last_success_timestamp_seconds" in text
    assert "detector_leases_held{replica_id=" in text
    elastic.refresh(log_index)
    count = elastic.client.count(index=log_index, query={"term": {"kind": "execution"}})["count"]
    assert count >= 3
    # `detector run` keeps the checkpoint in the rule's lease (released on SIGTERM), fenced
    rule_id = token_rule(token).rule_id
    lease = elastic.client.get(index=log_index, id=f"lease:{rule_id}")["_source"]
    assert lease["kind"] == "lease"
    assert lease["replica"]["id"] is None
    assert ExecutionStore(elastic, log_index).checkpoint(rule_id) == parse_iso(lease["checkpoint"])


def wait_for_metrics(port: int, needle: str, timeout: float = 60) -> str:
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            text = scrape(port)
        except OSError:
            text = ""
        if needle in text:
            return text
        time.sleep(0.3)
    raise AssertionError(f"no {needle!r} in the metrics within {timeout}s:\n{text}")
