"""Loading rules: rule files and folders, the built-in rules and the set a run uses.

Every problem becomes a `RuleError` naming the file, the rule, the key and the line; `load_rules`
collects them rather than stopping at the first bad file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from detector.errors import RuleError, RuleProblems
from detector.rules.builder import parse_rule
from detector.rules.model import Rule
from detector.rules.toml_reader import RuleSource

# A rule's test cases, beside it (`detector.ruletest`): not a rule file.
FIXTURE_SUFFIX = ".tests.toml"

if TYPE_CHECKING:
    from detector.settings import Settings


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
            except RuleProblems as exc:
                result.errors.extend(exc.errors)
            except RuleError as exc:
                result.errors.append(exc)
    _drop_duplicates(result)
    return result


def builtin_rules() -> list[Rule]:
    """The rules shipped with the detector (some are disabled by default)."""
    folder = resources.files("detector") / "builtin"
    entries = sorted((entry for entry in folder.iterdir() if _is_rule_file(entry.name)), key=str)
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
        files = sorted(
            file for file in path.rglob("*.toml") if file.is_file() and _is_rule_file(file.name)
        )
        if not files:
            return [], RuleSource(path).error(None, "no *.toml rule files in this directory")
        return files, None
    if path.is_file():
        return [path], None
    return [], RuleSource(path).error(None, "no such file or directory")


def _is_rule_file(name: str) -> bool:
    """A `*.toml` that is not a rule's test fixture (`X.tests.toml`, `detector rules test`)."""
    return name.endswith(".toml") and not name.endswith(FIXTURE_SUFFIX)


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
