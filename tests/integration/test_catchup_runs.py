"""Catch-up on the real node: an outage changes nothing, a longer one is reported as a gap."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Any

import pytest

from detector.engine import execution
from detector.es.client import Elastic
from detector.rules import Rule
from tests.integration.test_engine import T0, cloudtrail_index, event, token_rule
from tests.support import cloudtrail as ct
from tests.support.runs import DAY, MakeRunner, add_events, alerts_of, log_docs

EVERY = timedelta(minutes=5)
OUTAGE_SOURCE = "203.0.113.45"


def spread_events() -> list[dict[str, Any]]:
    """Two hours of anonymous access from T0, one source seen only during the outage."""
    minutes = [
        ("198.51.100.1", -2 * 24 * 60),  # seen two days before: never new
        ("198.51.100.1", 12),
        ("198.51.100.2", 3),
        ("198.51.100.3", 22),
        ("198.51.100.3", 80),
        ("203.0.113.46", 38),
        ("203.0.113.46", 61),
        (OUTAGE_SOURCE, 47),
        ("198.51.100.5", 95),
        ("198.51.100.6", 119),
    ]
    docs = [event(source, T0 + timedelta(minutes=at)) for source, at in minutes]
    # ingested two minutes late, inside the outage
    docs.append(event("198.51.100.4", T0 + timedelta(minutes=50), ingested=timedelta(minutes=2)))
    return docs


def test_a_40_minute_outage_produces_exactly_the_alerts_of_an_uninterrupted_run(
    elastic: Elastic, token: str, make_runner: MakeRunner
) -> None:
    rule = token_rule(token)
    add_events(elastic, cloudtrail_index(token), spread_events())
    times = [T0 + n * EVERY for n in range(25)]  # two hours, every 5 minutes
    steady, interrupted = make_runner("steady"), make_runner("outage")
    for now in times:
        assert all(result.succeeded for result in steady.run_due(rule, now))
    down = [now for now in times if T0 + timedelta(minutes=30) < now < T0 + timedelta(minutes=70)]
    assert len(down) == 7  # the detector is stopped for 40 minutes
    caught_up = [interrupted.run_due(rule, now) for now in times if now not in down]

    expected = alerts_of(steady)
    assert alerts_of(interrupted) == expected
    assert len(expected) == 7
    assert ((OUTAGE_SOURCE,), ct.iso(T0 + timedelta(minutes=47))) in expected.values()
    restart = caught_up[7]
    assert [result.now for result in restart] == [*down, T0 + timedelta(minutes=70)]
    logged = log_docs(interrupted)
    assert len(logged) == len(times)
    assert all(doc["execution"]["status"] == "succeeded" for doc in logged)
    assert all("gap" not in doc for doc in logged)
    assert interrupted.executions.checkpoint(rule.rule_id) == times[-1]

    # Without the catch-up, the restart misses the source seen only during the outage.
    plain = make_runner("plain")
    for now in times:
        if now not in down:
            execution.execute(elastic, plain.store, rule, now)
    assert ((OUTAGE_SOURCE,), ct.iso(T0 + timedelta(minutes=47))) not in alerts_of(plain).values()


def hourly(rule: Rule) -> Rule:
    """The rule every hour with a 70-minute window, so a day of catch-up is 24 executions."""
    return dataclasses.replace(rule, interval="1h", from_="now-70m")


def test_a_30_hour_outage_beyond_the_24_hour_maximum_is_a_gap_and_the_last_day_is_covered(
    elastic: Elastic, token: str, make_runner: MakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    rule = hourly(token_rule(token))
    restart = T0 + timedelta(hours=30)
    add_events(
        elastic,
        cloudtrail_index(token),
        [
            event("198.51.100.70", T0 + timedelta(hours=3)),  # in the gap: not covered
            event("198.51.100.71", restart - timedelta(hours=23, minutes=50)),
            event("198.51.100.72", restart - timedelta(hours=12)),
            event("198.51.100.73", restart - timedelta(minutes=1)),
        ],
    )
    runner = make_runner("gap")
    assert runner.run_due(rule, T0)[0].succeeded
    with caplog.at_level(logging.WARNING, logger="detector"):
        results = runner.run_due(rule, restart)

    assert len(results) == 24
    assert [result.now for result in results][-1] == restart
    assert results[0].now == restart - timedelta(hours=23)
    assert all(result.succeeded for result in results)
    terms = {values for values, _ in alerts_of(runner).values()}
    assert terms == {("198.51.100.71",), ("198.51.100.72",), ("198.51.100.73",)}
    logged = log_docs(runner)
    assert len(logged) == 25
    first = logged[1]
    assert first["gap"] == {
        "seconds": 6 * 3600.0,
        "start": ct.iso(T0),
        "end": ct.iso(restart - DAY),
    }
    assert first["execution"]["status"] == "partial failure"
    assert "21600 s were not queried" in first["execution"]["warnings"][0]
    assert [doc["execution"]["status"] for doc in logged[2:]] == ["succeeded"] * 23
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any("21600 s were not queried" in message for message in warnings)
    assert runner.executions.checkpoint(rule.rule_id) == restart


def test_a_failed_execution_keeps_the_checkpoint_and_the_next_one_retries_its_window(
    elastic: Elastic, token: str, make_runner: MakeRunner
) -> None:
    rule = token_rule(token)
    add_events(
        elastic, cloudtrail_index(token), [event("198.51.100.80", T0 + timedelta(minutes=7))]
    )
    runner = make_runner("retry")
    assert runner.run_due(rule, T0)[0].succeeded
    broken = dataclasses.replace(rule, query="source.address:(")  # Elasticsearch never sees it
    failed = runner.run_due(broken, T0 + EVERY)
    assert [result.status for result in failed] == ["failed"]
    assert runner.executions.checkpoint(rule.rule_id) == T0
    again = runner.run_due(rule, T0 + 3 * EVERY)
    assert [result.now for result in again] == [T0 + EVERY, T0 + 2 * EVERY, T0 + 3 * EVERY]
    assert sum(result.alerts_written for result in again) == 1
    statuses = [doc["execution"]["status"] for doc in log_docs(runner)]
    assert statuses.count("failed") == 1
    assert len(statuses) == 5
