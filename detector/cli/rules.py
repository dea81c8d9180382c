"""`detector rules check`, `rules list`, `rules diff` and `kql`: writing and reviewing rules."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.cli.common import Commands, executions_at_debug, report_rule_problems, usage_error
from detector.errors import DetectorError, UnsupportedRuleError

if TYPE_CHECKING:
    from detector.settings import Settings


def rules_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate rule files; one line per problem (a query error adds its caret below)."""
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector.rules import load_rules

    result = load_rules(args.paths)
    # No settings here (start-up): `--strict` is DETECTOR_UNSUPPORTED_RULES=fail's counterpart.
    invalid = [e for e in result.errors if args.strict or not isinstance(e, UnsupportedRuleError)]
    for error in result.errors:
        print(error if error in invalid else f"not run: {error}")
    if invalid:
        return 1
    skipped = len(result.errors)
    print(
        f"{len(result.rules)} rule(s) OK"
        + (f", {skipped} not run (unsupported)" if skipped else "")
    )
    return 0


def rules_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print the rules that would run, as an aligned table."""
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector.rules import rules_for

    result = rules_for(settings)
    rows = [["RULE_ID", "NAME", "TYPE", "INTERVAL", "ENABLED", "SOURCE"]]
    for rule in result.rules:
        source = f"built-in {rule.source.name}" if rule.builtin and rule.source else rule.source
        enabled = "yes" if rule.enabled else "no"
        rows.append([rule.rule_id, rule.name, rule.type, rule.interval, enabled, str(source)])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return report_rule_problems(result, settings)


def compile_kql(args: argparse.Namespace, settings: Settings) -> int:
    """Print the Elasticsearch query DSL a KQL query compiles to."""
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector import kql

    print(json.dumps(kql.to_dsl(args.query), indent=2))
    return 0


def rules_test(args: argparse.Namespace, settings: Settings) -> int:
    """Run each rule's fixture cases with the engine in throw-away indices (or `--scaffold`)."""
    # lazy: start-up (`--help` needs neither the client nor the KQL parser)
    from detector import ruletest

    if args.scaffold:
        return _scaffold(args.paths)
    options = ruletest.Options(not args.allow_one_sided, not args.skip_untested)
    collected = ruletest.collect(args.paths, datetime.now(UTC), options)
    started = time.monotonic()
    results = _run_cases(settings, collected.work) if collected.work else []
    suite = ruletest.Suite(results, collected.problems, round(time.monotonic() - started, 3))
    if args.junit is not None:
        args.junit.write_text(ruletest.junit_xml(suite), encoding="utf-8")
    if args.json:
        print(json.dumps(ruletest.to_json(suite)))
    else:
        print("\n".join(ruletest.text_lines(suite)))
    if suite.problems:
        return 2
    return 0 if suite.passed == len(suite.results) else 1


def _run_cases(settings: Settings, work: list[Any]) -> list[Any]:
    from detector import ruletest
    from detector.es.client import Elastic

    with Elastic(settings) as elastic, executions_at_debug():
        elastic.wait_ready()
        return ruletest.run_all(elastic, work)


def _scaffold(paths: list[Path]) -> int:
    """Write `X.tests.toml` beside each rule that has none: the files named and the rules below
    the folders named. A fixture is never overwritten: one beside a file named is an error, one
    beside a rule of a folder is left as it is (and counted). A rule that cannot be scaffolded is
    an error naming it; the others are written all the same."""
    from detector import ruletest

    files, problems = ruletest.rule_files(paths)
    named = {path for path in paths if path.is_file()}
    written = kept = 0
    for path in files:
        target = ruletest.fixture_path(path)
        if target.exists() and path not in named:
            kept += 1
        elif target.exists():
            problems.append(f"{target} exists; --scaffold never overwrites a fixture")
        elif problem := _scaffold_one(path, target):
            problems.append(problem)
        else:
            print(f"wrote {target}")
            written += 1
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if kept:
        print(f"{kept} rule(s) already have a fixture, left as they are")
    return 2 if problems or not (written or kept) else 0


