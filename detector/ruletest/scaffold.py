"""A starting fixture for a rule that has none: one alerting and one silent case. Pure.

The events are built from the rule's KQL: a backtracking search over its syntax tree finds a
value for each field such that the whole query matches (a field only ever negated is left out:
KQL's `not f: v` matches a document without `f`), and every new-terms field gets a value. The
alerting case has that document once in the window; the silent case has it too, and the same
term inside the history window before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from detector import datemath
from detector.errors import FixtureError, Location
from detector.kql import And, Exists, Is, Literal, MatchAll, Nested, Node, Not, Or, Range, Wildcard
from detector.kql import parse as parse_kql
from detector.rules import Rule

# A value that stands for "no value": the field is left out of the document.
ABSENT: Any = object()
# What an unconstrained field of each mapping type gets (documentation ranges: RFC 5737, 5398).
_DEFAULTS: dict[str, Any] = {
    "ip": "198.51.100.7",
    "long": 64500,
    "integer": 64500,
    "boolean": True,
    "date": "2024-01-01T00:00:00Z",
}
_FILLER = "example"
_NUMERIC = ("long", "integer", "short", "byte", "double", "float")

Goal = tuple[Node, bool]  # a node, and whether the document must match it


@dataclass(frozen=True)
class _Field:
    """What the query asks of one field: atoms it must match, and atoms it must not."""

    must: tuple[Node, ...] = ()
    must_not: tuple[Node, ...] = ()


@dataclass
class _Search:
    types: Callable[[str], str]
    fields: dict[str, _Field] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


def satisfying_document(rule: Rule, types: Callable[[str], str]) -> dict[str, Any]:
    """Flat `{field: value}` of a document that matches the rule's query and has every
    new-terms field; `FixtureError` when the search finds none (or meets an unsupported node)."""
    goals: list[Goal] = [(parse_kql(rule.query), True)]
    goals += [(Exists(Literal(name)), True) for name in rule.new_terms_fields]
    found = _solve(goals, _Search(types))
    if found is None:
        raise FixtureError("no document satisfies the query", Location(rule.source, rule.rule_id))
    return {name: value for name, value in found.values.items() if value is not ABSENT}


def scaffold(rule: Rule, types: Callable[[str], str], now: datetime | None = None) -> str:
    """The text of `X.tests.toml` for `rule`: an alerting and a silent case."""
    doc = satisfying_document(rule, types)
    term = [doc[name] for name in rule.new_terms_fields]
    window, history = _offsets(rule, now or datetime.now(UTC))
    written = _value(term[0]) if len(term) == 1 else _value(term)
    lines = [
        f"# Cases for {rule.source.name if rule.source else 'the rule'} ({rule.name}),",
        "# written by `detector rules test --scaffold` as a starting point. Each case runs the",
        "# rule at `at` on its events only (throw-away indices); times are relative to `at`.",
        "",
        "[defaults]",
        *(f"{_key(name)} = {_value(value)}" for name, value in doc.items()),
        "",
        "[[case]]",
        'name = "a term first seen in the window alerts"',
        'at = "now"',
        f"alert = [{written}]",
        "",
        "[[case.events]]",
        f'time = "{window}"',
        "",
        "[[case]]",
        'name = "the same term seen inside the history window stays silent"',
        'at = "now"',
        f"silent = [{written}]",
        "",
        "[[case.events]]",
        f'time = "{history}"',
        "",
        "[[case.events]]",
        f'time = "{window}"',
    ]
    return "\n".join(lines) + "\n"


def mapping_types(mappings: Mapping[str, Any]) -> Callable[[str], str]:
    """A field's type in an index mapping (`keyword` for what it leaves to dynamic mapping,
    as the strings of ECS indices are; `keyword` under a `flattened` field)."""
    flat: dict[str, str] = {}

    def walk(properties: Mapping[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            else:
                flat[f"{prefix}{name}"] = spec.get("type", "object")

    walk(mappings.get("properties", {}), "")

    def type_of(name: str) -> str:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            found = flat.get(".".join(parts[:end]))
            if found is not None:
                return found if end == len(parts) else "keyword"
        return "keyword"

    return type_of


def _offsets(rule: Rule, now: datetime) -> tuple[str, str]:
    """An offset inside the window (within its last minute) and one halfway into the history."""
    start = datemath.parse(rule.from_, now)
    window_seconds = max(1, min(60, int((now - start).total_seconds()) // 2))
    history = start - datemath.parse(rule.history_window_start, now)
    halfway = (now - start) + history / 2
    unit = timedelta(hours=1) if halfway >= timedelta(hours=2) else timedelta(seconds=1)
    halfway = halfway // unit * unit
    return _offset(timedelta(seconds=window_seconds)), _offset(halfway)


def _offset(span: timedelta) -> str:
    """`-90s`, `-2m` or `-84h`: the largest whole unit."""
    seconds = int(span.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"-{seconds // size}{unit}"
    return f"-{seconds}s"


def _solve(goals: list[Goal], search: _Search) -> _Search | None:
    """Backtracking: the first assignment of field values under which every goal holds."""
    if not goals:
        return search
    (node, positive), rest = goals[0], goals[1:]
    if isinstance(node, Not):
        return _solve([(node.child, not positive), *rest], search)
    if isinstance(node, MatchAll):
        return _solve(rest, search) if positive else None
    conjunction = isinstance(node, And) == positive
    if isinstance(node, And | Or) and conjunction:
        return _solve([(child, positive) for child in node.children] + rest, search)
    if isinstance(node, And | Or):
        for child in node.children:
            found = _solve([(child, positive), *rest], search)
            if found is not None:
                return found
        return None
    if isinstance(node, Nested):
        raise FixtureError("nested queries (`path: { ... }`) cannot be scaffolded")
    narrowed = _narrow(search, node, positive)
    return None if narrowed is None else _solve(rest, narrowed)


def _narrow(search: _Search, atom: Node, positive: bool) -> _Search | None:
    """`search` with the atom added to its field's constraints; None when no value fits."""
    name = _field_name(atom)
    before = search.fields.get(name, _Field())
    after = (
        _Field((*before.must, atom), before.must_not)
        if positive
        else _Field(before.must, (*before.must_not, atom))
    )
    value = _realize(after, search.types(name), name)
    if value is None:
        return None
    return _Search(search.types, {**search.fields, name: after}, {**search.values, name: value})


