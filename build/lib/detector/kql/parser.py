"""The KQL parser: query text to a `detector.kql.nodes` tree, with located syntax errors.

`parse(query)` follows Kibana's grammar (`@kbn/es-query`, `src/kuery/grammar/grammar.peggy`),
transcribed to `kql.lark`, and returns the same tree Kibana builds: a value list such as
`field: (a or not b)` becomes `Or(Is(field, a), Not(Is(field, b)))`, `field: *` becomes
`Exists(field)` and `*: *` (or an empty query) becomes `MatchAll()`. Every syntax problem raises
`QueryError` with the 0-based position and what was expected there; no other exception escapes
for any input text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import lark

from detector.errors import QueryError
from detector.kql.nodes import (
    And,
    Exists,
    Is,
    Literal,
    MatchAll,
    Nested,
    Node,
    Not,
    Or,
    Range,
    RangeOp,
    Term,
    Wildcard,
)

# Kibana's Space rule, and the characters JavaScript's String.prototype.trim() removes.
_SPACE = " \t\r\n\u00a0"
_JS_TRIM = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # noqa: E501
_ESCAPES = {"t": "\t", "r": "\r", "n": "\n"}
# One unquoted character per match, in the grammar's order of alternatives.
_UNQUOTED_CHAR = re.compile(
    r'\\([trn])|\\([\\():<>"*{}])|\\u([0-9a-fA-F]{4})|\\((?i:or|and|not))|(\*)|(.)', re.DOTALL
)
_QUOTED_CHAR = re.compile(r'\\([trn])|\\u([0-9a-fA-F]{4})|\\([\\"])|(.)', re.DOTALL)
_RANGE_OPS: dict[str, RangeOp] = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def parse(query: str) -> Node:
    """Parse KQL into a `Node`; raise `QueryError` (with position) if it is not valid KQL."""
    if not isinstance(query, str):
        raise QueryError(f"expected the query as a string, got {type(query).__name__}", "", 0)
    start = len(query) - len(query.lstrip(_SPACE))
    try:
        return _build(_parser().parse(query.strip(_SPACE)))
    except lark.exceptions.UnexpectedInput as error:
        raise _query_error(error, query, start) from None
    except RecursionError:
        raise QueryError("expected fewer nested groups", query, start) from None


@cache
def _parser() -> lark.Lark:
    grammar = resources.files("detector.kql").joinpath("kql.lark").read_text(encoding="utf-8")
    # `cache=True`: lark keeps the built LALR tables in the temp directory, keyed by a hash of
    # the grammar, the options and lark's version, so later processes skip the table build
    # (most of `rules check`'s start-up); a cache it cannot write is only logged by lark.
    return lark.Lark(
        grammar, parser="lalr", lexer="contextual", maybe_placeholders=False, cache=True
    )


# --- tree to AST -------------------------------------------------------------------------


def _build(tree: lark.Tree[lark.Token]) -> Node:
    if not tree.children:
        return MatchAll()
    return _node(tree.children[0], None)


def _node(item: lark.Tree[lark.Token] | lark.Token, field: Term | None) -> Node:
    """One subtree; `field` is set inside a value list (`field: (a or b)`)."""
    assert isinstance(item, lark.Tree)
    kind, kids = item.data, item.children
    if kind == "or_":
        return Or(tuple(_node(kid, field) for kid in kids))
    if kind == "and_":
        return And(tuple(_node(kid, field) for kid in kids))
    if kind == "not_":
        return Not(_node(kids[0], field))
    if kind == "nested":
        return Nested(_field(kids[0]), _node(kids[1], None))
    if kind == "range":
        op = _RANGE_OPS[str(kids[1]).strip(_SPACE)]
        return Range(_field(kids[0]), op, _value(kids[2]))
    if kind == "field_value":
        return _node(kids[1], _field(kids[0]))
    if kind == "free_text":
        return _is(None, _value(kids[0]))
    return _is(field, _value(item))  # a `literal` inside a value list


def _is(field: Term | None, value: Term) -> Node:
    """Kibana's `is` function: a lone `*` value means exists (or match-all on `*: *`)."""
    if isinstance(value, Wildcard) and value.is_lone and field is not None:
        if isinstance(field, Wildcard) and field.is_lone:
            return MatchAll()
        return Exists(field)
    return Is(field, value)


