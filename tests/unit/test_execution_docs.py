"""Execution-log documents: each execution's figures, warnings and checkpoint."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.execution_log import documents
from detector.results import ExecutionRef, ExecutionResult
from detector.schedule.catchup import Gap

T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
TIMING = documents.Timing(T + timedelta(seconds=1), T + timedelta(seconds=3, milliseconds=250))
EXECUTION = ExecutionRef("scheduled", "e1")


# A succeeded execution; each test changes what it is about (`result(overflow=4)`).
SUCCEEDED = ExecutionResult(
    rule_id="r1",
    rule_name="Rule one",
    now=T,
    status="succeeded",
    window_start=T - timedelta(minutes=9),
    window_end=T,
    history_start=T - timedelta(days=7),
    terms_checked=12,
    new_terms=3,
    already_alerted=1,
    alerts_written=2,
    search_ms=40,
    index_ms=7,
    requests=5,
)


def result(**changes: Any) -> ExecutionResult:
    return dataclasses.replace(SUCCEEDED, **changes)


def doc(res: ExecutionResult, gap: Gap | None = None) -> dict[str, object]:
    return documents.execution_doc(res, execution=EXECUTION, timing=TIMING, interval="5m", gap=gap)


def test_status_follows_kibana() -> None:
    assert documents.status_of(result()) == "succeeded"
    assert documents.status_of(result(overflow=4)) == "partial failure"
    assert documents.status_of(result(), Gap(T - timedelta(hours=6), T)) == "partial failure"
    assert documents.status_of(result(status="failed", error="boom")) == "failed"
    assert documents.status_of(result(status="failed"), Gap(T, T)) == "failed"


def test_execution_document_carries_every_figure() -> None:
    built = doc(result())
    assert built == {
        "@timestamp": "2025-01-15T12:00:03.250Z",
        "kind": "execution",
        "rule": {"id": "r1", "name": "Rule one", "interval": "5m"},
        "execution": {
            "id": "e1",
            "type": "scheduled",
            "status": "succeeded",
            "scheduled": "2025-01-15T12:00:00.000Z",
            "started": "2025-01-15T12:00:01.000Z",
            "ended": "2025-01-15T12:00:03.250Z",
            "duration_ms": 2250,
            "error": None,
            "warnings": [],
            "no_index_matched": False,
            "unavailable_clusters": [],
        },
        "window": {
            "start": "2025-01-15T11:51:00.000Z",
            "end": "2025-01-15T12:00:00.000Z",
            "history_start": "2025-01-08T12:00:00.000Z",
        },
        "metrics": {
            "terms_checked": 12,
            "new_terms": 3,
            "already_alerted": 1,
            "alerts_written": 2,
            "overflow": 0,
            "search_ms": 40,
            "index_ms": 7,
            "requests": 5,
            "future_documents": 0,
            "alerts_counted": "execution",
            "skipped_documents": 0,
            "held_terms": 0,
        },
        "replica": {"id": None, "fenced": False},
    }


def test_no_index_matched_is_a_partial_failure_with_kibanas_warning() -> None:
    built = doc(result(status="partial failure", no_index_matched=True))
    execution = built["execution"]
    assert isinstance(execution, dict)
    assert execution["status"] == "partial failure"
    assert execution["no_index_matched"] is True
    assert execution["warnings"] == [documents.NO_INDEX_MATCHED]


def test_future_documents_are_counted_and_warned_in_a_succeeded_execution() -> None:
    built = doc(result(future_documents=3))
    execution, metrics = built["execution"], built["metrics"]
    assert isinstance(execution, dict) and isinstance(metrics, dict)
    assert execution["status"] == "succeeded"
    assert metrics["future_documents"] == 3
    assert execution["warnings"][0].startswith("3 document(s) of the rule have a time later")


def test_the_replica_and_a_fenced_attempt_are_in_the_document() -> None:
    built = documents.execution_doc(
        result(),
        execution=EXECUTION,
        timing=TIMING,
        interval="5m",
        replica=documents.Replica("host-a:12", fenced=True),
    )
    assert built["replica"] == {"id": "host-a:12", "fenced": True}


def test_gap_is_in_the_document_with_its_range_and_a_warning() -> None:
    gap = Gap(T - timedelta(hours=30), T - timedelta(hours=24))
    built = doc(result(overflow=2), gap)
    assert built["gap"] == {
        "seconds": 21600.0,
        "start": "2025-01-14T06:00:00.000Z",
        "end": "2025-01-14T12:00:00.000Z",
    }
    warnings = built["execution"]["warnings"]  # type: ignore[index]
    assert "21600 s were not queried" in warnings[0]
    assert "beyond max_signals" in warnings[1]


def test_failed_execution_without_a_window_keeps_nulls() -> None:
    built = doc(result(status="failed", error="no such index", window_start=None))
    assert built["execution"]["error"] == "no such index"  # type: ignore[index]
    assert built["window"]["start"] is None  # type: ignore[index]


def test_checkpoint_round_trip() -> None:
    built = documents.checkpoint_doc("r1", "Rule one", T, T + timedelta(seconds=2))
    assert documents.parse_checkpoint(built) == T
    assert documents.checkpoint_id("r1") == "checkpoint:r1"


def test_skipped_documents_are_counted_with_one_example() -> None:
    built = doc(result(skipped_documents=4, skipped_example="logs-x/doc-9"))
    assert built["metrics"]["skipped_documents"] == 4  # type: ignore[index]
    assert built["skipped"] == {"example": "logs-x/doc-9"}


def test_the_baseline_and_its_held_terms_are_in_the_document() -> None:
    baseline = {"since": "2025-01-13T12:00:00.000Z", "coverage": 0.2857, "mature": False}
    built = doc(result(baseline={**baseline, "mode": "hold"}, held=2, held_terms=(("a",), ("b",))))
    assert built["metrics"]["held_terms"] == 2  # type: ignore[index]
    assert built["baseline"] == {**baseline, "mode": "hold", "held_terms": [["a"], ["b"]]}
