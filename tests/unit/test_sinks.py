"""What an execution hands to the alert sinks: only the alerts it created."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from detector.results import ExecutionResult
from detector.rules import builtin_rules
from detector.service.sinks import LogSink

NOW = datetime(2025, 1, 15, 12, 5, tzinfo=UTC)


def alert(alert_id: str, source: str) -> dict[str, Any]:
    return {
        "kibana": {
            "alert": {"uuid": alert_id, "reason": f"new source {source}", "new_terms": [source]}
        }
    }


def test_created_alerts_leave_out_the_alerts_that_already_existed() -> None:
    built = (alert("a", "198.51.100.1"), alert("b", "198.51.100.2"), alert("c", "198.51.100.3"))
    result = ExecutionResult("r1", "Rule", NOW, "succeeded", alerts=built, created_ids=("c", "a"))
    assert [doc["kibana"]["alert"]["uuid"] for doc in result.created_alerts()] == ["a", "c"]


def test_no_alert_created_hands_over_nothing() -> None:
    result = ExecutionResult("r1", "Rule", NOW, "succeeded", alerts=(alert("a", "x"),))
    assert result.created_alerts() == []


def test_log_sink_logs_one_line_per_alert_with_its_id(caplog: pytest.LogCaptureFixture) -> None:
    rule = builtin_rules()[0]
    with caplog.at_level(logging.INFO, logger="detector.service.sinks"):
        LogSink().deliver(rule, [alert("a", "198.51.100.1"), alert("b", "198.51.100.2")])
    assert [record.getMessage() for record in caplog.records] == [
        "alert a: new source 198.51.100.1",
        "alert b: new source 198.51.100.2",
    ]
    assert caplog.records[0].__dict__["rule_id"] == rule.rule_id
    assert caplog.records[0].__dict__["new_terms"] == ["198.51.100.1"]
