"""The validating builder: a `Rule` from the TOML text or tables of one rule file.

A rule file has a `[metadata]` table and a `[rule]` table in Kibana's snake_case keys; the
new-terms parameters use detection-rules' shape:

    [rule.new_terms]
    field = "new_terms_fields"
    value = ["source.address"]
    [[rule.new_terms.history_window_start]]
    field = "history_window_start"
    value = "now-7d"

(Kibana's own shape, `new_terms_fields = [...]` and `history_window_start = "..."` directly in
`[rule]`, is accepted too.) Keys this engine does not use are ignored, except in the
`[detector]` table of this detector's own options (`baseline = "alert" | "hold"`), where an
unknown key is an error.

Checks beyond types: supported type and language, 1 to 3 distinct new-terms fields, severity,
risk score, interval and date math, a history window that starts before `from` (as Kibana
requires), and a query that compiles.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from detector import datemath, kql
from detector.errors import DateMathError, QueryError, RuleError, RuleProblems, UnsupportedRuleError
from detector.rules.model import (
    DEFAULT_FROM,
    DEFAULT_INTERVAL,
    DEFAULT_LANGUAGE,
    DEFAULT_MAX_SIGNALS,
    DEFAULT_TO,
    MAX_NEW_TERMS_FIELDS,
    SEVERITIES,
    SUPPORTED_LANGUAGES,
    SUPPORTED_TYPES,
    Rule,
    Technique,
    Threat,
    ThreatEntry,
)
from detector.rules.toml_reader import RuleSource, TableReader


def parse_rule(text: str, path: Path | None = None) -> Rule:
    """Validate the TOML text of one rule; `path` only locates errors and sets `Rule.source`."""
    source = RuleSource(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        number = int(line.group(1)) if line else None
        raise source.error(None, f"invalid TOML: {exc}", number) from None
    return build(source, TableReader(source, data, ""))


def build(source: RuleSource, top: TableReader) -> Rule:
    """The validated rule of a parsed file; raises `RuleError` naming the key at fault, or
    `RuleProblems` listing every problem when there are several."""
    rule = top.sub("rule")
    assert rule is not None
    if isinstance(rule.table.get("rule_id"), str):
        source.rule_id = rule.table["rule_id"]
    _check_supported(rule)  # an unsupported rule is reported as such, not as its other problems
    problems = _Problems()
    values = {name: problems.take(read) for name, read in _readers(rule, top).items()}
    # Each check runs when what it needs was read, so one round reports every problem.
    for check, needs in _checks(rule).items():
        if all(values[name] is not None for name in needs):
            problems.take(partial(check, values))
    problems.raise_any()
    return Rule(**values, source=source.path)


class _Problems:
    """Every problem of one rule file, so `rules check` reports them all in one round."""

    def __init__(self) -> None:
        self.errors: list[RuleError] = []

    def take(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except RuleError as exc:
            # Two fields read from one broken table (e.g. `[rule.new_terms]`) say it once.
            if not any(str(exc) == str(seen) for seen in self.errors):
                self.errors.append(exc)
            return None

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise RuleProblems(self.errors)


def _readers(rule: TableReader, top: TableReader) -> dict[str, Callable[[], Any]]:
    """How to read each `Rule` field from the `[rule]` table (and `[metadata]`)."""
    return {
        "rule_id": lambda: rule.text("rule_id"),
        "name": lambda: rule.text("name"),
        "description": lambda: rule.text("description"),
        "type": lambda: rule.text("type"),
        "language": lambda: rule.text("language", DEFAULT_LANGUAGE),
        "query": lambda: rule.text("query"),
        "index": lambda: _index(rule),
        "new_terms_fields": lambda: _new_terms_fields(rule),
        "history_window_start": lambda: _history_window_start(rule),
        "risk_score": lambda: rule.number("risk_score", low=0, high=100),
        "severity": lambda: _severity(rule),
        "interval": lambda: rule.text("interval", DEFAULT_INTERVAL),
        "from_": lambda: rule.text("from", DEFAULT_FROM),
        "to": lambda: rule.text("to", DEFAULT_TO),
        "max_signals": lambda: rule.number("max_signals", DEFAULT_MAX_SIGNALS, low=1),
        "tags": lambda: rule.strings("tags", ()),
        "threat": lambda: tuple(_threat(entry) for entry in rule.subs("threat")),
        "timestamp_override": lambda: rule.optional_text("timestamp_override"),
        "timestamp_override_fallback_disabled": lambda: rule.get(
            "timestamp_override_fallback_disabled", bool, False
        ),
        "note": lambda: rule.optional_text("note"),
        "setup": lambda: rule.optional_text("setup"),
        "references": lambda: rule.strings("references", ()),
        "author": lambda: rule.strings("author", ()),
        "license": lambda: rule.optional_text("license"),
        "investigation_fields": lambda: _investigation_fields(rule),
        "version": lambda: rule.number("version", 1, low=1),
        "enabled": lambda: rule.get("enabled", bool, True),
        "metadata": lambda: _metadata(top),
        "baseline": lambda: _baseline(top),
    }


# This detector's own options of a rule, in a table Kibana and detection-rules do not read.
DETECTOR_TABLE = "detector"
BASELINE_MODES = ("alert", "hold")


def _baseline(top: TableReader) -> str | None:
    """`[detector] baseline = "alert" | "hold"`, the rule's own `DETECTOR_BASELINE`."""
    table = top.sub(DETECTOR_TABLE, required=False)
    if table is None:
        return None
    for key in table.table:
        if key != "baseline":
            raise table.fail(key, "unknown key (the [detector] table has only 'baseline')")
    mode = table.optional_text("baseline")
    if mode is not None and mode not in BASELINE_MODES:
        raise table.fail("baseline", f"must be one of {', '.join(BASELINE_MODES)}, got {mode!r}")
    return mode


