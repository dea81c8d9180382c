"""The KQL compiler: a `detector.kql.nodes` tree (or KQL text) to Elasticsearch query DSL.

This follows Kibana's `toElasticsearchQuery` in `@kbn/es-query` (`src/kuery/functions/*.ts`) for
the case this service is in: no data view, so field names are sent as written and field types are
unknown. Kibana wraps every `is` and `range` in a one-clause `bool.should`; that wrapper changes
nothing and is left out here.

    field: value            match           {field: value}
    field: "value"          match_phrase    {field: value}
    field: va*ue            query_string    {fields: [field], query: escaped, analyze_wildcard}
    field: *                exists          {field}
    *: *, empty query       match_all
    value, "value"          multi_match     {query, type: best_fields | phrase, lenient}
    va*ue (free text)       query_string    {query, analyze_wildcard}
    field > value           range           {field: {gt: value}}
    a and b                 bool.filter     [a, b]
    a or b                  bool.should     [a, b], minimum_should_match 1
    not a                   bool.must_not   a
    path: { query }         nested          {path, query, score_mode: none}, inner names `path.x`

Wildcard field names (`user.*: x`), which Kibana resolves against the data view, go to queries
that Elasticsearch expands itself: `multi_match` / `query_string` with `fields: [pattern]`
(`lenient`, so fields of other types are skipped rather than failing), `exists` (whose `field`
accepts a pattern) and, for ranges, `query_string` range syntax (`[5 TO *]`).
"""

from __future__ import annotations

import re
from typing import Any

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
    Term,
    Wildcard,
)
from detector.kql.parser import parse

# Lucene query_string reserved characters (Kibana's escapeQueryString), plus whitespace, which
# would otherwise split one wildcard value into several terms.
_RESERVED = re.compile(r'[+\-=&|><!(){}\[\]^"~*?:\\/\s]')


def to_dsl(query: str) -> dict[str, Any]:
    """Compile KQL into an Elasticsearch query (the value of a search body's `query`)."""
    node = parse(query)
    try:
        return compile_node(node)
    except RecursionError:
        raise QueryError("expected fewer nested groups", query, 0) from None


def compile_node(node: Node, path: str | None = None) -> dict[str, Any]:
    """The query DSL for `node`; `path` is the enclosing nested path, if any."""
    match node:
        case MatchAll():
            return {"match_all": {}}
        case And(children):
            return {"bool": {"filter": [compile_node(child, path) for child in children]}}
        case Or(children):
            clauses = [compile_node(child, path) for child in children]
            return {"bool": {"should": clauses, "minimum_should_match": 1}}
        case Not(child):
            return {"bool": {"must_not": compile_node(child, path)}}
        case Nested(inner, child):
            full = _name(inner, path)
            query = compile_node(child, full)
            return {"nested": {"path": full, "query": query, "score_mode": "none"}}
        case Exists(field):
            return {"exists": {"field": _name(field, path)}}
        case Range():
            return _range(node, path)
        case Is():
            return _is(node, path)


def nested_paths(dsl: Any) -> list[str]:
    """Every `nested` path a compiled query uses, in order, without repeats. A nested query on
    a field that is not `nested` in an index fails every search of it; `detector check` asks
    the indices about these paths."""
    found: list[str] = []
    if isinstance(dsl, dict):
        nested = dsl.get("nested")
        if isinstance(nested, dict) and isinstance(nested.get("path"), str):
            found.append(nested["path"])
        for value in dsl.values():
            found += nested_paths(value)
    elif isinstance(dsl, list):
        for value in dsl:
            found += nested_paths(value)
    return list(dict.fromkeys(found))


def escape_query_string(text: str) -> str:
    """Escape `text` so that Lucene's query_string parser reads it as one literal term."""
    return _RESERVED.sub(lambda match: "\\" + match.group(), text)


def _name(field: Term, path: str | None) -> str:
    return f"{path}.{field.text}" if path else field.text


def _pattern(value: Wildcard) -> str:
    return "*".join(escape_query_string(part) for part in value.parts)


def _is(node: Is, path: str | None) -> dict[str, Any]:
    value = node.value
    if node.field is None:
        if isinstance(value, Wildcard):
            return {"query_string": {"query": _pattern(value), "analyze_wildcard": True}}
        return {"multi_match": _multi_match(value)}
    name = _name(node.field, path)
    if isinstance(value, Wildcard):
        query = {"fields": [name], "query": _pattern(value), "analyze_wildcard": True}
        if isinstance(node.field, Wildcard):
            query["lenient"] = True
        return {"query_string": query}
    if isinstance(node.field, Wildcard):
        return {"multi_match": {**_multi_match(value), "fields": [name]}}
    return {"match_phrase" if value.quoted else "match": {name: _scalar(value)}}


def _multi_match(value: Literal) -> dict[str, Any]:
    kind = "phrase" if value.quoted else "best_fields"
    return {"type": kind, "query": _scalar(value), "lenient": True}


def _scalar(value: Literal) -> str | bool:
    """The JSON value Kibana sends: strings as they are, unquoted true/false as booleans."""
    return value.value if isinstance(value.value, str | bool) else value.text


def _range(node: Range, path: str | None) -> dict[str, Any]:
    name = _name(node.field, path)
    value = node.value.text if isinstance(node.value, Wildcard) else _scalar(node.value)
    if isinstance(node.field, Literal):
        return {"range": {name: {node.op: value}}}
    bound = (
        '"'
        + re.sub(
            r'(["\\])',
            r"\\\1",
            str(value).lower() if value is True or value is False else str(value),
        )
        + '"'
    )
    syntax = {
        "gt": f"{{{bound} TO *]",
        "gte": f"[{bound} TO *]",
        "lt": f"[* TO {bound}}}",
        "lte": f"[* TO {bound}]",
    }[node.op]
    return {"query_string": {"fields": [name], "query": syntax, "lenient": True}}
