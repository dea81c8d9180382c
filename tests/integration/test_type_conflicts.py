"""A new-terms field mapped `keyword` in one index and `ip` in another (custom pipelines, old
Filebeat indices) on the real node, compared with the brute-force oracle: odd values do not fail
the execution, history held only in the ip-mapped index counts, and an address is one term
however it is written."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.alerts.store import AlertStore
from detector.engine import field_caps
from detector.engine.history import AggregationHistory, SupersetHistory
from detector.es.client import Elastic
from detector.explain.investigation import explain
from detector.explain.verdict import (
    ALERTED,
    EXCLUDED,
    NOT_IN_WINDOW,
    SEEN,
    WOULD_ALERT,
    Explanation,
)
from detector.query.type_groups import canonical
from detector.rules.exceptions import ExceptionList, load_file
from detector.settings import Settings
from detector.times import iso
from tests.integration.test_engine import (
    BUILTIN_ID,
    T0,
    Harness,
    alerted,
    cloudtrail_index,
    event,
    spec_for,
    terms_of,
    token_rule,
)
from tests.integration.test_engine_runs import rule_file
from tests.support import cloudtrail as ct
from tests.support.bruteforce import excluded_source, is_anonymous_s3_access
from tests.support.commands import detector_command, node_variables
from tests.support.es_node import EsNode

WINDOW, THREE_DAYS_AGO = T0 - timedelta(minutes=2), T0 - timedelta(days=3)
EXCEPTIONSED = ["AWS Internal", "192.0.2.200"]


def ip_index(token: str) -> str:
    """An old Filebeat index whose mapping has `source.address` as `ip`."""
    return f"filebeat-7.17-{token}"


def create_ip_index(elastic: Elastic, name: str) -> None:
    body = copy.deepcopy(ct.INDEX_BODY)
    body["mappings"]["properties"]["source"]["properties"]["address"] = {"type": "ip"}
    elastic.call(lambda es: es.indices.create(index=name, body=body))


def conflicting(harness: Harness, token: str) -> Harness:
    """The two indices of the issue, with every kind of value on both sides."""
    keyword, ip = cloudtrail_index(token), ip_index(token)
    create_ip_index(harness.elastic, ip)
    harness.created.add(ip)
    harness.add(
        ip,
        [
            event("198.51.100.3", THREE_DAYS_AGO),  # history only in the ip index
            event("2001:db8::1", THREE_DAYS_AGO),  # written canonically by the ip field
            event("2001:db8::99", WINDOW, action="PutObject"),  # also in the keyword window
            event("192.0.2.77", WINDOW),  # new, in the ip index only
            event("::ffff:192.0.2.88", WINDOW),  # stored (and returned) as 192.0.2.88
            event("192.0.2.200", WINDOW),  # excepted
        ],
    )
    harness.add(
        keyword,
        [
            event("AWS Internal", WINDOW),  # excepted, and no IP for the ip index
            event("", WINDOW),
            event("config.amazonaws.com", WINDOW),  # new: a service name, not an address
            event("198.51.100.3", WINDOW),  # seen 3 days earlier in the ip index
            event("2001:DB8:0:0::1", WINDOW),  # the same address as 2001:db8::1
            event("2001:DB8::99", WINDOW - timedelta(seconds=30)),  # first seen here
            event("203.0.113.5", WINDOW),  # new
            event("192.0.2.88", THREE_DAYS_AGO),  # history of the IPv4-mapped one
        ],
    )
    return harness


def harness_for(
    elastic: Elastic, store: AlertStore, token: str, tmp_path: Path, **changes: Any
) -> Harness:
    """The built-in rule (with `changes`) on this test's indices, excepting `EXCEPTIONSED`,
    and its oracle, which compares `source.address` in canonical form."""
    exceptions = tmp_path / "exceptions.toml"
    exceptions.write_text(
        f'[[exception]]\nrule_id = "{BUILTIN_ID}"\nfield = "source.address"\n'
        f"values = {json.dumps(EXCEPTIONSED)}\n"
    )
    rule = token_rule(token, **changes)
    excluded = excluded_source(EXCEPTIONSED)
    spec = spec_for(
        rule,
        predicate=lambda source: is_anonymous_s3_access(source) and not excluded(source),
        canonical_ips=frozenset({"source.address"}),
    )
    return Harness(elastic, store, rule, spec, exceptions=ExceptionList(load_file(exceptions)))


@pytest.fixture
def harness(elastic: Elastic, store: AlertStore, token: str, tmp_path: Path) -> Harness:
    return harness_for(elastic, store, token, tmp_path)


def test_conflicting_mappings_alert_exactly_what_the_oracle_says(
    harness: Harness, token: str
) -> None:
    result = conflicting(harness, token).step(T0)

    assert sorted(values for (values,) in [item.values for item in alerted(result)]) == [
        "",
        "192.0.2.77",
        "2001:db8::99",
        "203.0.113.5",
        "config.amazonaws.com",
    ]


def test_a_term_in_both_indices_is_one_alert_with_both_documents(
    harness: Harness, token: str
) -> None:
    result = conflicting(harness, token).step(T0)

    (alert,) = [a for a in result.alerts if a["kibana"]["alert"]["new_terms"] == ["2001:db8::99"]]
    assert alert["kibana"]["alert"]["original_event"]["action"] == "GetObject"  # the first one
    assert alert["source"]["address"] == "2001:DB8::99"  # as the first document wrote it


def test_every_phase_searches_each_type_group_and_nothing_fails(
    harness: Harness, token: str
) -> None:
    conflicting(harness, token)
    single = harness.execute(T0 - timedelta(days=10))  # nothing in the window: phase 1 only

    result = harness.step(T0)

    assert single.status == "succeeded", single.error
    # field caps is cached: the baseline's oldest document per group (2, no runner to cache
    # it) + phase 1 per group (2) + history per group (2) + first seen (2) + dedup + details
    # (2) + bulk
    assert result.requests == 12


def test_check_names_the_conflicting_field_and_its_indices(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    ct.create_index(elastic, cloudtrail_index(token))
    create_ip_index(elastic, ip_index(token))
    rules = rule_file(
        tmp_path, [f"logs-aws.cloudtrail*-{token}", f"filebeat-*-{token}", f"typo-{token}"]
    )
    variables = node_variables(
        es_node, DETECTOR_BUILTIN_RULES="false", DETECTOR_RULES_PATH=str(rules)
    )

    run = detector_command(tmp_path, ["check"], **variables)

    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        f"warning: rule {BUILTIN_ID} (AWS S3 Unauthenticated Bucket Access by Rare Source): "
        f"source.address is mapped as ip in {ip_index(token)}; as keyword in "
        f"{cloudtrail_index(token)}: each type is searched apart" in run.stdout
    )
    assert f"  typo-{token}: no index yet" in run.stdout


def test_a_single_type_rule_asks_field_caps_only_once_per_ttl(harness: Harness, token: str) -> None:
    harness.add(cloudtrail_index(token), [event("203.0.113.5", WINDOW)])
    first = harness.execute(T0, dry_run=True)
    again = harness.execute(T0, dry_run=True)
    # the baseline's oldest document (no runner to cache it) + window + history + details with
    # the first-seen time + dedup, and `_field_caps` the first time only
    assert (first.requests, again.requests) == (6, 5)
    assert alerted(first) == alerted(again) and len(alerted(again)) == 1


def test_field_caps_is_asked_again_after_the_ttl(elastic: Elastic, token: str) -> None:
    now = [0.0]
    cache = field_caps.TypeCache(ttl=60, clock=lambda: now[0])
    patterns, fields = [f"logs-aws.cloudtrail*-{token}"], ["source.address"]
    assert cache.field_types(elastic, patterns, fields).indices == ()
    ct.create_index(elastic, cloudtrail_index(token))
    now[0] = 59.0
    assert cache.field_types(elastic, patterns, fields).indices == ()  # cached
    now[0] = 60.0
    assert cache.field_types(elastic, patterns, fields).indices == (cloudtrail_index(token),)


@pytest.mark.parametrize("strategy", [AggregationHistory, SupersetHistory])
def test_two_fields_with_a_conflict_match_the_oracle_with_either_history(
    elastic: Elastic, store: AlertStore, token: str, tmp_path: Path, strategy: type
) -> None:
    fields = ("source.address", "tls.client.server_name")
    two = harness_for(elastic, store, token, tmp_path, new_terms_fields=fields)
    two.history = strategy(elastic)
    conflicting(two, token)
    # The same address and bucket held in the ip index's history, written differently here.
    two.add(cloudtrail_index(token), [event("2001:DB8:0:0::1", WINDOW, bucket="other")])
    two.add(ip_index(token), [event("2001:db8::1", THREE_DAYS_AGO, bucket="other")])

    result = two.step(T0)

    assert ("2001:db8::1", "other.s3.us-east-1.amazonaws.com") not in terms_of([result])
    assert ("192.0.2.77", "public-assets-example.s3.us-east-1.amazonaws.com") in terms_of([result])


def test_concrete_index_names_are_split_the_same_way(
    elastic: Elastic, store: AlertStore, token: str, tmp_path: Path
) -> None:
    concrete = harness_for(elastic, store, token, tmp_path)
    concrete.rule = dataclasses.replace(
        concrete.rule, index=(cloudtrail_index(token), ip_index(token))
    )
    conflicting(concrete, token)

    result = concrete.step(T0)

    assert ("192.0.2.77",) in terms_of([result]) and ("203.0.113.5",) in terms_of([result])


def test_an_index_created_while_the_types_are_cached_is_searched(
    harness: Harness, token: str
) -> None:
    conflicting(harness, token).step(T0)
    # keyword, as the group that searches the patterns (the greatest index name of a tie)
    later = f"logs-aws.cloudtrail-later-{token}"

    harness.add(later, [event("203.0.113.99", T0)])
    result = harness.step(T0 + timedelta(minutes=1))

    assert terms_of([result]) == [("203.0.113.99",)]


def test_an_index_of_another_type_created_meanwhile_fails_once_then_is_split(
    harness: Harness, token: str
) -> None:
    conflicting(harness, token).step(T0)
    odd = f"logs-aws.cloudtrail-ip-{token}"  # ip, but matched by the keyword group's pattern
    create_ip_index(harness.elastic, odd)
    harness.created.add(odd)
    harness.add(odd, [event("203.0.113.98", T0)])

    failed = harness.execute(T0 + timedelta(minutes=1))  # the cached types are stale: loud
    result = harness.step(T0 + timedelta(minutes=1))  # the failure cleared them

    assert failed.status == "failed"
    assert terms_of([result]) == [("203.0.113.98",)]


def test_an_exception_value_no_ip_field_can_hold_is_left_out_where_all_are_ip(
    harness: Harness, token: str
) -> None:
    ip_only = dataclasses.replace(harness.rule, index=(f"filebeat-*-{token}",))
    harness.rule, harness.spec = (
        ip_only,
        dataclasses.replace(harness.spec, index_patterns=ip_only.index),
    )
    create_ip_index(harness.elastic, ip_index(token))
    harness.created.add(ip_index(token))
    harness.add(ip_index(token), [event("192.0.2.200", WINDOW), event("192.0.2.201", WINDOW)])

    result = harness.step(T0)  # "AWS Internal" in the exceptions used to fail every execution

    assert terms_of([result]) == [("192.0.2.201",)]


# Every value of `conflicting` the execution does not alert, with why, and one in no document.
NOT_ALERTED = {
    "AWS Internal": EXCLUDED,
    "192.0.2.200": EXCLUDED,
    "198.51.100.3": SEEN,
    "2001:db8::1": SEEN,
    "2001:DB8:0:0::1": SEEN,
    "::ffff:192.0.2.88": SEEN,
    "192.0.2.88": SEEN,
    "198.51.100.50": NOT_IN_WINDOW,
}


def every_value(harness: Harness) -> list[str]:
    """Every `source.address` of the indexed documents, and one no document holds."""
    held = (doc.source["source"]["address"] for doc in harness.docs)
    return [*dict.fromkeys(held), "198.51.100.50"]


def explain_value(harness: Harness, value: str) -> Explanation:
    return explain(
        harness.elastic, harness.store, harness.rule, T0, (value,), exceptions=harness.exceptions
    )


def test_explain_says_would_alert_for_exactly_what_the_execution_then_alerts(
    harness: Harness, token: str
) -> None:
    values = every_value(conflicting(harness, token))

    before = {value: explain_value(harness, value) for value in values}
    result = harness.step(T0)

    alerted = {canonical(alert["kibana"]["alert"]["new_terms"][0]) for alert in result.alerts}
    would = {value for value, found in before.items() if found.verdict == WOULD_ALERT}
    assert would == {value for value in values if canonical(value) in alerted}
    assert {v: found.verdict for v, found in before.items() if v in NOT_ALERTED} == NOT_ALERTED


def test_explain_names_the_alert_of_every_alerted_value_and_why_the_others_are_not(
    harness: Harness, token: str
) -> None:
    values = every_value(conflicting(harness, token))
    result = harness.step(T0)
    alerts = {canonical(alert["kibana"]["alert"]["new_terms"][0]): alert for alert in result.alerts}

    after = {value: explain_value(harness, value) for value in values}

    expected = {
        value: (ALERTED, alerts[canonical(value)]["kibana"]["alert"]["uuid"])
        if canonical(value) in alerts
        else (NOT_ALERTED[value], None)
        for value in values
    }
    assert {value: (found.verdict, found.alert_id) for value, found in after.items()} == expected
    first_seen = {
        value: alerts[canonical(value)]["detector"]["first_seen"]
        for value in values
        if canonical(value) in alerts
    }
    assert {v: iso(after[v].first_seen) for v in first_seen} == first_seen


def dynamic_index(harness: Harness, token: str) -> str:
    """An index created by a first document, without Elastic's template: dynamic mapping makes
    every string `text` (with a `.keyword` sub-field)."""
    name = f"filebeat-7.0-dynamic-{token}"
    harness.created.add(name)
    harness.add(name, [event("203.0.113.60", WINDOW)])
    return name


def test_a_new_terms_field_mapped_text_fails_the_execution_naming_index_field_and_fix(
    harness: Harness, token: str
) -> None:
    harness.add(cloudtrail_index(token), [event("203.0.113.5", WINDOW)])
    text_index = dynamic_index(harness, token)

    result = harness.execute(T0)

    assert (result.status, result.alerts_written) == ("failed", 0)
    assert result.error == (
        f"source.address is mapped as text in {text_index}: a new-terms field is aggregated, "
        "which a text field cannot be (Elasticsearch: fielddata is disabled); map it keyword "
        "or ip there (an index template for its pattern, then reindex or roll over)"
    )


def test_check_names_a_new_terms_field_mapped_text_as_an_error(
    harness: Harness, es_node: EsNode, token: str, tmp_path: Path
) -> None:
    harness.add(cloudtrail_index(token), [event("203.0.113.5", WINDOW)])
    text_index = dynamic_index(harness, token)
    rules = rule_file(tmp_path, [f"logs-aws.cloudtrail*-{token}", f"filebeat-*-{token}"])
    variables = node_variables(
        es_node, DETECTOR_BUILTIN_RULES="false", DETECTOR_RULES_PATH=str(rules)
    )

    run = detector_command(tmp_path, ["check"], **variables)

    assert run.returncode == 1, run.stdout + run.stderr
    assert (
        f"error: rule {BUILTIN_ID} (AWS S3 Unauthenticated Bucket Access by Rare Source): "
        f"source.address is mapped as text in {text_index}: a new-terms field is aggregated"
    ) in run.stdout


def test_explain_of_a_value_no_ip_field_can_hold_is_not_in_the_window_where_all_are_ip(
    harness: Harness, token: str
) -> None:
    harness.rule = dataclasses.replace(harness.rule, index=(f"filebeat-*-{token}",))
    create_ip_index(harness.elastic, ip_index(token))
    harness.created.add(ip_index(token))
    harness.add(ip_index(token), [event("192.0.2.201", WINDOW)])

    found = explain_value(harness, "config.amazonaws.com")

    assert (found.verdict, found.window_count, found.exceptions) == (NOT_IN_WINDOW, 0, ())


def test_explain_finds_the_alert_of_an_address_written_otherwise_where_all_are_ip(
    harness: Harness, token: str
) -> None:
    ip_only = dataclasses.replace(harness.rule, index=(f"filebeat-*-{token}",))
    harness.rule = ip_only
    harness.spec = dataclasses.replace(harness.spec, index_patterns=ip_only.index)
    create_ip_index(harness.elastic, ip_index(token))
    harness.created.add(ip_index(token))
    harness.add(ip_index(token), [event("2001:DB8::99", WINDOW)])
    (alert,) = harness.step(T0).alerts

    found = explain_value(harness, "2001:DB8:0::99")

    assert (found.verdict, found.alert_id) == (ALERTED, alert["kibana"]["alert"]["uuid"])
