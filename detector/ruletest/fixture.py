"""A rule's test fixture (`X.tests.toml` beside `X.toml`): its cases, parsed and checked. Pure.

One file holds `[[case]]` tables, each with the execution time `at` (absolute, or relative to
the wall clock such as `now` or `now-1h`), its events (`[[case.events]]`: ECS fields as dotted
keys or tables, `time` relative to `at` such as `-3d`, optionally `index`: one of the rule's
index patterns), the terms expected to alert (`alert`) and to stay silent (`silent`), and
optionally `exceptions`, `max_signals`, `baseline` and `runs` (several execution times, each
with its own expectations if wanted). A top-level `[defaults]` table holds fields every event
of the file has unless it sets them itself. Every problem is a `FixtureError` naming the file,
the case and the line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from detector import datemath
from detector.errors import DateMathError, FixtureError, Location
from detector.query.baseline import MODES
from detector.rules.exceptions import ANY_RULE, ExceptionItem
from detector.times import iso

Value = str | int | float | bool
Term = tuple[Value, ...]
SUFFIX = ".tests.toml"
# Keys of an event that are not ECS fields.
TIME, INGESTED, INDEX = "time", "ingested", "index"
_CASE_KEYS = {
    "name",
    "at",
    "alert",
    "silent",
    "runs",
    "events",
    "exceptions",
    "max_signals",
    "baseline",
}
_RUN_KEYS = {"at", "alert", "silent"}
_CASE_HEADER = re.compile(r"^\s*\[\[\s*case\s*\]\]")
_EVENT_HEADER = re.compile(r"^\s*\[\[\s*case\.events\s*\]\]")


@dataclass(frozen=True)
class Event:
    """One document of a case: its ECS fields (nested, times resolved) and where it lands."""

    doc: dict[str, Any]
    index: str | None = None  # one of the rule's index patterns; None: the first
    line: int | None = None
    time: str = ""  # as written, for reports


@dataclass(frozen=True)
class Run:
    """One execution of a case, and what it must alert (None: no expectation of its own)."""

    at: datetime
    alert: tuple[Term, ...] | None = None
    silent: tuple[Term, ...] | None = None


@dataclass(frozen=True)
class Case:
    """One case: events, executions and the terms expected to alert and to stay silent."""

    name: str
    at: datetime
    events: tuple[Event, ...]
    runs: tuple[Run, ...]
    alert: tuple[Term, ...] = ()  # over all runs: exactly these alert
    silent: tuple[Term, ...] = ()  # over all runs: none of these alerts
    exceptions: tuple[ExceptionItem, ...] = ()
    max_signals: int | None = None
    baseline: str | None = None
    line: int | None = None

    @property
    def alerting(self) -> bool:
        """Whether the case expects a term to alert (in all runs or in one)."""
        return bool(self.alert) or any(run.alert for run in self.runs)

    @property
    def silencing(self) -> bool:
        """Whether the case expects a term to stay silent (in all runs or in one)."""
        return bool(self.silent) or any(run.silent for run in self.runs)


@dataclass(frozen=True)
class Fixture:
    """The cases of one rule file."""

    path: Path
    cases: tuple[Case, ...] = field(default=())

    @property
    def rule_path(self) -> Path:
        """The rule file these cases test (`X.toml` beside `X.tests.toml`)."""
        return rule_path_of(self.path)


def fixture_path(rule_path: Path) -> Path:
    """`X.tests.toml` for the rule file `X.toml`."""
    return rule_path.with_name(rule_path.name.removesuffix(".toml") + SUFFIX)


def rule_path_of(fixture: Path) -> Path:
    """`X.toml` for the fixture `X.tests.toml`."""
    return fixture.with_name(fixture.name.removesuffix(SUFFIX) + ".toml")


def is_fixture(path: Path) -> bool:
    """Whether `path` names a fixture rather than a rule file."""
    return path.name.endswith(SUFFIX)


def parse_fixture(text: str, path: Path, now: datetime) -> Fixture:
    """The fixture in `text`; relative `at` values are resolved against `now` (the clock)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError(f"not valid TOML: {exc}", Location(path)) from None
    reader = _Reader(path, text, now)
    unknown = set(data) - {"case", "defaults"}
    if unknown:
        raise reader.error(f"unknown top-level key(s) {sorted(unknown)}: expected [[case]]")
    defaults = reader.table(data.get("defaults", {}), "defaults", None)
    cases = data.get("case", [])
    if not isinstance(cases, list) or not cases:
        raise reader.error("no [[case]] table: a fixture holds at least one case")
    parsed = tuple(reader.case(raw, number, defaults) for number, raw in enumerate(cases))
    _check_names(reader, parsed)
    return Fixture(path, parsed)


