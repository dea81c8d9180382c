"""Which fixtures `rules test PATH...` runs, each with its rule, loaded and checked (files only).

A folder stands for every rule file under it; a rule file for its fixture beside it, and a
fixture for its rule. What does not load (a rule, a fixture, a fixture that does not fit its
rule, a rule without a fixture unless allowed) becomes one line naming file and case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from detector.errors import FixtureError, Location, RuleError
from detector.rules import Rule, load_rule_file
from detector.ruletest.fixture import Fixture, fixture_path, is_fixture, parse_fixture, rule_path_of
from detector.ruletest.verdict import check_fit


@dataclass
class Collected:
    """The fixtures to run, with their rules, and the problems found loading them."""

    work: list[tuple[Fixture, Rule]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """How strict the collection is."""

    both_sides: bool = True  # a fixture needs an alerting and a silent case
    require_fixture: bool = True  # a rule file without a fixture is a problem


def collect(paths: Iterable[Path], now: datetime, options: Options = Options()) -> Collected:
    """The (fixture, rule) pairs of `paths`, in order, without repeats."""
    collected = Collected()
    rule_files: list[Path] = []
    for path in paths:
        rule_files += _rule_files(path, collected)
    for rule_file in dict.fromkeys(rule_files):
        try:
            pair = _load(rule_file, now, options)
        except RuleError as exc:
            collected.problems.append(str(exc))
            continue
        if pair is not None:
            collected.work.append(pair)
    return collected


def rule_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """The rule files of `paths` (files, and the `*.toml` below folders that are not fixtures),
    in order without repeats, and the problems (a path that is not there, an empty folder)."""
    collected = Collected()
    files = [file for path in paths for file in _rule_files(path, collected)]
    return list(dict.fromkeys(files)), collected.problems


def _rule_files(path: Path, collected: Collected) -> list[Path]:
    if path.is_dir():
        found = sorted(
            file for file in path.rglob("*.toml") if file.is_file() and not is_fixture(file)
        )
        if not found:
            collected.problems.append(f"{path}: no rule files (*.toml) in this directory")
        return found
    if not path.is_file():
        collected.problems.append(f"{path}: no such file or directory")
        return []
    return [rule_path_of(path) if is_fixture(path) else path]


def _load(rule_file: Path, now: datetime, options: Options) -> tuple[Fixture, Rule] | None:
    rule = load_rule_file(rule_file)
    path = fixture_path(rule_file)
    if not path.is_file():
        if not options.require_fixture:
            return None
        raise FixtureError(
            f"no fixture {path.name} beside the rule (write one, or start from "
            f"`detector rules test --scaffold {rule_file}`)",
            Location(rule_file, rule.rule_id),
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FixtureError(f"cannot read the fixture: {exc}", Location(path)) from None
    fixture = parse_fixture(text, path, now)
    check_fit(fixture, rule, options.both_sides)
    return fixture, rule