def _scaffold_one(rule_file: Path, target: Path) -> str | None:
    """Write the scaffold of one rule file; the problem instead, if it has one."""
    from detector import ruletest
    from detector.rules import load_rule_file

    try:
        text = ruletest.scaffold(load_rule_file(rule_file), ruletest.field_types())
    except DetectorError as exc:
        return str(exc)
    target.write_text(text)
    return None


def add_test_command(actions: Any) -> None:
    """Register `rules test`."""
    test = actions.add_parser(
        "test",
        help="run rules' test cases (X.tests.toml) against throw-away indices",
        description="Run the cases of each rule's fixture (X.tests.toml beside X.toml) with the "
        "engine, against throw-away indices of the configured Elasticsearch that are deleted "
        "afterwards. Exit 0: every case passed; 1: a case failed; 2: a rule or fixture does "
        "not load.",
    )
    test.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="rule file, fixture or folder"
    )
    test.add_argument("--json", action="store_true", help="print one JSON object")
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")
    test.add_argument(
        "--allow-one-sided",
        action="store_true",
        help="accept a fixture without an alerting or without a silent case",
    )
    test.add_argument(
        "--skip-untested", action="store_true", help="skip rule files that have no fixture"
    )
    test.add_argument(
        "--scaffold",
        action="store_true",
        help="write a starting fixture (one alerting, one silent case) for each rule given, or "
        "below each folder given, that has none",
    )
    test.set_defaults(handler=rules_test)


def rules_diff(args: argparse.Namespace, settings: Settings) -> int:
    """Print the would-be alerts a rule change adds and removes over a past range (exit 0:
    a difference is what was asked, not an error)."""
    # lazy: start-up (`--help` needs neither the client nor the KQL parser)
    from detector.cli.engineering import check_range, previews
    from detector.preview import compare
    from detector.rules import load_rule_file

    problem = check_range(args.start, args.end)
    if problem:
        return usage_error(problem)
    loaded = [load_rule_file(args.old), load_rule_file(args.new)]
    old, new = previews(loaded, args, settings, fresh=True)
    found = compare(old, new)
    if args.json:
        for change in found.to_json():
            print(json.dumps(change))
    else:
        print("\n".join(found.lines()))
    return 0


def _add_diff(actions: Commands) -> None:
    from detector.cli.engineering import range_options

    diff = actions.add_parser(
        "diff",
        help="the would-be alerts a rule change adds and removes over a past range",
        description="Preview OLD and NEW over --start..--end (as `detector preview`, writing "
        "nothing) and print the alerts only NEW would write (+) and only OLD would (-). Exit 0 "
        "whatever the difference.",
    )
    diff.add_argument("old", type=Path, metavar="OLD.toml", help="the rule as it is")
    diff.add_argument("new", type=Path, metavar="NEW.toml", help="the rule as changed")
    range_options(diff)
    diff.set_defaults(handler=rules_diff)


def add_commands(commands: Commands) -> None:
    """Register `rules check`, `rules list`, `rules diff` and `kql`."""
    rules = commands.add_parser(
        "rules",
        help="check or list detection rules",
        description="Validate rule files, or list the rules the settings would run.",
    )
    actions = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate rule files (exit 1 if any is invalid)",
        description="Validate detection-rules TOML files (folders: every *.toml below them): "
        "one line per problem, with file, line, rule id and key.",
    )
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="rule file or folder")
    check.add_argument(
        "--strict",
        action="store_true",
        help="count rules of a type or language the detector does not run as invalid",
    )
    check.set_defaults(handler=rules_check, uses_settings=False)
    listing = actions.add_parser(
        "list",
        help="list the rules that would run, from the settings",
        description="The built-in rules and those of DETECTOR_RULES_PATH, as a table.",
    )
    listing.set_defaults(handler=rules_list)
    add_test_command(actions)
    _add_diff(actions)
    query = commands.add_parser(
        "kql",
        help="compile a KQL query and print the query DSL",
        description="Print the Elasticsearch query DSL a KQL query compiles to, as the rules' "
        "queries are compiled.",
    )
    query.add_argument("query", help="the KQL query, quoted")
    query.set_defaults(handler=compile_kql, uses_settings=False)
