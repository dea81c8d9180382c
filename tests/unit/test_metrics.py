"""The Prometheus series of `detector run`."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest

from detector.metrics import Metrics
from detector.results import ExecutionResult


def test_tracked_rules_start_their_failure_gap_and_alert_counters_at_zero() -> None:
    metrics = Metrics()
    metrics.track(["r1", "r2"])
    text = generate_latest(metrics.registry).decode()
    for rule_id in ("r1", "r2"):
        assert f'detector_execution_failures_total{{rule_id="{rule_id}"}} 0.0' in text
        assert f'detector_gap_seconds_total{{rule_id="{rule_id}"}} 0.0' in text
        assert f'detector_alerts_written_total{{rule_id="{rule_id}"}} 0.0' in text


def test_untracked_rules_have_no_series() -> None:
    text = generate_latest(Metrics().registry).decode()
    assert 'rule_id="' not in text


def test_tracked_rules_start_with_no_future_documents() -> None:
    metrics = Metrics()
    metrics.track(["r1"])
    text = generate_latest(metrics.registry).decode()
    assert 'detector_future_documents{rule_id="r1"} 0.0' in text


def test_skipped_documents_held_terms_and_the_baseline_coverage_are_series() -> None:
    now = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    result = ExecutionResult(
        rule_id="r1",
        rule_name="Rule one",
        now=now,
        status="succeeded",
        skipped_documents=3,
        held=2,
        baseline={"since": None, "coverage": 0.25, "mature": False, "mode": "hold"},
    )
    metrics = Metrics()
    metrics.observe(result, "succeeded", "scheduled", now)
    metrics.observe(result, "succeeded", "scheduled", now)
    text = generate_latest(metrics.registry).decode()
    assert 'detector_skipped_documents_total{rule_id="r1"} 6.0' in text
    assert 'detector_held_terms_total{rule_id="r1"} 4.0' in text
    assert 'detector_baseline_coverage_ratio{rule_id="r1"} 0.25' in text
