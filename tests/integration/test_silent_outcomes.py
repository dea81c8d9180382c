"""Outcomes that used to pass without a word, on the real node: a rule whose index patterns
match no index, and documents whose `event.ingested` lies in the future."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest

from detector.es.client import Elastic
from detector.execution_log import health
from detector.execution_log.documents import NO_INDEX_MATCHED
from detector.metrics import Metrics
from tests.integration.test_engine import T0, cloudtrail_index, event, token_rule
from tests.support import cloudtrail as ct
from tests.support.runs import MakeRunner, add_events, log_docs


def test_a_typod_index_name_is_a_partial_failure_in_the_log_and_unhealthy(
    make_runner: MakeRunner, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    rule = dataclasses.replace(token_rule(token), index=(f"logs-aws.cloudtrial-{token}",))
    runner = make_runner("typo")

    with caplog.at_level(logging.WARNING, logger="detector.engine.execution"):
        (result,) = runner.run_due(rule, T0)

    assert (result.status, result.no_index_matched) == ("partial failure", True)
    (doc,) = log_docs(runner)
    assert doc["execution"]["status"] == "partial failure"
    assert doc["execution"]["no_index_matched"] is True
    assert doc["execution"]["warnings"] == [NO_INDEX_MATCHED]
    assert f"no index matched its index patterns logs-aws.cloudtrial-{token}" in caplog.text
    runs = runner.executions.last_runs(rule)
    (line,) = health.problems([runs], T0 + timedelta(seconds=1), timedelta(hours=1))
    assert "its index patterns matched no index at its last execution" in line


def test_an_index_without_documents_is_no_warning(
    elastic: Elastic, make_runner: MakeRunner, token: str
) -> None:
    ct.create_index(elastic, cloudtrail_index(token))
    runner = make_runner("some")

    (result,) = runner.run_due(token_rule(token), T0)

    assert (result.status, result.no_index_matched) == ("succeeded", False)


def test_documents_ingested_in_the_future_are_counted_warned_and_measured(
    elastic: Elastic, make_runner: MakeRunner, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    at = T0 - timedelta(minutes=1)
    add_events(
        elastic,
        cloudtrail_index(token),
        [
            event("198.51.100.1", at, ingested=T0 + timedelta(hours=2)),  # a clock 2 h ahead
            event("198.51.100.2", at, ingested=T0 + timedelta(minutes=1)),  # within tolerance
            event("198.51.100.3", at, ingested=T0 + timedelta(hours=2), outcome="failure"),
            event("198.51.100.4", at),
        ],
    )
    metrics = Metrics()
    runner = make_runner("future", metrics=metrics)

    with caplog.at_level(logging.WARNING, logger="detector.engine.execution"):
        (result,) = runner.run_due(token_rule(token), T0)

    # The failed request does not match the rule's query: not its document.
    assert (result.status, result.future_documents) == ("succeeded", 1)
    (doc,) = log_docs(runner)
    assert doc["metrics"]["future_documents"] == 1
    assert doc["execution"]["warnings"][0].startswith("1 document(s) of the rule have a time")
    assert "1 document(s) have event.ingested in the future" in caplog.text
    gauge = metrics.registry.get_sample_value(
        "detector_future_documents", {"rule_id": result.rule_id}
    )
    assert gauge == 1.0
