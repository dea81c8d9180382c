"""KQL syntax errors: a QueryError naming what was expected and where; never a crash."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.errors import QueryError
from detector.kql import parse, to_dsl
from tests.support.reference import REFERENCE

RULES = REFERENCE / "rules" / "elastic-new-terms-aws"


def error_for(query: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse(query)
    return caught.value


@pytest.mark.parametrize(
    ("query", "position", "expected"),
    [
        ("a:", 2, '"("'),
        ("a: (b", 5, '")"'),
        ("a: b)", 4, "the end of the query"),
        ("(a: b", 5, '")"'),
        ('a: "b" and', 7, "OR"),
        ("a: b and (", 10, "a field name or value"),
        ("not not a", 4, "a field name or value"),
        ("a: b c: d", 6, "the end of the query"),
        ("a < ", 3, "a field name or value"),
        ("a: { b: c", 9, '"}"'),
        ("a: x\\y", 4, "OR"),
    ],
)
def test_error_position_and_expectation(query: str, position: int, expected: str):
    error = error_for(query)
    assert error.position == position
    assert expected in error.message
    assert f"at position {position}" in str(error)


def test_error_shows_a_caret_under_the_position():
    error = error_for("a: (b")
    assert error.caret() == "a: (b\n     ^"


def test_unterminated_quote_points_at_the_opening_quote():
    error = error_for('a: "b')
    assert (error.position, error.query) == (3, 'a: "b')
    assert "closing" in error.message


def test_error_position_counts_leading_whitespace():
    assert error_for("   a: (b").position == 8


def test_error_position_on_a_later_line():
    error = error_for('a: "x"\n  and b: (c\n')
    assert error.position == len('a: "x"\n  and b: (c')
    assert error.caret() == "  and b: (c\n           ^"


def test_found_text_is_named():
    assert "found ':'" in error_for("a: b c: d").message
    assert "found the end of the query" in error_for("a: (").message


def test_trailing_keywords_without_a_space_after_them_are_values_as_in_kibana():
    assert to_dsl("a: b and") == {"match": {"a": "b and"}}
    assert to_dsl("a: 1 and not")["bool"]["filter"][1]["multi_match"]["query"] == "not"


def test_not_without_parentheses_inside_a_field_value_is_an_error_as_in_kibana():
    assert error_for("a: not b").position == 3


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(QueryError, match="nested"):
        to_dsl("not (" * 3000 + "a" + ")" * 3000)


def test_redundant_parentheses_do_not_count_as_nesting():
    assert to_dsl("(" * 3000 + "a: b" + ")" * 3000) == {"match": {"a": "b"}}


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_gives_a_query_or_a_query_error(text: str):
    try:
        assert isinstance(to_dsl(text), dict)
    except QueryError as error:
        assert 0 <= error.position <= len(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([*'ab: *()"\\{}<>=\n', " or ", " and ", "not "])).map("".join))
def test_any_text_of_kql_pieces_gives_a_query_or_a_query_error(text: str):
    try:
        assert isinstance(to_dsl(text), dict)
    except QueryError as error:
        assert 0 <= error.position <= len(text)
        error.caret()


# --- Elastic's rules ----------------------------------------------------------------------------


def rule_queries() -> list[tuple[str, str]]:
    files = sorted(RULES.glob("*.toml"))
    return [(path.stem, tomllib.loads(path.read_text())["rule"]["query"]) for path in files]


@pytest.mark.reference_data
def test_all_49_rules_are_there():
    assert len(rule_queries()) == 49


@pytest.mark.reference_data
@pytest.mark.parametrize(
    ("name", "query"), rule_queries(), ids=[name for name, _ in rule_queries()]
)
def test_every_elastic_rule_query_compiles(name: str, query: str):
    assert to_dsl(query)["bool"]["filter"]


def test_rule_value_list_with_not_compiles_like_kibana():
    query = 'source.as.organization.name: (* and not (AMAZ* or "Google LLC"))'
    assert to_dsl(query) == {
        "bool": {
            "filter": [
                {"exists": {"field": "source.as.organization.name"}},
                {
                    "bool": {
                        "must_not": {
                            "bool": {
                                "should": [
                                    {
                                        "query_string": {
                                            "fields": ["source.as.organization.name"],
                                            "query": "AMAZ*",
                                            "analyze_wildcard": True,
                                        }
                                    },
                                    {"match_phrase": {"source.as.organization.name": "Google LLC"}},
                                ],
                                "minimum_should_match": 1,
                            }
                        }
                    }
                },
            ]
        }
    }
