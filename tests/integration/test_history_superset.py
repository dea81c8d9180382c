"""The superset history (a `terms` filter per field, one composite) against Kibana's batch method
and the brute-force oracle on the real node: randomised streams with arrays, missing fields,
documents without the override, excluded documents and documents on the window/history bounds."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from detector import kql
from detector.alerts.store import AlertStore
from detector.engine import phases
from detector.engine.history import AggregationHistory, SupersetHistory
from detector.es.client import Elastic
from detector.query import bodies
from detector.query.bodies import Plan
from detector.query.window import time_fields, window_for
from detector.results import Values
from detector.rules import Rule
from tests.integration.test_engine import (
    EVERY,
    T0,
    Harness,
    cloudtrail_index,
    event,
    spec_for,
    token_rule,
)
from tests.support.bruteforce import Spec, terms_of, time_of

FIELDS = {
    "two": ("source.address", "tls.client.server_name"),
    "three": ("source.address", "tls.client.server_name", "event.action"),
}
SOURCES = [f"10.9.0.{n}" for n in range(12)] + ["AWS Internal", "2001:db8::7"]
BUCKETS = [f"b{n}" for n in range(6)]
ACTIONS = ["GetObject", "PutObject", "ListObjects"]


def _stream(rng: random.Random, now: datetime) -> Iterator[dict[str, Any]]:
    """Documents around one execution at `now`: window, history, both bounds, and outside."""
    start, history_start = now - timedelta(minutes=9), now - timedelta(days=7)
    moments = [
        start,  # the history's last instant
        start + timedelta(milliseconds=1),  # the window's first own instant
        history_start,  # the history's first instant
        history_start - timedelta(milliseconds=1),  # before the history: ignored
        now,  # the window's last instant
        now + timedelta(milliseconds=1),  # after the window: ignored
    ]
    for n in range(400):
        if n % 10 == 0:
            at = rng.choice(moments)
        elif n % 2:
            at = now - timedelta(milliseconds=rng.randrange(9 * 60_000))
        else:
            at = now - timedelta(minutes=9, milliseconds=rng.randrange(7 * 24 * 3_600_000))
        doc = event(
            rng.choice(SOURCES),
            at,
            bucket=rng.choice(BUCKETS),
            action=rng.choice(ACTIONS),
            ingested=None if rng.random() < 0.15 else timedelta(0),
            outcome="failure" if rng.random() < 0.05 else "success",
        )
        roll = rng.random()
        if roll < 0.1:
            doc["source"]["address"] = rng.sample(SOURCES, 2)  # arrays: cross products
        elif roll < 0.15:
            host = "{}.s3.us-east-1.amazonaws.com".format
            doc["tls"]["client"]["server_name"] = [host(b) for b in rng.sample(BUCKETS, 2)]
        elif roll < 0.2:
            del doc["tls"]  # a missing field: no combination
        yield doc


def _in_history(docs: list[dict[str, Any]], spec: Spec, now: datetime) -> set[Values]:
    """The oracle: combinations of matching documents in `[history_start, start]`."""
    start, history_start = now - spec.lookback, now - spec.history
    found: set[Values] = set()
    for source in docs:
        moment = time_of(source, spec)
        if spec.predicate(source) and moment is not None and history_start <= moment <= start:
            found.update(terms_of(source, spec.fields))
    return found


def _plan(rule: Rule, now: datetime) -> Plan:
    base = bodies.rule_filter(kql.to_dsl(rule.query), [])
    return Plan(rule, window_for(rule, now), time_fields(rule), base)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("width", sorted(FIELDS))
def test_superset_equals_the_batch_method_and_the_oracle(
    elastic: Elastic, store: AlertStore, token: str, seed: int, width: str
) -> None:
    rng = random.Random(seed)
    rule = token_rule(token, new_terms_fields=FIELDS[width])
    spec = spec_for(rule)
    docs = list(_stream(rng, T0))
    harness = Harness(elastic, store, rule, spec)
    harness.add(cloudtrail_index(token), docs)
    plan = _plan(rule, T0)
    every = {term for source in docs for term in terms_of(source, spec.fields)}
    absent = {("198.51.100.250", "nowhere", "GetObject")[: len(spec.fields)]}
    asked = sorted(every | absent, key=repr)

    expected = _in_history(docs, spec, T0) & set(asked)
    assert SupersetHistory(elastic).seen(plan, asked) == expected
    assert AggregationHistory(elastic).seen(plan, asked) == expected
    assert SupersetHistory(elastic).seen(plan, []) == set()

    # End to end: the same alerts as the oracle, run after run, with either strategy.
    for n in range(3):
        harness.history = SupersetHistory(elastic) if n % 2 else AggregationHistory(elastic)
        harness.step(T0 + n * EVERY)


def test_superset_pages_through_more_than_one_composite_page(
    elastic: Elastic, store: AlertStore, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "PAGE_SIZE", 7)
    rule = token_rule(token, new_terms_fields=FIELDS["two"])
    docs = list(_stream(random.Random(9), T0))
    harness = Harness(elastic, store, rule, spec_for(rule))
    harness.add(cloudtrail_index(token), docs)
    spec = spec_for(rule)
    asked = sorted({term for source in docs for term in terms_of(source, spec.fields)}, key=repr)
    expected = _in_history(docs, spec, T0) & set(asked)
    assert len(expected) > 7
    assert SupersetHistory(elastic).seen(_plan(rule, T0), asked) == expected
    harness.history = SupersetHistory(elastic)
    harness.step(T0)


@pytest.mark.parametrize("width", ["one", "two"])
@pytest.mark.parametrize("without_override", [0.0, 0.3], ids=["all-override", "some-fallback"])
def test_first_seen_after_the_override_count_matches_the_oracle(
    elastic: Elastic,
    store: AlertStore,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    without_override: float,
    width: str,
) -> None:
    monkeypatch.setattr(phases, "OVERRIDE_COUNT_FROM", 0)  # always ask the count
    rng = random.Random(4)
    fields = ("source.address",) if width == "one" else FIELDS["two"]
    rule = token_rule(token, new_terms_fields=fields)
    harness = Harness(elastic, store, rule, spec_for(rule))
    docs = list(_stream(rng, T0))
    for doc in docs:
        if rng.random() < without_override:
            doc["event"].pop("ingested", None)
        else:
            doc["event"].setdefault("ingested", doc["@timestamp"])
    harness.add(cloudtrail_index(token), docs)
    for n in range(2):
        harness.step(T0 + n * EVERY)
