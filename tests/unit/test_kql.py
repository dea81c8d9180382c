"""KQL to query DSL: one construct of Kibana's grammar per test, with the DSL it compiles to."""

from __future__ import annotations

from typing import Any

import pytest

from detector.kql import (
    And,
    Exists,
    Is,
    Literal,
    MatchAll,
    Nested,
    Not,
    Or,
    Range,
    Wildcard,
    parse,
    to_dsl,
)


def match(field: str, value: Any) -> dict[str, Any]:
    return {"match": {field: value}}


def phrase(field: str, value: str) -> dict[str, Any]:
    return {"match_phrase": {field: value}}


def wildcard(field: str, query: str) -> dict[str, Any]:
    return {"query_string": {"fields": [field], "query": query, "analyze_wildcard": True}}


def should(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def filter_(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"filter": list(clauses)}}


def must_not(clause: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"must_not": clause}}


# --- field: value -----------------------------------------------------------------------


def test_unquoted_value_compiles_to_match():
    assert to_dsl("event.action: GetObject") == match("event.action", "GetObject")


def test_quoted_value_compiles_to_match_phrase():
    assert to_dsl('event.action: "GetObject"') == phrase("event.action", "GetObject")


def test_whitespace_around_the_colon_is_optional():
    assert to_dsl("a:b") == to_dsl("a : b") == to_dsl("a :b") == match("a", "b")


def test_unquoted_value_keeps_inner_spaces_and_trims_the_ends():
    assert to_dsl("message:  hello big world  ") == match("message", "hello big world")


def test_unquoted_true_and_false_are_booleans():
    assert to_dsl("a: true") == match("a", True)
    assert to_dsl("a: false") == match("a", False)


def test_quoted_true_stays_a_string():
    assert to_dsl('a: "true"') == phrase("a", "true")


def test_unquoted_null_is_sent_as_the_string_null():
    assert parse("a: null") == Is(Literal("a"), Literal(None))
    assert to_dsl("a: null") == match("a", "null")


def test_numbers_stay_strings_as_in_kibana():
    assert to_dsl("source.as.number: 216025") == match("source.as.number", "216025")


def test_quoted_field_name():
    assert to_dsl('"my field": x') == match("my field", "x")


def test_keyword_like_field_names_stay_names():
    assert to_dsl("true: x") == match("true", "x")


def test_keywords_inside_words_are_part_of_the_value():
    assert to_dsl("a: orange and b: android") == filter_(
        match("a", "orange"), match("b", "android")
    )


def test_value_ending_with_a_keyword_without_space_after_it_is_a_value():
    assert to_dsl("a: b or") == match("a", "b or")


# --- escapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "value"),
    [
        (r"a: x\\y", "x\\y"),
        (r"a: \(x\)", "(x)"),
        (r"a: x\:y", "x:y"),
        (r"a: \<x\>", "<x>"),
        (r"a: \"x\"", '"x"'),
        (r"a: \{x\}", "{x}"),
        (r"a: x\*", "x*"),
        (r"a: \or", "or"),
        (r"a: x \and y", "x and y"),
        (r"a: \NOT y", "NOT y"),
        (r"a: x\ty", "x\ty"),
        (r"a: x\ny", "x\ny"),
        (r"a: x\u0041y", "xAy"),
    ],
)
def test_escapes_in_unquoted_values(query: str, value: str):
    assert to_dsl(query) == match("a", value)


def test_backslash_n_is_a_newline_even_before_ot_as_in_kibanas_ordered_grammar():
    assert to_dsl(r"a: \not y") == match("a", "ot y")


def test_escaped_wildcard_is_a_literal_asterisk():
    assert parse(r"a: x\*") == Is(Literal("a"), Literal("x*"))


@pytest.mark.parametrize(
    ("query", "value"),
    [
        (r'a: "say \"hi\""', 'say "hi"'),
        (r'a: "back\\slash"', "back\\slash"),
        (r'a: "tab\tnew\nline"', "tab\tnew\nline"),
        (r'a: "\u0041"', "A"),
        (r'a: "x*y (z) : <w>"', "x*y (z) : <w>"),
        (r'a: "\*"', "\\*"),
        ('a: "x or y and not z"', "x or y and not z"),
    ],
)
def test_escapes_in_quoted_values(query: str, value: str):
    assert to_dsl(query) == phrase("a", value)


