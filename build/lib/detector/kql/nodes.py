"""The KQL syntax tree: the node types `detector.kql.parser.parse` builds, as Kibana does.

A value list such as `field: (a or not b)` becomes `Or(Is(field, a), Not(Is(field, b)))`,
`field: *` becomes `Exists(field)` and `*: *` (or an empty query) becomes `MatchAll()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as Lit
from typing import TypeAlias

RangeOp: TypeAlias = Lit["gt", "gte", "lt", "lte"]


@dataclass(frozen=True)
class Literal:
    """A value without wildcards; unquoted `true`, `false` and `null` become True, False, None."""

    value: str | bool | None
    quoted: bool = False

    @property
    def text(self) -> str:
        """The value as Elasticsearch receives it in a field name or query string."""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return "null" if self.value is None else self.value


@dataclass(frozen=True)
class Wildcard:
    """An unquoted value with `*` wildcards: the literal text between them (at least two parts)."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        """The pattern with each wildcard written as `*` (escaped `\\*` is not told apart)."""
        return "*".join(self.parts)

    @property
    def is_lone(self) -> bool:
        """Whether this is `*` alone (Kibana's `isLoneWildcard`)."""
        return self.parts == ("", "")


Term: TypeAlias = Literal | Wildcard


@dataclass(frozen=True)
class Is:
    """`field: value`, or free text (`value` alone) when `field` is None."""

    field: Term | None
    value: Term


@dataclass(frozen=True)
class Range:
    """`field < value`, `field <= value`, `field > value`, `field >= value`."""

    field: Term
    op: RangeOp
    value: Term


@dataclass(frozen=True)
class Exists:
    """`field: *`: the field has a value."""

    field: Term


@dataclass(frozen=True)
class MatchAll:
    """`*: *` or an empty query: every document."""


@dataclass(frozen=True)
class And:
    """`a and b and ...` (two or more children)."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """`a or b or ...` (two or more children)."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """`not a`."""

    child: Node


@dataclass(frozen=True)
class Nested:
    """`path: { query }`: `query` runs on the nested objects under `path`."""

    path: Term
    child: Node


Node: TypeAlias = Is | Range | Exists | MatchAll | And | Or | Not | Nested
