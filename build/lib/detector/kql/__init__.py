"""KQL (Kibana Query Language): a parser to a small typed AST and a compiler to query DSL.

`parse(query)` (`detector.kql.parser`, grammar in `kql.lark`) returns the same tree Kibana builds,
made of the node types in `detector.kql.nodes`. `to_dsl(query)` (`detector.kql.dsl`) compiles
that tree the way Kibana's `toElasticsearchQuery` does without an index pattern. Every syntax
problem raises `QueryError` with the 0-based position and what was expected there; no other
exception escapes for any input text.

Dependencies run one way: nodes <- parser <- dsl.
"""

from __future__ import annotations

from detector.kql.dsl import nested_paths, to_dsl
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
from detector.kql.parser import parse

__all__ = [
    "And",
    "Exists",
    "Is",
    "Literal",
    "MatchAll",
    "Nested",
    "Node",
    "Not",
    "Or",
    "Range",
    "RangeOp",
    "Term",
    "Wildcard",
    "nested_paths",
    "parse",
    "to_dsl",
]
