"""The engine against a real Elasticsearch, compared run by run with the brute-force oracle."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import helpers

from detector.alerts.store import AlertStore
from detector.engine import execution
from detector.engine.history import AggregationHistory, TermHistory
from detector.errors import RequestError
from detector.es.client import Elastic
from detector.results import ExecutionResult
from detector.rules import Rule, builtin_rules
from detector.rules.exceptions import NO_EXCEPTIONS, ExceptionList, from_settings
from detector.settings import Settings
from tests.support import cloudtrail as ct
from tests.support.bruteforce import (
    Doc,
    Expected,
    Simulation,
    Spec,
    excluded_source,
    is_anonymous_s3_access,
    parse_time,
)

BUILTIN_ID = "59bf26c2-bcbe-11ef-a215-f661ea17fbce"
T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=5)
_ids = itertools.count()


def builtin() -> Rule:
    return next(rule for rule in builtin_rules() if rule.rule_id == BUILTIN_ID)


def cloudtrail_index(token: str) -> str:
    return f"logs-aws.cloudtrail-default-{token}"


def filebeat_index(token: str) -> str:
    return f"filebeat-8.0-{token}"


def token_rule(token: str, **changes: Any) -> Rule:
    """The built-in rule on this test's indices only."""
    patterns = (f"logs-aws.cloudtrail*-{token}", f"filebeat-*-{token}")
    return dataclasses.replace(builtin(), index=patterns, **changes)


def spec_for(rule: Rule, **changes: Any) -> Spec:
    """The brute-force restatement of the built-in rule (timings written out, not parsed)."""
    spec = Spec(
        index_patterns=rule.index,
        fields=rule.new_terms_fields,
        predicate=is_anonymous_s3_access,
        lookback=timedelta(minutes=9),
        history=timedelta(days=7),
        override="event.ingested",
        max_signals=rule.max_signals,
    )
    return dataclasses.replace(spec, **changes)


def alerted(result: ExecutionResult) -> list[Expected]:
    """What an execution alerted, in its order, as the oracle states it."""
    return [
        Expected(
            tuple(alert["kibana"]["alert"]["new_terms"]),
            parse_time(alert["detector"]["first_seen"]),
        )
        for alert in result.alerts
    ]


@dataclasses.dataclass
class Harness:
    """Documents in Elasticsearch and in the oracle; executions compared with it."""

    elastic: Elastic
    store: AlertStore
    rule: Rule
    spec: Spec
    exceptions: ExceptionList = NO_EXCEPTIONS
    history: TermHistory | None = None
    docs: list[Doc] = dataclasses.field(default_factory=list)
    created: set[str] = dataclasses.field(default_factory=set)

    def __post_init__(self) -> None:
        self.simulation = Simulation(self.docs, self.spec)

    def add(self, index: str, sources: Iterable[dict[str, Any]]) -> None:
        """Index documents (searchable on return) and give them to the oracle."""
        if index not in self.created:
            ct.create_index(self.elastic, index)
            self.created.add(index)
        batch = list(sources)
        actions = ({"_index": index, "_id": f"d{next(_ids)}", "_source": doc} for doc in batch)
        helpers.bulk(self.elastic.client, actions, chunk_size=5000, refresh="wait_for")
        self.docs.extend(Doc(index, doc) for doc in batch)

    def execute(self, now: datetime, **options: Any) -> ExecutionResult:
        options.setdefault("exceptions", self.exceptions)
        options.setdefault("history", self.history)
        return execution.execute(self.elastic, self.store, self.rule, now, **options)

    def step(self, now: datetime) -> ExecutionResult:
        """One execution, checked against the oracle; returns it."""
        result = self.execute(now)
        assert result.status == ("partial failure" if result.overflow else "succeeded"), (
            result.error
        )
        expected = self.simulation.run(now)
        assert alerted(result) == expected, now
        assert result.alerts_written == len(expected)
        return result

    def schedule(self, start: datetime, runs: int) -> list[ExecutionResult]:
        return [self.step(start + n * EVERY) for n in range(runs)]

    def stored(self) -> list[dict[str, Any]]:
        """Every alert document in the alerts index."""
        self.elastic.refresh(self.store.index)
        body = {"size": 10_000, "query": {"match_all": {}}}
        hits = self.elastic.search([self.store.index], body)["hits"]["hits"]
        return [hit["_source"] for hit in hits]


@pytest.fixture
def harness(elastic: Elastic, store: AlertStore, token: str) -> Iterator[Harness]:
    rule = token_rule(token)
    yield Harness(elastic, store, rule, spec_for(rule))