def _field(item: lark.Tree[lark.Token] | lark.Token) -> Term:
    """A field name: like a value, but `true`, `false` and `null` stay names."""
    assert isinstance(item, lark.Tree)
    term = _value(item.children[0])
    if isinstance(term, Literal) and not isinstance(term.value, str):
        return Literal(term.text, term.quoted)
    return term


def _value(item: lark.Tree[lark.Token] | lark.Token) -> Term:
    assert isinstance(item, lark.Tree)
    token = item.children[0]
    assert isinstance(token, lark.Token)
    if token.type == "QUOTED":
        return Literal(_unquote(str(token)[1:-1]), quoted=True)
    return _unquoted(str(token))


def _unquote(text: str) -> str:
    chars: list[str] = []
    for match in _QUOTED_CHAR.finditer(text):
        escape, code, escaped, char = match.groups()
        if escape:
            chars.append(_ESCAPES[escape])
        elif code:
            chars.append(chr(int(code, 16)))
        else:
            chars.append(escaped or char)
    return "".join(chars)


def _unquoted(text: str) -> Term:
    """Decode an unquoted literal: escapes resolved, wildcards split out, ends trimmed."""
    parts: list[list[str]] = [[]]
    for match in _UNQUOTED_CHAR.finditer(text):
        escape, special, code, keyword, star, char = match.groups()
        if star:
            parts.append([])
        elif escape:
            parts[-1].append(_ESCAPES[escape])
        elif code:
            parts[-1].append(chr(int(code, 16)))
        else:
            parts[-1].append(special or keyword or char)
    strings = ["".join(part) for part in parts]
    strings[0] = strings[0].lstrip(_JS_TRIM)
    strings[-1] = strings[-1].rstrip(_JS_TRIM)
    if len(strings) > 1:
        return Wildcard(tuple(strings))
    keywords: dict[str, bool | None] = {"true": True, "false": False, "null": None}
    value = strings[0]
    return Literal(keywords[value]) if value in keywords else Literal(value)


# --- errors ------------------------------------------------------------------------------

_NAMES = {
    "_OR": "OR",
    "_AND": "AND",
    "_NOT": "NOT",
    "_LPAR": '"("',
    "_RPAR": '")"',
    "_LBRACE": '"{"',
    "_RBRACE": '"}"',
    "_COLON": '":"',
    "RANGE_OP": "a range operator (<, <=, >, >=)",
    "QUOTED": "a field name or value",
    "UNQUOTED": "a field name or value",
    "$END": "the end of the query",
}
_ORDER = list(_NAMES)


def _query_error(error: lark.exceptions.UnexpectedInput, query: str, offset: int) -> QueryError:
    """Translate a lark error into a `QueryError` at a position in the original query."""
    if isinstance(error, lark.exceptions.UnexpectedToken):
        expected = set(error.accepts or error.expected)
        start = error.token.start_pos if error.token.type != "$END" else None
        position = None if start is None else offset + start
    elif isinstance(error, lark.exceptions.UnexpectedCharacters):
        expected = set(error.allowed or ())
        position = offset + (error.pos_in_stream or 0)
    else:
        expected = set(getattr(error, "expected", ()) or ())
        position = None
    if position is None or position >= len(query.rstrip(_SPACE)):
        position = len(query.rstrip(_SPACE))
        found = "the end of the query"
    else:
        while position < len(query) - 1 and query[position] in _SPACE:
            position += 1
        found = repr(query[position])
        if query[position] == '"' and "QUOTED" in expected:
            return QueryError("expected a closing '\"' for this quoted string", query, position)
    names = list(dict.fromkeys(_NAMES[name] for name in _ORDER if name in expected))
    names = names or ["valid KQL"]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return QueryError(f"expected {listed} but found {found}", query, position)
