"""`detector run`: scheduled executions on the real node, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from detector.es.client import Elastic
from detector.settings import Settings
from tests.integration.test_engine_runs import rule_file
from tests.support import cloudtrail as ct
from tests.support.commands import detector_env
from tests.support.es_node import EsNode


def _start(
    node: EsNode, settings: Settings, rules: Path, log: Path, *, as_detector: bool = False
) -> subprocess.Popen[str]:
    env = detector_env(
        node,
        DETECTOR_ALERTS_INDEX=settings.alerts_index,
        DETECTOR_EXECUTION_LOG_INDEX=settings.execution_log_index,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
        DETECTOR_LOG_FORMAT="json",
    )
    if as_detector and node.detector_username and node.detector_password:
        env.update(DETECTOR_ES_USERNAME=node.detector_username)
        env.update(DETECTOR_ES_PASSWORD=node.detector_password)
    with log.open("w") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "detector", "run"],
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _executions(log: Path) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if "alerts_written" in line]


def _wait_for(log: Path, count: int, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executions = _executions(log)
        if len(executions) >= count:
            return executions
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} executions in {timeout}s:\n{log.read_text()}")


def test_run_executes_on_schedule_alerts_once_and_stops_on_sigterm(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"run-cloudtrail-{token}"
    ct.create_index(elastic, index)
    now = datetime.now(UTC)
    ct.index_documents(elastic, index, [ct.anonymous_s3_event("203.0.113.9", at=now)])
    rules = rule_file(tmp_path, [index])
    rules.write_text(rules.read_text().replace('interval = "5m"', 'interval = "2s"'))
    log = tmp_path / "run.log"
    process = _start(es_node, es_settings, rules, log)
    try:
        executions = _wait_for(log, 3, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0
    assert all(execution["status"] == "succeeded" for execution in executions)
    assert [execution["alerts_written"] for execution in executions[:3]] == [1, 0, 0]
    elastic.refresh(es_settings.alerts_index)
    count = elastic.client.count(index=es_settings.alerts_index)["count"]
    assert count == 1
    assert "scheduler stopped" in log.read_text()


def test_run_with_no_enabled_rule_says_so_and_exits_1(
    es_node: EsNode, es_settings: Settings, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    log = tmp_path / "run.log"
    process = _start(es_node, es_settings, rules, log)
    assert process.wait(timeout=60) == 1
    assert "no enabled rule" in log.read_text() or "no .toml" in log.read_text().lower()
    assert "Traceback" not in log.read_text()


def test_run_says_at_start_which_rule_patterns_it_may_not_read(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-{token}"
    ct.create_index(elastic, index)
    rules = rule_file(tmp_path, [index, f"secret-logs-{token}-*"])
    log = tmp_path / "run.log"
    process = _start(es_node, es_settings, rules, log, as_detector=True)
    try:
        _wait_for(log, 1, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    errors = [record for record in records if record["log.level"] == "error"]
    assert [error.get("index_pattern") for error in errors] == [f"secret-logs-{token}-*"]
