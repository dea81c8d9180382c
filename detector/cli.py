"""The `detector` command: a thin shell over the library.

Exit codes: 0 success, 1 a runtime failure (Elasticsearch, a rule, an execution), 2 bad
configuration or usage. User mistakes print one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from detector import __version__
from detector.errors import ConfigError, DetectorError
from detector.es import Elastic
from detector.logs import configure_logging
from detector.rules import load_rules, rules_for
from detector.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _check(args: argparse.Namespace, settings: Settings) -> int:
    """Connect, print the cluster, and say which rule index patterns match anything."""
    elastic = Elastic(settings)
    try:
        info = elastic.wait_ready(args.wait)
        print(f"connected to {', '.join(settings.es_url)}")
        print(f"cluster: {info.name}  version: {info.version}")
        for pattern in _index_patterns(settings):
            names = elastic.matching_indices(pattern)
            found = f"{len(names)} index(es)" if names else "no index yet"
            print(f"  {pattern}: {found}")
    finally:
        elastic.close()
    return 0


def _index_patterns(settings: Settings) -> list[str]:
    """The index patterns of the enabled rules, in order, without repeats."""
    result = rules_for(settings)
    for error in result.errors:
        print(f"rule problem: {error}", file=sys.stderr)
    patterns = [pattern for rule in result.rules if rule.enabled for pattern in rule.index]
    return list(dict.fromkeys(patterns))


def _rules_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate rule files; one line per problem (a query error adds its caret below)."""
    result = load_rules(args.paths)
    for error in result.errors:
        print(error)
    if result.errors:
        return 1
    print(f"{len(result.rules)} rule(s) OK")
    return 0


def _rules_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print the rules that would run, as an aligned table."""
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
    for error in result.errors:
        print(f"rule problem: {error}", file=sys.stderr)
    return 1 if result.errors else 0


def _kql(args: argparse.Namespace, settings: Settings) -> int:
    """Print the Elasticsearch query DSL a KQL query compiles to."""
    from detector.kql import to_dsl

    print(json.dumps(to_dsl(args.query), indent=2))
    return 0


def _add_rule_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = commands.add_parser("rules", help="check or list detection rules")
    actions = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate rule files (exit 1 if any is invalid)")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="rule file or folder")
    check.set_defaults(handler=_rules_check)
    listing = actions.add_parser("list", help="list the rules that would run, from the settings")
    listing.set_defaults(handler=_rules_list)
    kql = commands.add_parser("kql", help="compile a KQL query and print the query DSL")
    kql.add_argument("query", help="the KQL query, quoted")
    kql.set_defaults(handler=_kql)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Run Elastic new_terms detection rules against Elasticsearch.",
        epilog="Settings come from DETECTOR_* environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser("check", help="check the connection to Elasticsearch")
    check.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for Elasticsearch (default: DETECTOR_ES_READY_TIMEOUT)",
    )
    check.set_defaults(handler=_check)
    _add_rule_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `detector` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return handler(args, settings)
    except DetectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