def _field_name(atom: Node) -> str:
    target = atom.field if isinstance(atom, Is | Range | Exists) else None
    if not isinstance(target, Literal) or not isinstance(target.value, str):
        raise FixtureError("free text and wildcard field names cannot be scaffolded")
    return target.value


def _realize(constraints: _Field, kind: str, name: str) -> Any:
    """A value satisfying every constraint, ABSENT if none is needed, None if none fits."""
    if not constraints.must:
        return ABSENT
    for candidate in _candidates(constraints, kind, name):
        if all(_matches(atom, candidate, kind) for atom in constraints.must) and not any(
            _matches(atom, candidate, kind) for atom in constraints.must_not
        ):
            return candidate
    return None


def _candidates(constraints: _Field, kind: str, name: str) -> list[Any]:
    literals = [
        _typed(atom.value, kind)
        for atom in constraints.must
        if isinstance(atom, Is) and isinstance(atom.value, Literal)
    ]
    patterns = [
        atom.value
        for atom in constraints.must
        if isinstance(atom, Is) and isinstance(atom.value, Wildcard) and not atom.value.is_lone
    ]
    shapes = [_FILLER.join(pattern.parts) for pattern in patterns]
    combined = ["".join(shapes)] if len(shapes) > 1 else []
    ranges = [_from_range(atom, kind) for atom in constraints.must if isinstance(atom, Range)]
    default = _DEFAULTS.get(kind, _keyword_default(name))
    spares = [f"{default}-{n}" for n in range(2, 4)] if kind not in _DEFAULTS else []
    return [*literals, *shapes, *combined, *ranges, default, *spares]


def _keyword_default(name: str) -> str:
    """A readable value for a keyword field: an address for `*.address`, else its name."""
    if name.endswith(".address"):
        return str(_DEFAULTS["ip"])
    return f"{_FILLER}-{name.rsplit('.', 1)[-1].replace('_', '-').lower()}"


def _typed(value: Wildcard | Literal | Any, kind: str) -> Any:
    """A KQL literal as the document holds it for a field of this mapping type."""
    raw = value.value if isinstance(value, Literal) else value
    if kind in _NUMERIC and isinstance(raw, str) and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if kind == "boolean" and isinstance(raw, str) and raw in ("true", "false"):
        return raw == "true"
    if isinstance(raw, bool) and kind != "boolean":
        return "true" if raw else "false"
    return raw


def _from_range(atom: Range, kind: str) -> Any:
    bound = _typed(atom.value, kind)
    if not isinstance(bound, int):
        return bound
    return bound + {"gt": 1, "gte": 0, "lt": -1, "lte": 0}[atom.op]


def _matches(atom: Node, value: Any, kind: str) -> bool:
    """Whether a document whose field holds `value` matches the atom (Elasticsearch's
    semantics for keyword, numeric, ip and boolean fields)."""
    if isinstance(atom, Exists) or (
        isinstance(atom, Is) and isinstance(atom.value, Wildcard) and atom.value.is_lone
    ):
        return True
    if isinstance(atom, Is) and isinstance(atom.value, Wildcard):
        pattern = ".*".join(re.escape(part) for part in atom.value.parts)
        return re.fullmatch(pattern, str(value), re.DOTALL) is not None
    if isinstance(atom, Is) and isinstance(atom.value, Literal):
        return _same(_typed(atom.value, kind), value)
    if isinstance(atom, Range):
        bound = _typed(atom.value, kind)
        try:
            return bool(_COMPARE[atom.op](value, bound))
        except TypeError:
            return False
    return False


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _same(expected: Any, value: Any) -> bool:
    return (
        str(expected).lower() == str(value).lower()
        if isinstance(value, bool)
        else (expected == value or str(expected) == str(value))
    )


def _key(name: str) -> str:
    return json.dumps(name)


def _value(value: Any) -> str:
    """A TOML value (strings as basic strings: JSON's escapes are TOML's)."""
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)