def values_at(doc: Mapping[str, Any], name: str) -> list[Any]:
    """The values of the dotted field `name` in the nested document (arrays flattened)."""
    current: list[Any] = [doc]
    for part in name.split("."):
        found: list[Any] = []
        for node in current:
            if isinstance(node, Mapping) and part in node:
                value = node[part]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


def expand(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested tables (`{"a.b": 1}` -> `{"a": {"b": 1}}`); `ValueError` when a
    field is both a value and a table."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{key!r}: {part!r} is a value, not a table")
            node = child
        value = expand(value) if isinstance(value, Mapping) else value
        if isinstance(node.get(last), dict) and isinstance(value, dict):
            node[last] = _merge(node[last], value)
        elif last in node:
            raise ValueError(f"{key!r} is given twice")
        else:
            node[last] = value
    return nested


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, table by table (the event's own fields win over the defaults)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_names(reader: _Reader, cases: Sequence[Case]) -> None:
    seen: set[str] = set()
    for case in cases:
        if case.name in seen:
            raise reader.error("two cases have this name", case.name, case.line)
        seen.add(case.name)


class _Reader:
    """Reads the parts of one fixture, locating each problem (file, case, line)."""

    def __init__(self, path: Path, text: str, now: datetime) -> None:
        self.path, self.now = path, now
        lines = text.splitlines()
        self.case_lines = [n for n, line in enumerate(lines, 1) if _CASE_HEADER.match(line)]
        self.event_lines = [n for n, line in enumerate(lines, 1) if _EVENT_HEADER.match(line)]

    def error(self, message: str, case: str | None = None, line: int | None = None) -> FixtureError:
        return FixtureError(message, Location(self.path, line=line), case)

    def case(self, raw: Any, number: int, defaults: dict[str, Any]) -> Case:
        line = self.case_lines[number] if number < len(self.case_lines) else None
        if not isinstance(raw, dict):
            raise self.error("a [[case]] must be a table", None, line)
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.error(f"case #{number + 1} has no `name` (a non-empty string)", None, line)
        unknown = set(raw) - _CASE_KEYS
        if unknown:
            raise self.error(f"unknown key(s) {sorted(unknown)}", name, line)
        at = self.moment(raw.get("at", "now"), self.now, name, line, "at")
        runs = self.runs(raw.get("runs"), at, name, line)
        return Case(
            name=name,
            at=at,
            events=self.events(raw.get("events", []), at, defaults, name, line),
            runs=runs,
            alert=self.terms(raw.get("alert", []), name, line, "alert"),
            silent=self.terms(raw.get("silent", []), name, line, "silent"),
            exceptions=self.exceptions(raw.get("exceptions", []), name, line),
            max_signals=self.max_signals(raw.get("max_signals"), name, line),
            baseline=self.baseline(raw.get("baseline"), name, line),
            line=line,
        )

    def moment(
        self, value: Any, anchor: datetime, case: str, line: int | None, key: str
    ) -> datetime:
        """An absolute time, `now...` (date math at `anchor`), or an offset such as `-3d`."""
        if isinstance(value, datetime):
            return datemath.parse(value.isoformat(), anchor)
        if not isinstance(value, str):
            raise self.error(
                f'`{key}` must be a time such as "now", "-3d" or an ISO date', case, line
            )
        text = value.strip()
        expression = f"now{text}" if text[:1] in ("-", "+") else text
        try:
            return datemath.parse(expression, anchor)
        except DateMathError as exc:
            raise self.error(f"`{key}`: {exc}", case, line) from None

    def runs(self, raw: Any, at: datetime, case: str, line: int | None) -> tuple[Run, ...]:
        if raw is None:
            return (Run(at),)
        if not isinstance(raw, list) or not raw:
            raise self.error("`runs` must be a non-empty array of times or tables", case, line)
        runs = tuple(self.run(item, at, case, line) for item in raw)
        if any(later.at <= earlier.at for earlier, later in pairwise(runs)):
            raise self.error("`runs` must be in increasing time order", case, line)
        return runs

    def run(self, item: Any, at: datetime, case: str, line: int | None) -> Run:
        if not isinstance(item, dict):
            return Run(self.moment(item, at, case, line, "runs"))
        unknown = set(item) - _RUN_KEYS
        if unknown or "at" not in item:
            raise self.error(
                "a run is a time, or a table with `at` and optional `alert`, `silent`", case, line
            )
        alert, silent = item.get("alert"), item.get("silent")
        return Run(
            self.moment(item["at"], at, case, line, "runs.at"),
            None if alert is None else self.terms(alert, case, line, "runs.alert"),
            None if silent is None else self.terms(silent, case, line, "runs.silent"),
        )

    def events(
        self, raw: Any, at: datetime, defaults: dict[str, Any], case: str, line: int | None
    ) -> tuple[Event, ...]:
        if not isinstance(raw, list):
            raise self.error("`events` must be an array of tables ([[case.events]])", case, line)
        following = [n for n in self.event_lines if line is None or n > line]
        return tuple(
            self.event(item, at, defaults, case, following[n] if n < len(following) else line)
            for n, item in enumerate(raw)
        )

    def event(
        self, raw: Any, at: datetime, defaults: dict[str, Any], case: str, line: int | None
    ) -> Event:
        if not isinstance(raw, dict):
            raise self.error("an event must be a table", case, line)
        fields = {key: value for key, value in raw.items() if key not in (TIME, INGESTED, INDEX)}
        if TIME not in raw:
            raise self.error('an event needs `time` (e.g. "-2m", relative to `at`)', case, line)
        moment = iso(self.moment(raw[TIME], at, case, line, TIME))
        ingested = raw.get(INGESTED, raw[TIME])
        times: dict[str, Any] = {"@timestamp": moment}
        if ingested is not False:
            times["event.ingested"] = iso(self.moment(ingested, at, case, line, INGESTED))
        index = raw.get(INDEX)
        if index is not None and not isinstance(index, str):
            raise self.error(
                "an event's `index` must be one of the rule's index patterns", case, line
            )
        try:
            doc = _merge(defaults, expand({**fields, **times}))
        except ValueError as exc:
            raise self.error(f"event: {exc}", case, line) from None
        if ingested is False:
            doc.get("event", {}).pop("ingested", None)
        return Event(doc, index, line, str(raw[TIME]))

    def table(self, raw: Any, key: str, case: str | None) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.error(f"`{key}` must be a table of fields", case)
        try:
            return expand(raw)
        except ValueError as exc:
            raise self.error(f"`{key}`: {exc}", case) from None

    def terms(self, raw: Any, case: str, line: int | None, key: str) -> tuple[Term, ...]:
        if not isinstance(raw, list):
            raise self.error(f"`{key}` must be an array of terms", case, line)
        terms: list[Term] = []
        for item in raw:
            values = item if isinstance(item, list) else [item]
            if not values or not all(isinstance(v, str | int | float | bool) for v in values):
                raise self.error(
                    f"`{key}`: {item!r} is not a term (a value, or an array of "
                    "one value per new-terms field)",
                    case,
                    line,
                )
            terms.append(tuple(values))
        return tuple(terms)

    def exceptions(self, raw: Any, case: str, line: int | None) -> tuple[ExceptionItem, ...]:
        if not isinstance(raw, list):
            raise self.error("`exceptions` must be an array of {field, values}", case, line)
        items = []
        for entry in raw:
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("field"), str)
                and isinstance(entry.get("values"), list)
                and entry["values"]
            ):
                raise self.error('an exception is {field = "...", values = [...]}', case, line)
            items.append(
                ExceptionItem(
                    ANY_RULE,
                    entry["field"],
                    tuple(entry["values"]),
                    origin=f"{self.path} case {case!r}",
                )
            )
        return tuple(items)

    def max_signals(self, raw: Any, case: str, line: int | None) -> int | None:
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
            raise self.error("`max_signals` must be a positive integer", case, line)
        return raw

    def baseline(self, raw: Any, case: str, line: int | None) -> str | None:
        if raw is not None and raw not in MODES:
            raise self.error(f"`baseline` must be one of {list(MODES)}", case, line)
        return None if raw is None else str(raw)
