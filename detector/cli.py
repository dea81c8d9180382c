"""The `detector` command: a thin shell over the library.

Exit codes: 0 success, 1 a runtime failure (Elasticsearch, a rule, an execution), 2 bad
configuration or usage. User mistakes print one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detector import __version__, commands_ops, commands_runs
from detector.commands_runs import make_runner, parse_time, select_rules
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
        patterns = _index_patterns(settings)
        for pattern in patterns:
            names = elastic.matching_indices(pattern)
            found = f"{len(names)} index(es)" if names else "no index yet"
            print(f"  {pattern}: {found}")
        unreadable = elastic.unreadable(patterns)
    finally:
        elastic.close()
    if unreadable is None:
        print("read privileges: not checked (security is off or the API is not available)")
    for pattern in unreadable or ():
        print(f"error: no read privilege on {pattern}: searches would silently leave it out")
    return 1 if unreadable else 0


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


def _alert_line(alert: dict[str, Any]) -> str:
    """One alert as a readable line: the new term(s), when first seen, and the reason."""
    fields = alert["kibana"]["alert"]
    terms = ", ".join(str(value) for value in fields["new_terms"])
    return f"  - {terms} (first seen {alert['detector']['first_seen']}): {fields['reason']}"


def _once(args: argparse.Namespace, settings: Settings) -> int:
    """One execution of each selected rule at `--at` (default: now); logged unless dry."""
    from detector.engine import execute

    try:
        rules, problems = select_rules(args.rule, settings)
        elastic = Elastic(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    now = args.at or datetime.now(UTC)
    failed = problems > 0
    try:
        elastic.wait_ready()
        runner = make_runner(elastic, settings, ensure=not args.dry_run)
        for rule in rules:
            if args.dry_run:
                result = execute(
                    elastic, runner.store, rule, now, dry_run=True, allowlist=runner.allowlist
                )
            else:
                result = runner.once(rule, now, manual=args.at is not None)
            failed |= not result.succeeded
            if args.json:
                print(json.dumps(result.to_json(with_alerts=args.dry_run), default=str))
                continue
            print(result.summary())
            for alert in result.alerts if args.dry_run else ():
                print(_alert_line(alert))
    finally:
        elastic.close()
    return 1 if failed else 0


def _add_once_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    once = commands.add_parser("once", help="run the rules once and exit (1 if one failed)")
    once.add_argument(
        "--at",
        type=parse_time,
        default=None,
        metavar="ISO8601",
        help="run as if it were this time (UTC unless an offset is given; default: now)",
    )
    once.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="ID_OR_PATH",
        help="a rule id among the loaded rules, or a rule TOML file (repeatable; default: the "
        "enabled rules)",
    )
    once.add_argument(
        "--dry-run",
        action="store_true",
        help="write nothing; print the alerts instead (all their fields with --json)",
    )
    once.add_argument("--json", action="store_true", help="print one JSON object per execution")
    once.set_defaults(handler=_once)


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
    _add_once_command(commands)
    run = commands.add_parser("run", help="run the enabled rules on their schedules")
    run.set_defaults(handler=commands_runs.run)
    commands_runs.add_commands(commands)
    commands_ops.add_commands(commands)
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
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    except DetectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
