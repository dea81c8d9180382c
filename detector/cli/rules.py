"""`detector rules check`, `rules list` and `kql`: writing and reviewing rules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from detector.cli.common import Commands

if TYPE_CHECKING:
    from detector.settings import Settings


def rules_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate rule files; one line per problem (a query error adds its caret below)."""
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector.rules import load_rules

    result = load_rules(args.paths)
    for error in result.errors:
        print(error)
    if result.errors:
        return 1
    print(f"{len(result.rules)} rule(s) OK")
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
    for error in result.errors:
        print(f"rule problem: {error}", file=sys.stderr)
    return 1 if result.errors else 0


def compile_kql(args: argparse.Namespace, settings: Settings) -> int:
    """Print the Elasticsearch query DSL a KQL query compiles to."""
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector import kql

    print(json.dumps(kql.to_dsl(args.query), indent=2))
    return 0


def add_commands(commands: Commands) -> None:
    """Register `rules check`, `rules list` and `kql`."""
    rules = commands.add_parser("rules", help="check or list detection rules")
    actions = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate rule files (exit 1 if any is invalid)")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="rule file or folder")
    check.set_defaults(handler=rules_check, uses_settings=False)
    listing = actions.add_parser("list", help="list the rules that would run, from the settings")
    listing.set_defaults(handler=rules_list)
    query = commands.add_parser("kql", help="compile a KQL query and print the query DSL")
    query.add_argument("query", help="the KQL query, quoted")
    query.set_defaults(handler=compile_kql, uses_settings=False)
