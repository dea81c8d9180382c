"""Fields mapped with different types in a rule's indices: groups, values each can hold, and the
canonical form terms are compared in."""

from __future__ import annotations

import pytest

from detector.query.type_groups import (
    FieldTypes,
    canonical,
    describe,
    holds,
    unaggregatable_text,
)

MIXED = FieldTypes.of(
    ["logs-a", "logs-b", "logs-c", "logs-old"],
    {"source.address": {"keyword": ["logs-a", "logs-old"], "ip": ["logs-b"]}},
)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # a single zero group stays (RFC 5952)
        ("::ffff:9.9.9.9", "9.9.9.9"),  # IPv4-mapped: stored as IPv4 by an ip field
        ("192.0.2.1", "192.0.2.1"),
        ("AWS Internal", "AWS Internal"),
        ("", ""),
        ("fe80::1%eth0", "fe80::1%eth0"),  # a scope id: no IP literal for an ip field
        (5, 5),
    ],
)
def test_canonical_is_the_form_an_ip_field_returns(written: object, expected: object) -> None:
    assert canonical(written) == expected


def test_an_ip_field_holds_only_ip_literals() -> None:
    assert holds("ip", "2001:DB8:0:0::1") and holds("ip", "192.0.2.1")
    assert not holds("ip", "AWS Internal") and not holds("ip", "") and not holds("ip", 7)


def test_numeric_and_boolean_fields_hold_only_their_values() -> None:
    assert holds("long", 3) and holds("long", "3") and not holds("long", "3.5")
    assert holds("double", "3.5") and not holds("double", "x") and not holds("long", True)
    assert holds("boolean", True) and not holds("boolean", "yes")
    assert holds("keyword", "anything") and holds("", "unmapped holds anything")


def test_a_field_with_two_types_is_a_conflict_naming_every_index() -> None:
    conflicts = MIXED.conflicts(["source.address", "event.action"])
    assert conflicts == {"source.address": {"keyword": ("logs-a", "logs-old"), "ip": ("logs-b",)}}
    assert describe("source.address", conflicts["source.address"]) == (
        "source.address is mapped as ip in logs-b; as keyword in logs-a, logs-old"
    )


def test_string_types_are_one_family_and_no_conflict() -> None:
    types = FieldTypes.of(["a", "b"], {"f": {"keyword": ["a"], "constant_keyword": ["b"]}})
    assert types.conflicts(["f"]) == {}
    assert [group.indices for group in types.groups(["f"])] == [("a", "b")]


def test_a_text_mapping_is_unaggregatable_naming_its_indices_and_no_conflict() -> None:
    dynamic = FieldTypes.of(
        ["logs-a", "logs-b", "logs-c"],
        {
            "source.address": {"keyword": ["logs-a"], "text": ["logs-c", "logs-b"]},
            "user.name": {"keyword": ["logs-a", "logs-b", "logs-c"]},
        },
    )

    assert dynamic.unaggregatable(["source.address", "user.name"]) == {
        "source.address": ("logs-b", "logs-c")
    }
    assert dynamic.conflicts(["source.address"]) == {}
    assert MIXED.unaggregatable(["source.address"]) == {}
    assert unaggregatable_text("source.address", ["logs-b"]).endswith(
        "map it keyword or ip there (an index template for its pattern, then reindex or roll over)"
    )


def test_groups_split_by_type_and_an_unmapping_index_joins_the_commonest() -> None:
    groups = MIXED.groups(["source.address"])
    # logs-c does not map the field: it joins keyword, the type of most indices.
    assert [(group.indices, dict(group.kinds)) for group in groups] == [
        (("logs-a", "logs-c", "logs-old"), {"source.address": "keyword"}),
        (("logs-b",), {"source.address": "ip"}),
    ]
    assert not groups[1].holds("source.address", "AWS Internal")
    assert groups[0].holds("source.address", "AWS Internal")


def test_one_type_everywhere_is_one_group() -> None:
    types = FieldTypes.of(["a", "b"], {"source.address": {"ip": ["a", "b"]}})
    assert len(types.groups(["source.address"])) == 1
    assert FieldTypes.of([], {}).groups(["source.address"]) == []


def test_health_reports_a_rule_whose_last_execution_matched_no_index() -> None:
    from datetime import UTC, datetime, timedelta

    from detector.execution_log.health import RuleRuns, problem

    ended = "2025-01-15T12:00:01.000Z"
    doc = {"execution": {"status": "partial failure", "ended": ended, "no_index_matched": True}}
    runs = RuleRuns("r1", "Rule one", doc, doc)
    now = datetime(2025, 1, 15, 12, 1, tzinfo=UTC)

    assert problem(runs, now, timedelta(hours=1)) == (
        f"rule r1 (Rule one): its index patterns matched no index at its last execution "
        f"({ended}): nothing is searched"
    )
