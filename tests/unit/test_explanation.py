"""`detector explain`'s verdict, text and JSON, and the parsing of its answers. Pure."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from detector.explain import verdict
from detector.explain.verdict import DocRef, ExceptionMatch, Explanation
from detector.query.window import Window
from detector.rules.exceptions import ExceptionItem

T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
WINDOW = Window(T - timedelta(minutes=9), T, T - timedelta(days=7))
FIRST = DocRef(T - timedelta(minutes=5), "logs-x", "d2")
NEW = Explanation("r1", ("source.address",), ("198.51.100.1",), T, WINDOW, 1, FIRST.time, FIRST)


def test_a_term_in_the_window_and_not_in_the_history_is_new() -> None:
    assert NEW.new
    assert NEW.verdict == verdict.WOULD_ALERT
    assert NEW.to_json()["new"] is True


def test_a_history_document_makes_it_not_new_whatever_else_holds() -> None:
    seen = dataclasses.replace(
        NEW, last_history=DocRef(T - timedelta(days=3), "logs-x", "d1"), alert_id="a1"
    )
    assert not seen.new
    assert seen.verdict == verdict.SEEN
    assert "2025-01-12T12:00:00.000Z (logs-x/d1)" in seen.reason()


def test_the_verdicts_of_a_new_term_alerted_held_and_beyond_max_signals() -> None:
    assert dataclasses.replace(NEW, alert_id="a1").verdict == verdict.ALERTED
    assert dataclasses.replace(NEW, held=True).verdict == verdict.HELD
    assert dataclasses.replace(NEW, overflow=True).verdict == verdict.OVERFLOW


def test_a_disabled_rule_keeps_its_verdict_and_says_no_execution_runs_it() -> None:
    disabled = dataclasses.replace(NEW, enabled=False)
    seen = dataclasses.replace(disabled, last_history=FIRST)

    assert (disabled.verdict, disabled.to_json()["enabled"]) == (verdict.WOULD_ALERT, False)
    assert "the rule is disabled (enabled = false): no execution runs it" in disabled.reason()
    assert "is disabled" in dataclasses.replace(disabled, overflow=True).reason()
    assert seen.reason() == dataclasses.replace(seen, enabled=True).reason()
    assert "  rule: disabled (enabled = false); below, what an execution finds" in seen.lines()
    assert not any("disabled" in line for line in NEW.lines())


def test_no_window_document_is_excluded_only_when_an_exception_removed_one() -> None:
    absent = dataclasses.replace(NEW, window_count=0, first_seen=None, first_document=None)
    assert absent.verdict == verdict.NOT_IN_WINDOW
    removed = dataclasses.replace(absent, exceptions=(ExceptionMatch("file #1", "f", 2, 0),))
    assert removed.verdict == verdict.EXCLUDED
    assert not removed.new
    assert "exception file #1 (f) removed 2 window and 0 history document(s)" in "\n".join(
        removed.lines()
    )


def test_the_newest_history_document_is_the_later_of_override_and_fallback() -> None:
    def hit(doc_id: str, at: datetime) -> dict[str, object]:
        return {"hits": {"hits": [{"_index": "i", "_id": doc_id, "sort": [at.timestamp() * 1000]}]}}

    answer = {
        "aggregations": {
            "override": {"doc": hit("by-override", T - timedelta(days=2))},
            "fallback": {"doc": hit("by-timestamp", T - timedelta(days=1))},
        }
    }
    found = verdict.parse_latest_history(answer)
    assert found == DocRef(T - timedelta(days=1), "i", "by-timestamp")
    assert verdict.parse_latest_history({"aggregations": {}}) is None


def test_exceptions_that_matched_nothing_are_left_out() -> None:
    entries = [ExceptionItem("*", "a", ("x",)), ExceptionItem("*", "b", ("y",), (), "second")]
    answer = {
        "aggregations": {
            "entries": {
                "buckets": {
                    "0": {"window": {"doc_count": 0}, "history": {"doc_count": 0}},
                    "1": {"window": {"doc_count": 1}, "history": {"doc_count": 3}},
                }
            }
        }
    }
    assert verdict.parse_exceptions([answer], entries) == (ExceptionMatch("second", "b", 1, 3),)


def test_a_baseline_without_data_says_so() -> None:
    empty = dataclasses.replace(NEW, baseline={"coverage": 0.0, "since": None})
    covered = dataclasses.replace(NEW, baseline={"coverage": 0.5, "since": "2025-01-11"})

    assert "  baseline: covers 0% of the history (no data in it)" in empty.lines()
    assert "  baseline: covers 50% of the history (data since 2025-01-11)" in covered.lines()
