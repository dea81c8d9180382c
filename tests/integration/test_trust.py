"""Skipped documents and baseline maturity on the real node, against the brute-force oracle."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from detector.alerts.store import AlertStore
from detector.engine import phases
from detector.es.client import Elastic
from detector.query.baseline import HOLD
from detector.query.bodies import Plan
from detector.results import ExecutionResult
from detector.service.runner import Runner
from tests.integration.test_engine import (
    T0,
    Harness,
    alerted,
    cloudtrail_index,
    event,
    spec_for,
    token_rule,
)
from tests.support import bruteforce
from tests.support.runs import MakeRunner, add_events, log_docs

DAY = timedelta(days=1)
# The built-in rule: window [now-9m, now], history from now-7d.
HISTORY = timedelta(days=7) - timedelta(minutes=9)


def without(doc: dict[str, Any], *path: str) -> dict[str, Any]:
    """`doc` without the field at `path` (or with it set to None when `path` ends in None)."""
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return doc


# --- skipped documents --------------------------------------------------------------------


@pytest.fixture
def builtin(elastic: Elastic, store: AlertStore, token: str) -> Harness:
    rule = token_rule(token)
    return Harness(elastic, store, rule, spec_for(rule))


def test_window_documents_without_the_new_terms_field_are_counted_exactly_and_never_alert(
    builtin: Harness, token: str
) -> None:
    harness = builtin
    at = T0 - timedelta(minutes=3)
    lacking = [
        without(event("198.51.100.1", at), "source", "address"),
        without(event("198.51.100.2", at + timedelta(seconds=1)), "source"),
        {**event("198.51.100.3", at + timedelta(seconds=2)), "source": {"address": None}},
        {**event("198.51.100.4", at + timedelta(seconds=3)), "source": {"address": []}},
    ]
    harness.add(
        cloudtrail_index(token),
        [
            *lacking,
            event("198.51.100.50", at),  # has a term: not skipped, alerts
            event("198.51.100.51", at, outcome="failure"),  # not matching: not counted
            without(event("198.51.100.52", at, outcome="failure"), "source"),  # not matching
            without(event("198.51.100.53", T0 - timedelta(minutes=20)), "source"),  # before
        ],
    )

    result = harness.step(T0)

    assert result.skipped_documents == 4
    assert result.skipped_documents == bruteforce.skipped_documents(harness.docs, harness.spec, T0)
    assert [item.values for item in alerted(result)] == [("198.51.100.50",)]
    assert result.skipped_example is not None
    assert result.skipped_example.startswith(f"{cloudtrail_index(token)}/")


def test_a_combination_with_only_some_of_its_fields_is_skipped(
    elastic: Elastic, store: AlertStore, token: str
) -> None:
    rule = token_rule(token, new_terms_fields=("source.address", "tls.client.server_name"))
    combined = Harness(elastic, store, rule, spec_for(rule))
    at = T0 - timedelta(minutes=2)
    combined.add(
        cloudtrail_index(token),
        [
            without(event("198.51.100.1", at), "tls", "client", "server_name"),
            without(event("198.51.100.2", at), "source", "address"),
            event("198.51.100.3", at),
        ],
    )

    result = combined.step(T0)

    assert result.skipped_documents == 2
    expected = bruteforce.skipped_documents(combined.docs, combined.spec, T0)
    assert result.skipped_documents == expected
    assert [item.values[0] for item in alerted(result)] == ["198.51.100.3"]


def test_the_execution_log_records_the_skipped_documents_and_an_example(
    make_runner: MakeRunner, token: str, elastic: Elastic
) -> None:
    runner = make_runner("skipped")
    rule = token_rule(token)
    index = cloudtrail_index(token)
    add_events(
        elastic, index, [without(event("198.51.100.1", T0 - timedelta(minutes=1)), "source")]
    )

    runner.once(rule, T0, manual=True)

    (doc,) = log_docs(runner)
    assert doc["metrics"]["skipped_documents"] == 1
    assert doc["skipped"] == {"example": f"{index}/doc-0"}


# --- baseline maturity --------------------------------------------------------------------

# The data starts 2 days before T0; the history is 7 days.
DATA_START = T0 - 2 * DAY


def young_data(token: str) -> list[dict[str, Any]]:
    """Two days of data before T0, then new and returning sources over the following days."""
    return [
        event("198.51.100.1", DATA_START),
        event("198.51.100.2", DATA_START + timedelta(hours=5)),
        event("198.51.100.3", T0 - timedelta(minutes=2)),
        event("198.51.100.1", T0 - timedelta(minutes=1)),  # seen 2 days before: not new
        event("198.51.100.4", T0 + 3 * DAY - timedelta(minutes=1)),
        event("198.51.100.5", T0 + 5 * DAY + timedelta(minutes=58)),
        # Seen last at DATA_START, before this window's history start: new again.
        event("198.51.100.2", T0 + 5 * DAY + timedelta(hours=5, minutes=59)),
    ]


# Executions at "--at" times: immature (coverage 2/7, 5/7), then mature from T0 + 5 days.
NOWS = [T0, T0 + 3 * DAY, T0 + 5 * DAY + timedelta(hours=1), T0 + 5 * DAY + timedelta(hours=6)]


def coverage_at(now: datetime) -> float:
    start = now - timedelta(minutes=9)
    return round(min((start - DATA_START) / HISTORY, 1.0), 4)


@pytest.fixture
def young(elastic: Elastic, store: AlertStore, token: str) -> Harness:
    rule = token_rule(token)
    young = Harness(elastic, store, rule, spec_for(rule))
    young.add(cloudtrail_index(token), young_data(token))
    return young


def test_with_alert_every_alert_carries_the_baseline_coverage(young: Harness) -> None:
    results = [young.step(now) for now in NOWS]

    assert [len(result.alerts) for result in results] == [1, 1, 1, 1]
    for now, result in zip(NOWS, results, strict=True):
        (alert,) = result.alerts
        assert alert["detector"]["baseline"] == {
            "coverage": coverage_at(now),
            "since": "2025-01-13T12:00:00.000Z",
        }
    assert [result.baseline["mature"] for result in results if result.baseline] == [
        False,
        False,
        True,
        True,
    ]


def hold_runner(make_runner: MakeRunner, name: str) -> Runner:
    return make_runner(name, baseline_mode=HOLD)


def test_with_hold_nothing_alerts_until_the_data_covers_the_history_then_the_oracle_rules(
    young: Harness, make_runner: MakeRunner
) -> None:
    runner = hold_runner(make_runner, "hold")
    simulation = bruteforce.Simulation(young.docs, young.spec)
    oracle = bruteforce.Simulation(young.docs, young.spec)  # what `alert` would have alerted

    results = [runner.once(young.rule, now, manual=True) for now in NOWS]

    for now, result in zip(NOWS, results, strict=True):
        would = [item.values for item in oracle.run(now)]
        if now - young.spec.history < DATA_START:  # immature: everything new is held
            assert (result.alerts_written, result.held) == (0, len(would)), now
            assert list(result.held_terms) == [item.values for item in simulation.fresh(now)]
        else:  # mature: exactly the oracle's alerts
            assert alerted(result) == simulation.run(now), now
            assert result.held == 0
    assert [result.held for result in results] == [1, 1, 0, 0]
    assert [result.alerts_written for result in results] == [0, 0, 1, 1]


def test_the_execution_log_shows_the_coverage_and_the_held_terms(
    young: Harness, make_runner: MakeRunner
) -> None:
    runner = hold_runner(make_runner, "holdlog")

    for now in NOWS[:3]:
        runner.once(young.rule, now, manual=True)

    docs = log_docs(runner)
    assert [doc["baseline"]["coverage"] for doc in docs] == [coverage_at(now) for now in NOWS[:3]]
    assert [doc["baseline"]["mature"] for doc in docs] == [False, False, True]
    assert docs[0]["baseline"]["mode"] == "hold"
    assert docs[0]["baseline"]["held_terms"] == [["198.51.100.3"]]
    assert [doc["metrics"]["held_terms"] for doc in docs] == [1, 1, 0]


def test_a_warning_is_logged_once_when_the_baseline_becomes_mature(
    young: Harness,
    make_runner: MakeRunner,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = make_runner("mature")
    asked: list[datetime] = []
    oldest = phases.oldest_document

    def counting(elastic: Elastic, plan: Plan) -> datetime | None:
        asked.append(plan.window.end)
        return oldest(elastic, plan)

    monkeypatch.setattr(phases, "oldest_document", counting)
    with caplog.at_level(logging.WARNING, logger="detector.engine.execution"):
        for now in [*NOWS, NOWS[-1]]:
            runner.once(young.rule, now, manual=True)

    matured = [record for record in caplog.records if "baseline is mature" in record.message]
    assert len(matured) == 1
    assert "2025-01-13T12:00:00.000Z" in matured[0].message
    # Asked while immature only: the oldest time known then reaches the later history starts.
    assert asked == NOWS[:2]


def test_a_rule_file_can_hold_while_the_setting_alerts(
    young: Harness, make_runner: MakeRunner
) -> None:
    runner = make_runner("ruleheld")
    rule = dataclasses.replace(young.rule, baseline=HOLD)

    result: ExecutionResult = runner.once(rule, T0, manual=True)

    assert (result.alerts_written, result.held) == (0, 1)
    assert result.baseline == {
        "since": "2025-01-13T12:00:00.000Z",
        "coverage": coverage_at(T0),
        "mature": False,
        "mode": "hold",
    }


def test_logs_imported_from_long_ago_are_history_only_for_executions_whose_history_covers_them(
    elastic: Elastic, make_runner: MakeRunner, token: str
) -> None:
    imported = T0 - 900 * DAY  # e.g. CloudTrail of 2023 imported into today's cluster
    add_events(
        elastic,
        cloudtrail_index(token),
        [
            event("198.51.100.1", imported),
            event("198.51.100.2", imported + 3 * DAY),
            event("198.51.100.3", imported + 8 * DAY - timedelta(minutes=2)),
        ],
    )
    runner = make_runner("imported")  # one runner: its baseline cache serves both executions

    backfilled = runner.once(token_rule(token), imported + 8 * DAY, manual=True)
    live = runner.once(token_rule(token), T0, manual=True)

    assert backfilled.baseline is not None and backfilled.baseline["mature"] is True
    assert backfilled.alerts_written == 1
    assert live.baseline == {"since": None, "coverage": 0.0, "mature": False, "mode": "alert"}