def _metadata(top: TableReader) -> dict[str, Any]:
    metadata = top.sub("metadata", required=False)
    return dict(metadata.table) if metadata else {}


def _check_supported(rule: TableReader) -> None:
    """A valid rule of another type or language; a `type` or `language` that is no string is
    left to the readers, which report it with the rule's other problems."""
    kind = rule.table.get("type")
    if isinstance(kind, str) and kind not in SUPPORTED_TYPES:
        message = f"rule type {kind!r} is not supported (only new_terms)"
        raise _unsupported(rule, "type", message, f"type {kind}")
    language = rule.table.get("language", DEFAULT_LANGUAGE)
    if isinstance(language, str) and language not in SUPPORTED_LANGUAGES:
        message = f"query language {language!r} is not supported (only kuery)"
        raise _unsupported(rule, "language", message, f"language {language}")


def _unsupported(rule: TableReader, name: str, message: str, what: str) -> UnsupportedRuleError:
    error = rule.fail(name, message)
    return UnsupportedRuleError(error.message, error.location, what)


def _kibana_shape(rule: TableReader) -> bool:
    """Kibana's own keys (`new_terms_fields`, `history_window_start` in `[rule]`)."""
    return not rule.has("new_terms") and (
        rule.has("new_terms_fields") or rule.has("history_window_start")
    )


def _new_terms_fields(rule: TableReader) -> tuple[str, ...]:
    if _kibana_shape(rule):
        return _check_fields(rule, "new_terms_fields", rule.strings("new_terms_fields"))
    table = rule.sub("new_terms")
    assert table is not None
    _expect_name(table, "new_terms_fields")
    return _check_fields(table, "value", table.strings("value"))


def _history_window_start(rule: TableReader) -> str:
    if _kibana_shape(rule):
        return rule.text("history_window_start")
    table = rule.sub("new_terms")
    assert table is not None
    windows = table.subs("history_window_start")
    if len(windows) != 1:
        raise table.fail("history_window_start", "must be exactly one [[...]] table")
    _expect_name(windows[0], "history_window_start")
    return windows[0].text("value")


def _expect_name(table: TableReader, expected: str) -> None:
    name = table.text("field")
    if name != expected:
        raise table.fail("field", f"must be {expected!r}, got {name!r}")


