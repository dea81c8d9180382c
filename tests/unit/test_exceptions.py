from pathlib import Path

import pytest

from detector.errors import ConfigError
from detector.rules.exceptions import (
    NO_EXCEPTIONS,
    ExceptionItem,
    ExceptionList,
    from_settings,
    load_file,
    unknown_rule_ids,
)
from detector.settings import Settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exceptions.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_exceptions_no_clauses() -> None:
    assert NO_EXCEPTIONS.must_not("any") == []


def test_source_addresses_from_settings_exact_values_and_cidr_on_source_ip() -> None:
    settings = Settings(exception_source_addresses=["203.0.113.7", "AWS Internal", "10.1.2.3/8"])
    exceptions = from_settings(settings)
    assert exceptions.must_not("rule-a") == [
        {"terms": {"source.address": ["203.0.113.7", "AWS Internal"]}},
        {"term": {"source.ip": "10.0.0.0/8"}},
    ]


def test_ipv6_cidr() -> None:
    settings = Settings(exception_source_addresses=["2001:db8::/32"])
    assert from_settings(settings).must_not("r") == [{"term": {"source.ip": "2001:db8::/32"}}]


def test_file_entries_apply_per_rule_or_to_every_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[exception]]
rule_id = "rule-a"
field = "user_agent.name"
values = ["Other", 3, true]

[[exception]]
rule_id = "*"
field = "destination.address"
values = ["192.168.0.0/16", "path/like"]
comment = "internal"
""",
    )
    exceptions = from_settings(Settings(exceptions_file=path))
    assert exceptions.must_not("rule-a") == [
        {"terms": {"user_agent.name": ["Other", 3, True]}},
        {"terms": {"destination.address": ["path/like"]}},
        {"term": {"destination.ip": "192.168.0.0/16"}},
    ]
    assert exceptions.must_not("rule-b") == [
        {"terms": {"destination.address": ["path/like"]}},
        {"term": {"destination.ip": "192.168.0.0/16"}},
    ]


def test_cidr_on_an_address_field_is_matched_on_its_ip_field(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[exception]]\nrule_id="*"\nfield="source.address"\nvalues=["::1/128"]\n'
    )
    assert ExceptionList(load_file(path)).must_not("x") == [{"term": {"source.ip": "::1/128"}}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[exception]]\nfield="a"\nvalues=["x"]\n', "exception #1: 'rule_id' must be"),
        ('[[exception]]\nrule_id="*"\nvalues=["x"]\n', "exception #1: 'field' must be"),
        ('[[exception]]\nrule_id="*"\nfield="a"\nvalues=[]\n', "'values' must be a non-empty"),
        ('[[exception]]\nrule_id="*"\nfield="a"\nvalues=[{x=1}]\n', "strings, numbers"),
        ('[[exception]]\nrule_id="*"\nfield="a"\nvalues=["10.0.0.0/33"]\n', "not a valid CIDR"),
        (
            '[[exception]]\nrule_id="*"\nfield="a"\nvalues=["x"]\nextra=1\n',
            "unknown key(s) 'extra'",
        ),
        ("exception = 3\n", "must be an array of tables"),
        ("[other]\n", "unknown key 'other'"),
        ("[[exception]\n", "invalid TOML"),
    ],
)
def test_errors_name_the_file_and_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_every_bad_entry_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[exception]]\nfield="a"\nvalues=["x"]\n[[exception]]\nrule_id="*"\nfield="a"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert len(caught.value.problems) == 2
    assert "#2" in caught.value.problems[1]


def test_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        Settings(exceptions_file=tmp_path / "missing.toml")


def test_item_applies_to() -> None:
    item = ExceptionItem("*", "f", ("v",))
    assert item.applies_to("anything")
    assert not ExceptionItem("a", "f", ("v",)).applies_to("b")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("source.address", "10.0.0/8", "'10.0.0/8' looks like a CIDR range but is not a valid one"),
        ("source.address", "300.1.1.1/8", "looks like a CIDR range but is not a valid one"),
        ("source.ip", "AWS Internal", "not an IP address or CIDR range, which the ip field"),
        ("client.ip", "10.0.0", "not an IP address or CIDR range"),
    ],
)
def test_a_value_elasticsearch_would_refuse_is_an_error_at_load(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    path = write(
        tmp_path, f'[[exception]]\nrule_id = "*"\nfield = "{field}"\nvalues = ["{value}"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: exception #1: ")
    assert message in problem


def test_ip_fields_take_addresses_and_ranges(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[exception]]\nrule_id = "*"\nfield = "source.ip"\n'
        'values = ["203.0.113.7", "10.0.0.0/8"]\n',
    )
    [item] = load_file(path)
    assert (item.values, item.networks) == (("203.0.113.7",), ("10.0.0.0/8",))


def test_entries_for_unknown_rules_are_found() -> None:
    exceptions = ExceptionList(
        (
            ExceptionItem("*", "f", ("v",)),
            ExceptionItem("rule-a", "f", ("v",)),
            ExceptionItem("rule-typo", "f", ("v",), origin="file: exception #3"),
        )
    )
    assert [item.origin for item in unknown_rule_ids(exceptions, ["rule-a"])] == [
        "file: exception #3"
    ]


def test_values_an_index_cannot_hold_are_left_out_of_its_clauses() -> None:
    from detector.query.type_groups import Group
    from detector.rules.exceptions import ANY_RULE, ExceptionItem, ExceptionList

    entry = ExceptionItem(
        ANY_RULE, "source.address", ("AWS Internal", "192.0.2.7"), ("10.0.0.0/8",)
    )
    ip_group = Group(("logs-old",), {"source.address": "ip", "source.ip": "ip"})
    exceptions = ExceptionList((entry,))

    assert exceptions.must_not("r", ip_group.holds) == [
        {"terms": {"source.address": ["192.0.2.7"]}},
        {"term": {"source.ip": "10.0.0.0/8"}},
    ]
    assert exceptions.must_not("r")[0] == {
        "terms": {"source.address": ["AWS Internal", "192.0.2.7"]}
    }
    assert exceptions.fields("r") == ("source.address", "source.ip")
