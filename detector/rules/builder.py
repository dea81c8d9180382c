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
`[rule]`, is accepted too.) Keys this engine does not use are ignored.

Checks beyond types: supported type and language, 1 to 3 distinct new-terms fields, severity,
risk score, interval and date math, a history window that starts before `from` (as Kibana
requires), and a query that compiles.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from detector import datemath, kql
from detector.errors import DateMathError, QueryError, UnsupportedRuleError
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

__all__ = ["build", "parse_rule"]


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
    """The validated rule of a parsed file; raises `RuleError` naming the key at fault."""
    rule = top.sub("rule")
    assert rule is not None
    metadata = top.sub("metadata", required=False)
    if isinstance(rule.table.get("rule_id"), str):
        source.rule_id = rule.table["rule_id"]
    _check_supported(rule)
    fields, history = _new_terms(rule)
    built = Rule(
        rule_id=rule.text("rule_id"),
        name=rule.text("name"),
        description=rule.text("description"),
        type=rule.text("type"),
        language=rule.text("language", DEFAULT_LANGUAGE),
        query=rule.text("query"),
        index=_index(rule),
        new_terms_fields=fields,
        history_window_start=history,
        risk_score=rule.number("risk_score", low=0, high=100),
        severity=_severity(rule),
        interval=rule.text("interval", DEFAULT_INTERVAL),
        from_=rule.text("from", DEFAULT_FROM),
        to=rule.text("to", DEFAULT_TO),
        max_signals=rule.number("max_signals", DEFAULT_MAX_SIGNALS, low=1),
        tags=rule.strings("tags", ()),
        threat=tuple(_threat(entry) for entry in rule.subs("threat")),
        timestamp_override=rule.optional_text("timestamp_override"),
        timestamp_override_fallback_disabled=rule.get(
            "timestamp_override_fallback_disabled", bool, False
        ),
        note=rule.optional_text("note"),
        setup=rule.optional_text("setup"),
        references=rule.strings("references", ()),
        author=rule.strings("author", ()),
        license=rule.optional_text("license"),
        investigation_fields=_investigation_fields(rule),
        version=rule.number("version", 1, low=1),
        enabled=rule.get("enabled", bool, True),
        source=source.path,
        metadata=dict(metadata.table) if metadata else {},
    )
    _check_times(built, rule)
    _check_query(built, rule)
    return built


def _check_supported(rule: TableReader) -> None:
    kind = rule.text("type")
    if kind not in SUPPORTED_TYPES:
        message = f"rule type {kind!r} is not supported (only new_terms)"
        raise _unsupported(rule, "type", message, f"type {kind}")
    language = rule.text("language", DEFAULT_LANGUAGE)
    if language not in SUPPORTED_LANGUAGES:
        message = f"query language {language!r} is not supported (only kuery)"
        raise _unsupported(rule, "language", message, f"language {language}")


def _unsupported(rule: TableReader, name: str, message: str, what: str) -> UnsupportedRuleError:
    error = rule.fail(name, message)
    return UnsupportedRuleError(error.message, error.location, what)


def _new_terms(rule: TableReader) -> tuple[tuple[str, ...], str]:
    if not rule.has("new_terms") and rule.has("new_terms_fields"):
        fields, history = rule.strings("new_terms_fields"), rule.text("history_window_start")
        return _check_fields(rule, "new_terms_fields", fields), history
    table = rule.sub("new_terms")
    assert table is not None
    _expect_name(table, "new_terms_fields")
    fields = _check_fields(table, "value", table.strings("value"))
    windows = table.subs("history_window_start")
    if len(windows) != 1:
        raise table.fail("history_window_start", "must be exactly one [[...]] table")
    _expect_name(windows[0], "history_window_start")
    return fields, windows[0].text("value")


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


def _check_times(built: Rule, rule: TableReader) -> None:
    now = datetime.now(UTC)
    try:
        datemath.parse_interval(built.interval)
    except DateMathError as exc:
        raise rule.fail("interval", str(exc)) from None
    start = _date(rule, "from", built.from_, now)
    _date(rule, "to", built.to, now)
    kibana_shape = not rule.has("new_terms") and rule.has("history_window_start")
    key = "history_window_start" if kibana_shape else "new_terms.history_window_start"
    history = _date(rule, key, built.history_window_start, now)
    if history >= start:
        message = (
            f"history window start {built.history_window_start!r} must be earlier than "
            f"'from' ({built.from_!r}); Kibana rejects such a rule"
        )
        raise rule.fail(key, message)


def _date(rule: TableReader, key: str, value: str, now: datetime) -> datetime:
    try:
        return datemath.parse(value, now)
    except DateMathError as exc:
        raise rule.fail(key, str(exc)) from None


def _check_query(built: Rule, rule: TableReader) -> None:
    try:
        kql.to_dsl(built.query)
    except QueryError as exc:
        key = rule.key("query")
        line = _query_line(rule.source, built.query, exc.position)
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