def event(address: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return ct.anonymous_s3_event(address, at=at, **fields)


def terms_of(results: Iterable[ExecutionResult]) -> list[tuple[Any, ...]]:
    return [item.values for result in results for item in alerted(result)]


def test_an_hour_and_a_half_of_scheduled_runs_matches_the_oracle(
    harness: Harness, token: str
) -> None:
    main, other = cloudtrail_index(token), f"logs-other-default-{token}"
    harness.add(
        main,
        [
            event("198.51.100.3", T0 - timedelta(days=3)),
            event("198.51.100.3", T0 + timedelta(minutes=10)),
            event("198.51.100.8", T0 - timedelta(days=8)),
            event("198.51.100.8", T0 + timedelta(minutes=12)),
            event("198.51.100.20", T0 + timedelta(minutes=21)),
            event("198.51.100.20", T0 + timedelta(minutes=23), action="PutObject"),
            event("198.51.100.20", T0 + timedelta(minutes=30), action="ListObjects"),
            event("192.0.2.1", T0 + timedelta(minutes=15), account_id="111122223333"),
            event("192.0.2.2", T0 + timedelta(minutes=15), outcome="failure"),
            event("192.0.2.3", T0 + timedelta(minutes=15), provider="ec2.amazonaws.com"),
            event("192.0.2.4", T0 + timedelta(minutes=15), action="GetBucketAcl"),
            event("198.51.100.40", T0 + timedelta(minutes=33), ingested=None),
            event("198.51.100.50", T0 + timedelta(minutes=5), ingested=timedelta(hours=1)),
            event("2001:db8::77", T0 + timedelta(minutes=41)),
            event("AWS Internal", T0 + timedelta(minutes=44)),
            event("config.amazonaws.com", T0 + timedelta(minutes=47), action="PutObject"),
        ],
    )
    harness.add(other, [event("192.0.2.5", T0 + timedelta(minutes=15))])

    results = harness.schedule(T0, 19)

    alerts = terms_of(results)
    assert sorted(map(str, alerts)) == sorted(
        str((address,))
        for address in (
            "198.51.100.8",
            "198.51.100.20",
            "198.51.100.40",
            "198.51.100.50",
            "2001:db8::77",
            "AWS Internal",
            "config.amazonaws.com",
        )
    )
    # Alerted by ingestion time (T0+65m), not by event time (T0+5m).
    late = next(r for r in results if ("198.51.100.50",) in [a.values for a in alerted(r)])
    assert late.now == T0 + timedelta(minutes=65)
    stored = harness.stored()
    assert len(stored) == len(alerts)
    assert len({doc["kibana"]["alert"]["uuid"] for doc in stored}) == len(alerts)


def test_first_document_is_the_oldest_and_counts_cover_the_window(
    harness: Harness, token: str
) -> None:
    at = T0 - timedelta(minutes=3)
    harness.add(
        cloudtrail_index(token),
        [
            event("203.0.113.5", at + timedelta(minutes=1), action="PutObject"),
            event("203.0.113.5", at, key="first.txt"),
            event("203.0.113.5", at + timedelta(minutes=2), action="ListObjects"),
        ],
    )
    result = harness.step(T0)
    (alert,) = result.alerts
    assert alert["detector"]["event_count"] == 3
    assert alert["detector"]["actions"] == ["GetObject", "ListObjects", "PutObject"]
    assert alert["detector"]["s3"]["object_key"] == "first.txt"


def test_over_max_signals_the_rest_is_overflow_and_alerted_next_run(
    harness: Harness, token: str
) -> None:
    index = cloudtrail_index(token)
    at = T0 - timedelta(minutes=2)
    addresses = [f"10.0.{n // 250}.{n % 250}" for n in range(150)]
    harness.add(
        index,
        [event(address, at + timedelta(milliseconds=n)) for n, address in enumerate(addresses)],
    )

    first = harness.step(T0)
    assert first.alerts_written == 100
    assert first.new_terms == 150
    assert first.overflow == 50
    assert [values[0] for values in first.overflow_terms] == addresses[100:]

    second = harness.step(T0 + EVERY)
    assert second.alerts_written == 50
    assert second.already_alerted == 100
    assert second.overflow == 0
    assert len(harness.stored()) == 150


def test_more_than_one_page_of_window_terms_is_read(harness: Harness, token: str) -> None:
    index = cloudtrail_index(token)
    old = [f"host-{n:05d}.example.net" for n in range(10_000)]
    new = [f"zz-new-{n:02d}.example.net" for n in range(30)]  # composite order: last page
    harness.add(index, [event(address, T0 - timedelta(days=2)) for address in old])
    harness.add(index, [event(address, T0 - timedelta(minutes=1)) for address in [*old, *new]])

    result = harness.step(T0)

    assert result.terms_checked == 10_030
    assert sorted(values[0] for values in terms_of([result])) == new
    # The rule's first `_field_caps` (then cached, detector.engine.field_caps) + the baseline's
    # oldest
    # document (no cache here: `execution.execute` without a runner) + 2 pages x (window +
    # history; the first page also counts the skipped documents) + details with first-seen
    # times (all fit in max_signals) + dedup + bulk: no extra empty page, no first-seen
    # request, no override count.
    assert result.requests == 9


def test_exceptionsed_sources_neither_alert_nor_count_as_history(
    elastic: Elastic, store: AlertStore, token: str, tmp_path: Path
) -> None:
    exceptions_file = tmp_path / "exceptions.toml"
    exceptions_file.write_text(
        f'[[exception]]\nrule_id = "{BUILTIN_ID}"\nfield = "user_agent.original"\n'
        'values = ["excepted-scanner"]\n',
        encoding="utf-8",
    )
    settings = Settings(
        _env_file=None,
        exception_source_addresses=["203.0.113.0/24", "2001:db8:aa::/48"],
        exceptions_file=exceptions_file,
    )
    rule = token_rule(token)
    by_source = excluded_source(settings.exception_source_addresses)

    def predicate(source: Mapping[str, Any]) -> bool:
        by_agent = "excepted-scanner" in str(source.get("user_agent"))
        return is_anonymous_s3_access(source) and not by_source(source) and not by_agent

    spec = spec_for(rule, predicate=predicate)
    harness = Harness(elastic, store, rule, spec, from_settings(settings))
    harness.add(
        cloudtrail_index(token),
        [
            event("203.0.113.9", T0 - timedelta(minutes=1)),
            event("2001:db8:aa::1", T0 - timedelta(minutes=1)),
            # Seen 2 days ago only by an excepted client: that is not history.
            event("198.51.100.99", T0 - timedelta(days=2), user_agent="excepted-scanner"),
            event("198.51.100.99", T0 - timedelta(minutes=1)),
        ],
    )

    result = harness.step(T0)

    assert terms_of([result]) == [("198.51.100.99",)]


def test_missing_indices_are_a_partial_failure_with_no_alert(
    elastic: Elastic, store: AlertStore, token: str
) -> None:
    rule = dataclasses.replace(builtin(), index=(f"nothing-here-{token}*", f"absent-{token}"))
    result = execution.execute(elastic, store, rule, T0)
    # Kibana's "no index matching" warning: a success that must not look like one.
    assert (result.status, result.no_index_matched) == ("partial failure", True)
    assert (result.terms_checked, result.alerts_written) == (0, 0)


def test_both_real_index_patterns_are_searched(
    elastic: Elastic, store: AlertStore, token: str
) -> None:
    rule = builtin()
    assert set(rule.index) == {"filebeat-*", "logs-aws.cloudtrail*"}
    harness = Harness(elastic, store, rule, spec_for(rule))
    at = T0 - timedelta(minutes=2)
    harness.add(filebeat_index(token), [event(f"fb-{token}.example.net", at)])
    harness.add(cloudtrail_index(token), [event(f"ct-{token}.example.net", at)])

    result = harness.execute(T0)

    mine = {values for values in terms_of([result]) if token in str(values)}
    assert mine == {(f"fb-{token}.example.net",), (f"ct-{token}.example.net",)}


def test_timestamp_ties_and_late_older_documents_give_one_alert(
    harness: Harness, token: str
) -> None:
    """kibana#174148: several documents tie on the first time, and runs overlap."""
    tie = T0 - timedelta(minutes=3)
    harness.add(
        cloudtrail_index(token), [event("198.51.100.1", tie, key=f"k{n}") for n in range(3)]
    )
    harness.add(filebeat_index(token), [event("198.51.100.1", tie, key="fb")])
    first = harness.step(T0)
    again = harness.execute(T0, dry_run=True)
    assert again.already_alerted == 1
    chosen = first.alerts[0]["kibana"]["alert"]["ancestors"][0]
    repeat = harness.execute(T0 + timedelta(seconds=1), dry_run=True)
    assert repeat.alerts == ()
    # A late document, older than the first one (no ingest time), moves first_seen back.
    harness.add(
        cloudtrail_index(token), [event("198.51.100.1", tie - timedelta(seconds=30), ingested=None)]
    )
    harness.step(T0 + EVERY)
    assert len(harness.stored()) == 1
    assert chosen["index"] in (cloudtrail_index(token), filebeat_index(token))


def test_two_field_rule_matches_the_oracle(elastic: Elastic, store: AlertStore, token: str) -> None:
    rule = token_rule(token, new_terms_fields=("source.address", "tls.client.server_name"))
    harness = Harness(elastic, store, rule, spec_for(rule))
    host = "{}.s3.us-east-1.amazonaws.com".format
    docs = [
        event("198.51.100.1", T0 - timedelta(days=2), bucket="alpha"),
        event("198.51.100.1", T0 + timedelta(minutes=3), bucket="alpha"),  # seen: no alert
        event("198.51.100.1", T0 + timedelta(minutes=4), bucket="beta"),  # new pair
        event("198.51.100.2", T0 + timedelta(minutes=6), bucket="alpha"),  # new pair
        event("2001:db8::9", T0 + timedelta(minutes=14), bucket="gamma"),
    ]
    multi = event("198.51.100.3", T0 + timedelta(minutes=16), bucket="delta")
    multi["source"]["address"] = ["198.51.100.3", "198.51.100.4"]  # two combinations
    no_tls = event("198.51.100.5", T0 + timedelta(minutes=17))
    del no_tls["tls"]  # a missing field yields no combination
    harness.add(cloudtrail_index(token), [*docs, multi, no_tls])

    results = harness.schedule(T0, 6)

    assert sorted(terms_of(results)) == [
        ("198.51.100.1", host("beta")),
        ("198.51.100.2", host("alpha")),
        ("198.51.100.3", host("delta")),
        ("198.51.100.4", host("delta")),
        ("2001:db8::9", host("gamma")),
    ]


@pytest.mark.parametrize(
    "fields", [("source.ip",), ("source.ip", "aws.cloudtrail.read_only")], ids=["ip", "ip+bool"]
)
def test_ip_and_boolean_fields_keep_their_types(
    elastic: Elastic, store: AlertStore, token: str, fields: tuple[str, ...]
) -> None:
    rule = token_rule(token, new_terms_fields=fields)
    harness = Harness(elastic, store, rule, spec_for(rule))
    at = T0 - timedelta(minutes=2)
    harness.add(
        cloudtrail_index(token),
        [
            event("2001:db8::1", T0 - timedelta(days=1), action="GetObject"),  # read_only true
            event("2001:db8::1", at, action="PutObject"),  # read_only false: new pair only
            event("192.0.2.10", at),
            event("AWS Internal", at),  # no source.ip: no term
        ],
    )
    (result,) = harness.schedule(T0, 1)
    expected = (
        {("192.0.2.10",)}
        if len(fields) == 1
        else {
            ("192.0.2.10", True),
            ("2001:db8::1", False),
        }
    )
    assert set(terms_of([result])) == expected


class ClauseLimitedElastic(Elastic):
    """Rejects queries with more than `limit` `should` clauses, as a low max_clause_count does."""

    limit = 125

    def search(
        self, index: Iterable[str], body: Mapping[str, Any], expect: Iterable[str] = ()
    ) -> dict[str, Any]:
        for clause in body["query"]["bool"]["filter"]:
            should = clause.get("bool", {}).get("should", [])
            if len(should) > self.limit:
                raise RequestError(
                    "Elasticsearch rejected the request (400): search_phase_execution_exception: "
                    "too_many_nested_clauses: Query contains too many nested clauses",
                    400,
                    "search_phase_execution_exception",
                )
        return super().search(index, body, expect)


def test_multi_field_batches_are_halved_on_clause_limits(
    es_settings: Settings, store: AlertStore, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    elastic = ClauseLimitedElastic(es_settings)
    rule = token_rule(token, new_terms_fields=("source.address", "tls.client.server_name"))
    # Kibana's batch method explicitly: the default multi-field history has no `should` batches.
    history = AggregationHistory(elastic)
    harness = Harness(elastic, store, rule, spec_for(rule), history=history)
    at = T0 - timedelta(minutes=3)
    sources = [f"10.1.{n // 200}.{n % 200}" for n in range(300)]
    harness.add(
        cloudtrail_index(token),
        [event(source, at + timedelta(milliseconds=n)) for n, source in enumerate(sources)]
        + [event(source, T0 - timedelta(days=1)) for source in sources[::3]],
    )
    try:
        (result,) = harness.schedule(T0, 1)
    finally:
        elastic.close()
    assert result.new_terms == 200
    assert result.overflow == 100
    halved = [vars(r)["batch_size"] for r in caplog.records if r.getMessage().startswith("halving")]
    assert halved == [250, 125]
