"""Typed reading of a parsed detection-rules TOML document, with located errors.

`TableReader` gives typed access to one TOML table and turns every problem into a `RuleError`
naming the file, the rule, the dotted key and (found cheaply, by searching the file text) the
line. `detector.rules.builder` builds the `Rule` with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from detector.errors import Location, RuleError

T = TypeVar("T")
_MISSING: Any = object()
_KINDS: dict[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "an array",
    dict: "a table",
}
_TYPE_NAMES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
}
_INDEX = re.compile(r"\[\d+\]")


@dataclass
class RuleSource:
    """The file being loaded: its path, its text (to find lines) and its rule id once known."""

    path: Path | None
    text: str = ""
    rule_id: str | None = None
    _lines: dict[str, int | None] = field(default_factory=dict)

    def error(self, key: str | None, message: str, line: int | None = None) -> RuleError:
        """A `RuleError` located at `key` (a dotted path such as `rule.new_terms.value`)."""
        if line is None and key:
            line = self.line_of(key)
        return RuleError(message, Location(self.path, self.rule_id, key, line))

    def line_of(self, key: str) -> int | None:
        """The 1-based line where `key` is set, searched after its table's header."""
        if key not in self._lines:
            self._lines[key] = _find_line(self.text, key)
        return self._lines[key]


def _find_line(text: str, key: str) -> int | None:
    parts = _INDEX.sub("", key).split(".")
    start = 0
    for size in range(len(parts) - 1, 0, -1):
        header = re.escape(".".join(parts[:size]))
        match = re.search(rf"^[ \t]*\[\[?[ \t]*{header}[ \t]*\]\]?", text, re.MULTILINE)
        if match:
            start = match.end()
            break
    leaf = re.escape(parts[-1])
    table = re.escape(".".join(parts))
    pattern = rf"^[ \t]*(?:{leaf}|\"{leaf}\")[ \t]*=|^[ \t]*\[\[?[ \t]*{table}[ \t]*\]"
    match = re.compile(pattern, re.MULTILINE).search(text, start)
    return text.count("\n", 0, match.start()) + 1 if match else None


class TableReader:
    """Typed, located access to one TOML table."""

    def __init__(self, source: RuleSource, table: Mapping[str, Any], prefix: str) -> None:
        self.source = source
        self.table = table
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The dotted path of `name` in this table."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, message: str) -> RuleError:
        """A `RuleError` for `name` in this table."""
        return self.source.error(self.key(name), message)

    def has(self, name: str) -> bool:
        """Whether the table sets `name`."""
        return name in self.table

    def get(self, name: str, kind: type[T], default: T = _MISSING) -> T:
        """The value of `name`, which must be of `kind`; `default` when absent (else required)."""
        if name not in self.table:
            if default is _MISSING:
                raise self.fail(name, "required key is missing")
            return default
        value = self.table[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(name, f"must be {_KINDS[kind]}, got {_describe(value)}")
        return value

    def text(self, name: str, default: str = _MISSING) -> str:
        """A non-empty string."""
        value = self.get(name, str, default)
        if value is not default and not value.strip():
            raise self.fail(name, "must not be empty")
        return value

    def optional_text(self, name: str) -> str | None:
        """A string, or None when absent."""
        return self.get(name, str) if name in self.table else None

    def strings(self, name: str, default: tuple[str, ...] = _MISSING) -> tuple[str, ...]:
        """An array of strings."""
        values = self.get(name, list, _MISSING if default is _MISSING else list(default))
        for number, item in enumerate(values):
            if not isinstance(item, str):
                raise self.fail(f"{name}[{number}]", f"must be a string, got {_describe(item)}")
        return tuple(values)

    def number(self, name: str, default: int = _MISSING, low: int = 0, high: int = 0) -> int:
        """An integer within `low`..`high` (no upper bound when `high` is 0)."""
        value = self.get(name, int, default)
        if value < low or (high and value > high):
            bounds = f"between {low} and {high}" if high else f"at least {low}"
            raise self.fail(name, f"must be {bounds}, got {value}")
        return value

    def sub(self, name: str, required: bool = True) -> TableReader | None:
        """The sub-table `name` (None when absent and not required)."""
        if not required and name not in self.table:
            return None
        return TableReader(self.source, self.get(name, dict), self.key(name))

    def subs(self, name: str) -> list[TableReader]:
        """The array of tables `name` (empty when absent)."""
        readers = []
        for number, item in enumerate(self.get(name, list, [])):
            if not isinstance(item, dict):
                raise self.fail(f"{name}[{number}]", f"must be a table, got {_describe(item)}")
            readers.append(TableReader(self.source, item, self.key(f"{name}[{number}]")))
        return readers


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    shown = repr(value)
    return f"{name} {shown if len(shown) <= 60 else shown[:57] + '...'}"