def test_quoted_value_may_end_with_an_escaped_backslash():
    assert to_dsl(r'a: "x\\" or b: "\\"') == should(phrase("a", "x\\"), phrase("b", "\\"))


def test_escaped_colon_in_a_wildcard_value():
    assert to_dsl(r"user.id: *\:i-*") == wildcard("user.id", r"*\:i\-*")


# --- wildcards ----------------------------------------------------------------------------


def test_wildcard_value_compiles_to_query_string_on_the_field():
    assert to_dsl("a: AKIA*") == wildcard("a", "AKIA*")


def test_wildcard_value_escapes_query_string_syntax_and_whitespace():
    assert to_dsl("a: *S3 Browser*") == wildcard("a", r"*S3\ Browser*")
    assert to_dsl(r"a: x/y+z=1&2|3!~^?[]\(\)*") == wildcard(
        "a", r"x\/y\+z\=1\&2\|3\!\~\^\?\[\]\(\)*"
    )


def test_wildcard_value_in_the_ast_keeps_the_text_between_wildcards():
    assert parse("a: *x*y") == Is(Literal("a"), Wildcard(("", "x", "y")))


def test_wildcard_inside_quotes_is_literal():
    assert to_dsl('a: "x*"') == phrase("a", "x*")


def test_lone_wildcard_value_is_exists():
    assert parse("source.ip: *") == Exists(Literal("source.ip"))
    assert to_dsl("source.ip: *") == {"exists": {"field": "source.ip"}}


def test_double_wildcard_is_a_pattern_not_exists():
    assert to_dsl("a: **") == wildcard("a", "**")


def test_wildcard_field_and_value_is_match_all():
    assert parse("*: *") == MatchAll()
    assert to_dsl("*: *") == {"match_all": {}}


def test_wildcard_field_name_compiles_to_multi_match_over_the_pattern():
    assert to_dsl("user.*: bob") == {
        "multi_match": {
            "type": "best_fields",
            "query": "bob",
            "lenient": True,
            "fields": ["user.*"],
        }
    }


def test_wildcard_field_name_with_quoted_value_is_a_phrase_multi_match():
    assert to_dsl('user.*: "bob x"') == {
        "multi_match": {"type": "phrase", "query": "bob x", "lenient": True, "fields": ["user.*"]}
    }


def test_wildcard_field_name_with_wildcard_value_is_lenient_query_string():
    assert to_dsl("user.*: b*") == {
        "query_string": {
            "fields": ["user.*"],
            "query": "b*",
            "analyze_wildcard": True,
            "lenient": True,
        }
    }


def test_wildcard_field_name_exists():
    assert to_dsl("user.*: *") == {"exists": {"field": "user.*"}}


# --- free text ------------------------------------------------------------------------------


def test_free_text_compiles_to_lenient_best_fields_multi_match():
    assert to_dsl("GetObject") == {
        "multi_match": {"type": "best_fields", "query": "GetObject", "lenient": True}
    }


def test_quoted_free_text_compiles_to_phrase_multi_match():
    assert to_dsl('"Get Object"') == {
        "multi_match": {"type": "phrase", "query": "Get Object", "lenient": True}
    }


def test_free_text_with_spaces_is_one_value():
    assert parse("hello world") == Is(None, Literal("hello world"))


def test_free_text_wildcard_compiles_to_query_string_without_fields():
    assert to_dsl("Get*") == {"query_string": {"query": "Get*", "analyze_wildcard": True}}


def test_empty_query_matches_everything():
    assert parse("") == MatchAll()
    assert to_dsl("   \n ") == {"match_all": {}}


# --- ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "key"), [("<", "lt"), ("<=", "lte"), (">", "gt"), (">=", "gte")])
def test_range_operators(op: str, key: str):
    assert to_dsl(f"bytes {op} 1000") == {"range": {"bytes": {key: "1000"}}}


def test_range_on_a_date():
    assert to_dsl('@timestamp >= "2024-01-01T00:00:00Z"') == {
        "range": {"@timestamp": {"gte": "2024-01-01T00:00:00Z"}}
    }


def test_range_without_spaces():
    assert parse("a<=5") == Range(Literal("a"), "lte", Literal("5"))


def test_range_on_a_wildcard_field_uses_query_string_range_syntax():
    assert to_dsl("n* > 5") == {
        "query_string": {"fields": ["n*"], "query": '{"5" TO *]', "lenient": True}
    }
    assert to_dsl('n* <= "x\\"y"') == {
        "query_string": {"fields": ["n*"], "query": '[* TO "x\\"y"]', "lenient": True}
    }


