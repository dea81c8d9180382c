"""An in-Python evaluator of KQL over documents, the oracle for the property-based tests.

It decides from the KQL tree alone (`detector.kql.parse`), never from the compiled DSL, whether a
document matches, with the meaning KQL has on `keyword` fields: exact, case-sensitive values; a
wildcard `*` matches any run of characters; a field matches when any of its values does; a
missing field (or an empty list) has no value; `not` matches whatever its operand does not.
Free text looks at every field; a wildcard field name looks at every field it matches; a nested
query matches when one object under the path matches on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from detector.kql import (
    And,
    Exists,
    Is,
    MatchAll,
    Nested,
    Node,
    Not,
    Or,
    Range,
    Term,
    Wildcard,
    parse,
)

Document = Mapping[str, Any]


def matches(query: str | Node, doc: Document) -> bool:
    """Whether `doc` (field name -> value or list of values) is selected by the KQL `query`."""
    node = parse(query) if isinstance(query, str) else query
    return _eval(node, doc)


def _eval(node: Node, doc: Document) -> bool:
    match node:
        case MatchAll():
            return True
        case And(children):
            return all(_eval(child, doc) for child in children)
        case Or(children):
            return any(_eval(child, doc) for child in children)
        case Not(child):
            return not _eval(child, doc)
        case Exists(field):
            return any(True for _ in _values(doc, field))
        case Is(field, value):
            return any(_equals(value, seen) for seen in _values(doc, field))
        case Range(field, op, value):
            return any(_compare(op, seen, _text(value)) for seen in _values(doc, field))
        case Nested(path, child):
            objects = _as_list(doc.get(_text(path)))
            return any(isinstance(obj, Mapping) and _eval(child, obj) for obj in objects)
    raise TypeError(f"not a KQL node: {node!r}")


def _values(doc: Document, field: Term | None) -> list[str]:
    """Every value of the fields that `field` names (every field for free text)."""
    names = [name for name in doc if field is None or _name_matches(field, name)]
    return [str(value) for name in names for value in _as_list(doc[name]) if value is not None]


def _name_matches(field: Term, name: str) -> bool:
    if isinstance(field, Wildcard):
        return _regex(field).fullmatch(name) is not None
    return _text(field) == name


def _equals(value: Term, seen: str) -> bool:
    if isinstance(value, Wildcard):
        return _regex(value).fullmatch(seen) is not None
    return _text(value) == seen


def _regex(pattern: Wildcard) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.parts), re.DOTALL)


def _text(term: Term) -> str:
    if isinstance(term, Wildcard):
        return "*".join(term.parts)
    value = term.value
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else value


def _compare(op: str, seen: str, bound: str) -> bool:
    return {
        "lt": seen < bound,
        "lte": seen <= bound,
        "gt": seen > bound,
        "gte": seen >= bound,
    }[op]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
