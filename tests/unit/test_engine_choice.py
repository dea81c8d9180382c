"""Which new terms an execution alerts: the dedup check asks only about terms that can alert."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.engine.execution import _choose
from detector.es.responses import BulkResult
from detector.query.bodies import Plan, WindowTerm, rule_filter
from detector.query.window import TimeFields, window_for
from detector.results import NewTerm
from detector.rules import Rule, builtin_rules

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


class RecordingStore:
    """An `AlertWriter` whose alerts index holds `alerted`; it records every term asked about."""

    def __init__(self, alerted: set[str]) -> None:
        self.alerted = alerted
        self.asked: list[list[str]] = []

    def already_alerted(
        self, rule: Rule, terms: Sequence[NewTerm], history: timedelta
    ) -> set[tuple[Any, ...]]:
        self.asked.append([term.values[0] for term in terms])
        return {term.values for term in terms if term.values[0] in self.alerted}

    def write(
        self, alerts: Mapping[str, Mapping[str, Any]], execution_id: str | None = None
    ) -> BulkResult:
        raise AssertionError("not written in these tests")


def _plan(max_signals: int) -> Plan:
    rule = dataclasses.replace(builtin_rules()[0], max_signals=max_signals)
    return Plan(rule, window_for(rule, NOW), TimeFields("@timestamp"), rule_filter({}, []))


def _terms(count: int) -> list[WindowTerm]:
    return [WindowTerm((f"10.0.0.{n}",), NOW - timedelta(seconds=count - n)) for n in range(count)]


def test_a_flood_checks_only_the_oldest_max_signals_terms() -> None:
    store = RecordingStore(alerted=set())
    chosen, rest, duplicates = _choose(store, _plan(3), _terms(10))
    assert [term.values[0] for term in chosen] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert len(rest) == 7 and duplicates == 0
    assert store.asked == [["10.0.0.0", "10.0.0.1", "10.0.0.2"]]


def test_duplicates_make_room_for_the_next_terms_oldest_first() -> None:
    store = RecordingStore(alerted={"10.0.0.0", "10.0.0.2"})
    chosen, rest, duplicates = _choose(store, _plan(3), _terms(10))
    assert [term.values[0] for term in chosen] == ["10.0.0.1", "10.0.0.3", "10.0.0.4"]
    assert duplicates == 2
    # The next round asked about twice as many; its fresh term beyond the budget is overflow.
    assert store.asked == [
        ["10.0.0.0", "10.0.0.1", "10.0.0.2"],
        [f"10.0.0.{n}" for n in range(3, 9)],
    ]
    assert [term.values[0] for term in rest] == [f"10.0.0.{n}" for n in range(5, 10)]


def test_all_duplicates_cost_a_logarithmic_number_of_checks() -> None:
    terms = _terms(100)
    store = RecordingStore(alerted={term.values[0] for term in terms})
    chosen, rest, duplicates = _choose(store, _plan(3), terms)
    assert chosen == [] and rest == [] and duplicates == 100
    assert [len(asked) for asked in store.asked] == [3, 6, 12, 24, 48, 7]


def test_no_new_terms_asks_nothing() -> None:
    store = RecordingStore(alerted=set())
    assert _choose(store, _plan(100), []) == ([], [], 0)
    assert store.asked == []