# --- boolean operators ------------------------------------------------------------------------


def test_and_compiles_to_bool_filter():
    assert to_dsl("a: 1 and b: 2") == filter_(match("a", "1"), match("b", "2"))


def test_or_compiles_to_bool_should_with_minimum_one():
    assert to_dsl("a: 1 or b: 2") == should(match("a", "1"), match("b", "2"))


def test_not_compiles_to_bool_must_not():
    assert to_dsl("not a: 1") == must_not(match("a", "1"))


def test_keywords_are_case_insensitive():
    assert parse("a: 1 AND b: 2 Or NoT c: 3") == parse("a: 1 and b: 2 or not c: 3")


def test_and_binds_tighter_than_or():
    assert parse("a: 1 or b: 2 and c: 3") == Or(
        (
            Is(Literal("a"), Literal("1")),
            And((Is(Literal("b"), Literal("2")), Is(Literal("c"), Literal("3")))),
        )
    )


def test_not_binds_tighter_than_and():
    assert parse("not a: 1 and b: 2") == And(
        (Not(Is(Literal("a"), Literal("1"))), Is(Literal("b"), Literal("2")))
    )


def test_chains_of_the_same_operator_are_flat():
    assert to_dsl("a: 1 and b: 2 and c: 3") == filter_(
        match("a", "1"), match("b", "2"), match("c", "3")
    )


def test_parentheses_group():
    assert to_dsl("(a: 1 or b: 2) and c: 3") == filter_(
        should(match("a", "1"), match("b", "2")), match("c", "3")
    )


def test_not_applies_to_a_group():
    assert to_dsl("not (a: 1 or b: 2)") == must_not(should(match("a", "1"), match("b", "2")))


def test_operators_may_span_lines():
    assert to_dsl("a: 1\n    and\tb: 2") == filter_(match("a", "1"), match("b", "2"))


def test_space_inside_parentheses_is_allowed():
    assert to_dsl("( a: 1 )") == match("a", "1")


# --- value lists ------------------------------------------------------------------------------


def test_value_list_with_or():
    assert to_dsl('a: (x or "y")') == should(match("a", "x"), phrase("a", "y"))


def test_value_list_with_and_and_not():
    assert to_dsl("a: (* and not (x* or y))") == filter_(
        {"exists": {"field": "a"}}, must_not(should(wildcard("a", "x*"), match("a", "y")))
    )


def test_value_list_and_binds_tighter_than_or():
    assert parse("a: (x or y and z)") == Or(
        (
            Is(Literal("a"), Literal("x")),
            And((Is(Literal("a"), Literal("y")), Is(Literal("a"), Literal("z")))),
        )
    )


def test_value_list_with_one_value():
    assert to_dsl('a: ("x")') == phrase("a", "x")


def test_value_list_over_several_lines():
    assert to_dsl('a: (\n  "x" or\n  "y"\n)') == should(phrase("a", "x"), phrase("a", "y"))


# --- nested -----------------------------------------------------------------------------------


def test_nested_query_prefixes_inner_fields_with_the_path():
    assert to_dsl("user: { first: alice and last: * }") == {
        "nested": {
            "path": "user",
            "query": filter_(match("user.first", "alice"), {"exists": {"field": "user.last"}}),
            "score_mode": "none",
        }
    }


def test_nested_inside_nested_uses_the_full_path():
    node = parse("a: { b: { c: 1 } }")
    assert node == Nested(Literal("a"), Nested(Literal("b"), Is(Literal("c"), Literal("1"))))
    inner = to_dsl("a: { b: { c: 1 } }")["nested"]["query"]
    assert inner == {"nested": {"path": "a.b", "query": match("a.b.c", "1"), "score_mode": "none"}}


def test_nested_range_and_value_list():
    assert to_dsl("p: { n > 2 and k: (x or y) }")["nested"]["query"] == filter_(
        {"range": {"p.n": {"gt": "2"}}}, should(match("p.k", "x"), match("p.k", "y"))
    )


def test_nested_paths_of_a_query_are_listed_once_each() -> None:
    from detector.kql import nested_paths

    dsl = to_dsl("a: { b: 1 } and c: { d: { e: 2 } } or a: { f: 3 }")
    assert nested_paths(dsl) == ["a", "c", "c.d"]
    assert nested_paths(to_dsl("x: 1")) == []