def _check_fields(table: TableReader, name: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    if not 1 <= len(fields) <= MAX_NEW_TERMS_FIELDS:
        message = f"must list 1 to {MAX_NEW_TERMS_FIELDS} fields, got {len(fields)}"
        raise table.fail(name, message)
    if len(set(fields)) != len(fields) or not all(item.strip() for item in fields):
        raise table.fail(name, "fields must be distinct and non-empty")
    return fields


def _index(rule: TableReader) -> tuple[str, ...]:
    patterns = rule.strings("index")
    if not patterns or not all(pattern.strip() for pattern in patterns):
        raise rule.fail("index", "must list at least one non-empty index pattern")
    return patterns


def _severity(rule: TableReader) -> str:
    severity = rule.text("severity")
    if severity not in SEVERITIES:
        raise rule.fail("severity", f"must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    return severity


def _entry(table: TableReader) -> ThreatEntry:
    return ThreatEntry(table.text("id"), table.text("name"), table.text("reference"))


def _threat(table: TableReader) -> Threat:
    tactic = table.sub("tactic")
    assert tactic is not None
    techniques = tuple(
        Technique(
            **vars(_entry(technique)),
            subtechnique=tuple(_entry(sub) for sub in technique.subs("subtechnique")),
        )
        for technique in table.subs("technique")
    )
    return Threat(table.text("framework"), _entry(tactic), techniques)


def _investigation_fields(rule: TableReader) -> tuple[str, ...]:
    table = rule.sub("investigation_fields", required=False)
    return table.strings("field_names", ()) if table else ()


Check = Callable[[Mapping[str, Any]], None]


def _checks(rule: TableReader) -> dict[Check, tuple[str, ...]]:
    """The checks across fields, each with the fields it needs (read without a problem): what
    an execution would otherwise reject. Independent, so one round reports each problem."""
    return {
        lambda values: _check_interval(rule, values["interval"]): ("interval",),
        lambda values: _check_window(rule, values["from_"], values["to"]): ("from_", "to"),
        lambda values: _check_history(rule, values["from_"], values["history_window_start"]): (
            "from_",
            "history_window_start",
        ),
        lambda values: _check_query(values["query"], rule): ("query",),
    }


def _check_interval(rule: TableReader, interval: str) -> None:
    try:
        datemath.parse_interval(interval)
    except DateMathError as exc:
        raise rule.fail("interval", str(exc)) from None


def _check_window(rule: TableReader, from_: str, to: str) -> None:
    """Both ends parse and the window is not empty."""
    now = datetime.now(UTC)
    start, end = _date(rule, "from", from_, now), _date(rule, "to", to, now)
    if start > end:
        message = f"the window is empty: 'from' ({from_!r}) is after 'to' ({to!r})"
        raise rule.fail("from", message)


def _check_history(rule: TableReader, from_: str, history_start: str) -> None:
    """The history starts before the window (Kibana's `validateHistoryWindowStart`). A `from`
    that does not parse is `_check_window`'s to report."""
    now = datetime.now(UTC)
    key = "history_window_start" if _kibana_shape(rule) else "new_terms.history_window_start"
    history = _date(rule, key, history_start, now)
    try:
        start = datemath.parse(from_, now)
    except DateMathError:
        return
    if history >= start:
        message = (
            f"history window start {history_start!r} must be earlier than "
            f"'from' ({from_!r}); Kibana rejects such a rule"
        )
        raise rule.fail(key, message)


def _date(rule: TableReader, key: str, value: str, now: datetime) -> datetime:
    try:
        return datemath.parse(value, now)
    except DateMathError as exc:
        raise rule.fail(key, str(exc)) from None


def _check_query(query: str, rule: TableReader) -> None:
    try:
        kql.to_dsl(query)
    except QueryError as exc:
        key = rule.key("query")
        line = _query_line(rule.source, query, exc.position)
        message = f"query does not compile: {exc.message} at position {exc.position}"
        raise rule.source.error(key, f"{message}\n{_indent(exc.caret())}", line) from None


def _query_line(source: RuleSource, query: str, position: int) -> int | None:
    start = source.line_of("rule.query")
    if start is None:
        return None
    opening = source.text.splitlines()[start - 1]
    first = start + 1 if re.search(r"=\s*('''|\"\"\")\s*$", opening) else start
    return first + query.count("\n", 0, position)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
