"""Detection rules: the typed model of an Elastic detection-rules TOML file, and its loader.

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
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from detector.errors import RuleError
from detector.rule_toml import RuleSource, TableReader

if TYPE_CHECKING:
    from detector.settings import Settings

# Kibana's defaults for a rule that leaves these out.
DEFAULT_INTERVAL = "5m"
DEFAULT_FROM = "now-6m"
DEFAULT_TO = "now"
DEFAULT_MAX_SIGNALS = 100
DEFAULT_LANGUAGE = "kuery"
SUPPORTED_TYPES = ("new_terms",)
SUPPORTED_LANGUAGES = ("kuery",)
SEVERITIES = ("low", "medium", "high", "critical")
MAX_NEW_TERMS_FIELDS = 3


@dataclass(frozen=True)
class ThreatEntry:
    """A MITRE ATT&CK tactic, technique or subtechnique."""

    id: str
    name: str
    reference: str


@dataclass(frozen=True)
class Technique:
    """A technique with its subtechniques."""

    id: str
    name: str
    reference: str
    subtechnique: tuple[ThreatEntry, ...] = ()


@dataclass(frozen=True)
class Threat:
    """One `[[rule.threat]]` entry: a tactic and the techniques under it."""

    framework: str
    tactic: ThreatEntry
    technique: tuple[Technique, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One detection rule, as loaded from a TOML file (keys in Kibana's snake_case)."""

    rule_id: str
    name: str
    description: str
    type: str
    language: str
    query: str
    index: tuple[str, ...]
    new_terms_fields: tuple[str, ...]
    history_window_start: str
    risk_score: int
    severity: str
    interval: str = DEFAULT_INTERVAL
    from_: str = DEFAULT_FROM
    to: str = DEFAULT_TO
    max_signals: int = DEFAULT_MAX_SIGNALS
    tags: tuple[str, ...] = ()
    threat: tuple[Threat, ...] = ()
    timestamp_override: str | None = None
    timestamp_override_fallback_disabled: bool = False
    note: str | None = None
    setup: str | None = None
    references: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    license: str | None = None
    investigation_fields: tuple[str, ...] = ()
    version: int = 1
    enabled: bool = True
    source: Path | None = None
    builtin: bool = False
    metadata: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class LoadResult:
    """The rules that loaded, and one error per problem with the others."""

    rules: list[Rule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything loaded."""
        return not self.errors


def load_rule_file(path: Path | str) -> Rule:
    """Load and validate one rule file; raises `RuleError` (or `UnsupportedRuleError`)."""
    path = Path(path)
    source = RuleSource(path)
    try:
        source.text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise source.error(None, f"cannot read the file: {_reason(exc)}") from None
    return parse_rule(source.text, path)


def parse_rule(text: str, path: Path | None = None) -> Rule:
    """Validate the TOML text of one rule; `path` only locates errors and sets `Rule.source`."""
    source = RuleSource(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        number = int(line.group(1)) if line else None
        raise source.error(None, f"invalid TOML: {exc}", number) from None
    from detector.rule_build import build  # imports this module's model

    return build(source, TableReader(source, data, ""))


def load_rules(paths: Iterable[Path | str]) -> LoadResult:
    """Load every rule file given, or every `*.toml` under each directory given (sorted).

    Problems are collected, never raised: a bad file does not stop the others.
    """
    result = LoadResult()
    for path in paths:
        files, error = _rule_files(Path(path))
        if error is not None:
            result.errors.append(error)
        for file in files:
            try:
                result.rules.append(load_rule_file(file))
            except RuleError as exc:
                result.errors.append(exc)
    _drop_duplicates(result)
    return result


def builtin_rules() -> list[Rule]:
    """The rules shipped with the detector (some are disabled by default)."""
    folder = resources.files("detector") / "builtin"
    entries = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".toml")), key=str)
    return [
        replace(parse_rule(entry.read_text(encoding="utf-8"), Path(str(entry))), builtin=True)
        for entry in entries
    ]


def rules_for(settings: Settings) -> LoadResult:
    """The rules to run: the built-in ones (when enabled), then those under `rules_path`.

    A rule in `rules_path` with the `rule_id` of a built-in rule replaces the built-in one.
    """
    result = load_rules(settings.rules_path)
    if settings.builtin_rules:
        own = {rule.rule_id for rule in result.rules}
        builtin = [rule for rule in builtin_rules() if rule.rule_id not in own]
        result.rules[:0] = builtin
    return result


def _rule_files(path: Path) -> tuple[list[Path], RuleError | None]:
    if path.is_dir():
        files = sorted(file for file in path.rglob("*.toml") if file.is_file())
        if not files:
            return [], RuleSource(path).error(None, "no *.toml rule files in this directory")
        return files, None
    if path.is_file():
        return [path], None
    return [], RuleSource(path).error(None, "no such file or directory")


def _drop_duplicates(result: LoadResult) -> None:
    seen: dict[str, Rule] = {}
    kept: list[Rule] = []
    for rule in result.rules:
        first = seen.setdefault(rule.rule_id, rule)
        if first is rule:
            kept.append(rule)
            continue
        source = RuleSource(rule.source, rule_id=rule.rule_id)
        message = f"duplicate rule_id, already used by {first.source or first.name}"
        result.errors.append(source.error("rule.rule_id", message, _line(rule, "rule.rule_id")))
    result.rules = kept


def _line(rule: Rule, key: str) -> int | None:
    if rule.source is None or not rule.source.is_file():
        return None
    return RuleSource(rule.source, rule.source.read_text(encoding="utf-8")).line_of(key)


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
