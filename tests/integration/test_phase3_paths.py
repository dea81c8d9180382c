"""Phase 3 without a first-seen request picks what the two-request path picks: the same
first-seen time, first document (ties broken alike), event count and actions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from detector import kql
from detector.alerts.s3_location import s3_location
from detector.engine import phases
from detector.es.client import Elastic
from detector.query import bodies
from detector.query.bodies import Plan
from detector.query.window import time_fields, window_for
from detector.results import NewTerm
from detector.rules import Rule, builtin_rules
from tests.support import cloudtrail as ct

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
T = NOW - timedelta(minutes=4)


def _rule(token: str, **changes: Any) -> Rule:
    builtin = next(r for r in builtin_rules() if r.new_terms_fields == ("source.address",))
    return dataclasses.replace(builtin, index=(f"logs-phase3-*-{token}",), **changes)


def _plan(rule: Rule) -> Plan:
    base = bodies.rule_filter(kql.to_dsl(rule.query), [])
    return Plan(rule, window_for(rule, NOW), time_fields(rule), base)


def _docs() -> dict[str, list[dict[str, Any]]]:
    """Per index: one source per case of the combined time (override, else `@timestamp`)."""
    event = ct.anonymous_s3_event
    a = [
        # the fallback document is the earliest
        event("10.9.0.1", at=T, ingested=T + timedelta(seconds=20), key="late-override"),
        event("10.9.0.1", at=T + timedelta(seconds=5), ingested=None, key="fallback-first"),
        # the override document is the earliest, though its @timestamp is later
        event("10.9.0.2", at=T + timedelta(minutes=1), ingested=T, key="override-first"),
        event("10.9.0.2", at=T - timedelta(days=9), ingested=None, key="outside"),
        event("10.9.0.2", at=T + timedelta(seconds=1), ingested=None, key="fallback-later"),
        # a tie on the combined time across the groups: the earlier @timestamp wins
        event("10.9.0.3", at=T - timedelta(seconds=9), ingested=T, key="override-tie"),
        event("10.9.0.3", at=T, ingested=None, key="fallback-tie"),
        # a tie on the combined time and @timestamp: the event id breaks it
        *[event("10.9.0.4", at=T, key=f"same-{n}", action="PutObject") for n in range(3)],
        event("10.9.0.4", at=T + timedelta(minutes=2), action="ListObjects"),
    ]
    # the same times in another index: the index name breaks the tie
    b = [event("10.9.0.5", at=T, key="index-b"), event("10.9.0.4", at=T, key="index-b")]
    return {"a": a, "b": [*b, event("10.9.0.6", at=T + timedelta(seconds=3), ingested=None)]}


def _load(elastic: Elastic, token: str) -> None:
    docs = _docs()
    docs["a"].append(ct.anonymous_s3_event("10.9.0.5", at=T, key="index-a"))
    for name, batch in docs.items():
        index = f"logs-phase3-{name}-{token}"
        ct.create_index(elastic, index)
        ct.index_documents(elastic, index, batch)


def _two_requests(elastic: Elastic, plan: Plan, new: list[Any]) -> list[NewTerm]:
    return phases.details(elastic, plan, phases.first_seen(elastic, plan, new))


def _by_values(terms: list[NewTerm]) -> dict[Any, NewTerm]:
    return {term.values: term for term in terms}


def test_the_first_document_and_time_match_the_two_request_path(
    elastic: Elastic, token: str
) -> None:
    _load(elastic, token)
    plan = _plan(_rule(token))
    new = [(f"10.9.0.{n}",) for n in range(1, 8)]  # .7 has no document: left out by both
    one = _by_values(phases.details_unseen(elastic, plan, new))
    two = _by_values(_two_requests(elastic, plan, new))
    assert one == two
    assert len(one) == 6
    first = {values[0]: s3_location(term.hit["_source"]).object_key for values, term in one.items()}
    assert first["10.9.0.1"] == "fallback-first"
    assert first["10.9.0.2"] == "override-first"
    assert first["10.9.0.3"] == "override-tie"
    assert one[("10.9.0.4",)].event_count == 5
    assert one[("10.9.0.4",)].actions == ("GetObject", "ListObjects", "PutObject")
    assert one[("10.9.0.5",)].hit["_index"] == f"logs-phase3-a-{token}"


def test_without_the_fallback_only_the_override_counts(elastic: Elastic, token: str) -> None:
    _load(elastic, token)
    plan = _plan(_rule(token, timestamp_override_fallback_disabled=True))
    new = [(f"10.9.0.{n}",) for n in range(1, 7)]
    one = _by_values(phases.details_unseen(elastic, plan, new))
    assert one == _by_values(_two_requests(elastic, plan, new))
    assert ("10.9.0.6",) not in one  # only a document without the override


def test_two_fields_match_the_two_request_path(elastic: Elastic, token: str) -> None:
    _load(elastic, token)
    rule = _rule(token, new_terms_fields=("source.address", "cloud.account.id"))
    plan = _plan(rule)
    new = [(f"10.9.0.{n}", "anonymous") for n in range(1, 7)]
    one = _by_values(phases.details_unseen(elastic, plan, new))
    assert one == _by_values(_two_requests(elastic, plan, new))
    assert len(one) == 6
