"""`DETECTOR_LOG_FORMAT=json`: every line the detector writes on stderr is an ECS log record, as
Elastic's `ecs-logging` writes them (Filebeat and Elastic Agent ingest them with no pipeline),
the backfill's progress included; the structured fields stay beside ECS's."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from detector.es.client import Elastic
from detector.settings import Settings
from tests.conftest import EsNode
from tests.integration.test_backfill import detector
from tests.integration.test_engine import T0, cloudtrail_index, event
from tests.integration.test_engine_runs import rule_file
from tests.support.runs import add_events

ECS_KEYS = {"@timestamp", "log.level", "message", "ecs.version"}


def _env(settings: Settings, tmp_path: Path, token: str) -> dict[str, str]:
    return {
        "DETECTOR_LOG_FORMAT": "json",
        "DETECTOR_ALERTS_INDEX": settings.alerts_index,
        "DETECTOR_EXECUTION_LOG_INDEX": settings.execution_log_index,
        "DETECTOR_BUILTIN_RULES": "false",
        "DETECTOR_RULES_PATH": str(rule_file(tmp_path, [cloudtrail_index(token)])),
    }


def _records(stderr: str) -> list[dict[str, Any]]:
    """Each stderr line as JSON; fails on the first line that is not an ECS record."""
    records = []
    for line in stderr.splitlines():
        record = json.loads(line)
        assert set(record) >= ECS_KEYS, line
        records.append(record)
    return records


def test_backfill_progress_and_summary_lines_are_ecs_records(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    add_events(elastic, cloudtrail_index(token), [event("198.51.100.9", T0 + timedelta(minutes=7))])
    start, end = T0, T0 + timedelta(hours=1)

    done = detector(
        es_node,
        _env(es_settings, tmp_path, token),
        "backfill",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
    )

    assert done.returncode == 0, done.stderr
    records = _records(done.stderr)
    assert records[0]["message"].startswith("backfill: 13 execution(s) of 1 rule(s)")
    progress = [record for record in records if "progress_done" in record]
    assert progress[-1]["progress_done"] == progress[-1]["progress_total"] == 13
    assert progress[-1]["alerts_written"] == 1
    assert progress[-1]["log"]["logger"] == "detector.cli"
    assert "backfill: 13 execution(s), 0 failed, 1 alert(s) written" in done.stdout


def test_once_logs_its_execution_as_an_ecs_record_with_its_fields(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    add_events(elastic, cloudtrail_index(token), [event("198.51.100.9", T0 + timedelta(minutes=7))])
    at = (T0 + timedelta(minutes=10)).isoformat()

    done = detector(es_node, _env(es_settings, tmp_path, token), "once", "--at", at)

    assert done.returncode == 0, done.stderr
    records = _records(done.stderr)
    [execution] = [record for record in records if "alerts_written" in record]
    assert execution["log.level"] == "info"
    assert execution["alerts_written"] == 1
    assert execution["rule_id"] == "59bf26c2-bcbe-11ef-a215-f661ea17fbce"
    assert execution["execution_id"]
    assert "error" not in execution  # None fields are left out, not `null` under ECS's names
