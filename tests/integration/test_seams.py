"""The seams new features plug into, on the real node: alert sinks get exactly the alerts an
execution created, a failing sink never fails detection, and the history check is replaceable."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from detector.engine import execution
from detector.engine.history import AggregationHistory
from detector.errors import DetectorError
from detector.es.client import Elastic
from detector.query.bodies import Plan
from detector.results import Values
from detector.rules import Rule
from tests.integration.test_engine import T0, cloudtrail_index, event, token_rule
from tests.support.runs import MakeRunner, add_events, alerts_of


@dataclasses.dataclass
class RecordingSink:
    name: str = "recording"
    received: list[list[str]] = dataclasses.field(default_factory=list)

    def deliver(self, rule: Rule, alerts: Sequence[Mapping[str, Any]]) -> None:
        self.received.append([alert["kibana"]["alert"]["uuid"] for alert in alerts])


class BrokenSink:
    name = "broken"

    def deliver(self, rule: Rule, alerts: Sequence[Mapping[str, Any]]) -> None:
        raise DetectorError("the channel is down")


class EverythingSeen:
    """A history that claims every window term was seen before."""

    def seen(self, plan: Plan, values: Sequence[Values]) -> set[Values]:
        return set(values)


def _two_new_sources(elastic: Elastic, token: str) -> None:
    add_events(
        elastic,
        cloudtrail_index(token),
        [
            event("198.51.100.1", T0 - timedelta(minutes=3)),
            event("198.51.100.2", T0 - timedelta(minutes=2)),
        ],
    )


def test_sinks_get_the_created_alerts_and_nothing_on_a_rerun(
    elastic: Elastic, token: str, make_runner: MakeRunner
) -> None:
    _two_new_sources(elastic, token)
    sink = RecordingSink()
    runner = make_runner("sinks", sinks=[sink])
    rule = token_rule(token)
    first = runner.execute(rule, T0)
    again = runner.execute(rule, T0 + timedelta(minutes=1))  # overlapping window, same terms
    assert (first.alerts_written, again.alerts_written) == (2, 0)
    assert [sorted(ids) for ids in sink.received] == [sorted(alerts_of(runner))]  # once, created


def test_a_failing_sink_is_logged_and_the_execution_stands(
    elastic: Elastic, token: str, make_runner: MakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    _two_new_sources(elastic, token)
    recording = RecordingSink()
    runner = make_runner("broken", sinks=[BrokenSink(), recording])
    with caplog.at_level(logging.ERROR, logger="detector.service.runner"):
        result = runner.execute(token_rule(token), T0)
    assert result.succeeded and result.alerts_written == 2
    assert len(recording.received[0]) == 2  # the next sink still got them
    assert "the broken sink failed: the channel is down" in caplog.text


def test_the_history_check_is_replaceable(elastic: Elastic, token: str) -> None:
    _two_new_sources(elastic, token)
    rule, store = token_rule(token), _NoStore()
    default = execution.execute(elastic, store, rule, T0, dry_run=True)
    explicit = execution.execute(
        elastic, store, rule, T0, dry_run=True, history=AggregationHistory(elastic)
    )
    nothing_new = execution.execute(
        elastic, store, rule, T0, dry_run=True, history=EverythingSeen()
    )
    assert default.new_terms == explicit.new_terms == 2
    assert [a["kibana"]["alert"]["uuid"] for a in default.alerts] == [
        a["kibana"]["alert"]["uuid"] for a in explicit.alerts
    ]
    assert (nothing_new.terms_checked, nothing_new.new_terms, nothing_new.alerts) == (2, 0, ())


class _NoStore:
    """Nothing alerted yet; writes are not expected (dry runs)."""

    def already_alerted(self, rule: Rule, terms: Any, history: timedelta) -> set[tuple[Any, ...]]:
        return set()

    def write(self, alerts: Any, execution_id: str | None = None) -> Any:
        raise AssertionError("a dry run writes nothing")


def test_a_huge_value_the_source_index_accepted_is_alerted_with_a_bounded_copy(
    elastic: Elastic, token: str, make_runner: MakeRunner
) -> None:
    # ECS maps keywords with `ignore_above: 1024`: the source index stores a 40 KB server name
    # without indexing it, so the alert must not be rejected for it either.
    index = cloudtrail_index(token)
    huge = "a" * 40_000 + ".s3.amazonaws.com"
    add_events(elastic, index, [event("198.51.100.7", T0 - timedelta(minutes=2))])
    keyword = {"type": "keyword", "ignore_above": 1024}
    elastic.call(
        lambda es: es.indices.put_mapping(
            index=index,
            properties={
                "tls": {"properties": {"client": {"properties": {"server_name": keyword}}}}
            },
        )
    )
    poison = event("198.51.100.8", T0 - timedelta(minutes=1))
    poison["tls"] = {"client": {"server_name": huge}}
    elastic.bulk_create(index, {"poison": poison})
    runner = make_runner("huge")

    result = runner.execute(token_rule(token), T0)

    assert result.succeeded, result.error
    assert result.alerts_written == 2
    [alert] = [a for a in result.alerts if a["source"]["address"] == "198.51.100.8"]
    assert alert["tls"]["client"]["server_name"].endswith("... [31826 more characters]")
    assert alert["detector"]["truncated_fields"] == ["tls.client.server_name"]
    assert sorted(alerts_of(runner).values())[1][0] == ("198.51.100.8",)
