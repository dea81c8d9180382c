"""`detector check`, `health` and `status`: is the detector connected, allowed and keeping up,
and which replica holds which rule."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from detector import health as verdict
from detector import status as rule_status
from detector.cli.common import Commands, positive_seconds, select_rules
from detector.es import Elastic
from detector.execution_store import ExecutionStore
from detector.rules import rules_for
from detector.settings import Settings


def check(args: argparse.Namespace, settings: Settings) -> int:
    """Connect, print the cluster, and say which rule index patterns match anything."""
    with Elastic(settings) as elastic:
        info = elastic.wait_ready(args.wait)
        print(f"connected to {', '.join(settings.es_url)}")
        print(f"cluster: {info.name}  version: {info.version}")
        patterns = index_patterns(settings)
        for pattern in patterns:
            names = elastic.matching_indices(pattern)
            found = f"{len(names)} index(es)" if names else "no index yet"
            print(f"  {pattern}: {found}")
        unreadable = elastic.unreadable(patterns)
    if unreadable is None:
        print("read privileges: not checked (security is off or the API is not available)")
    for pattern in unreadable or ():
        print(f"error: no read privilege on {pattern}: searches would silently leave it out")
    return 1 if unreadable else 0


def index_patterns(settings: Settings) -> list[str]:
    """The index patterns of the enabled rules, in order, without repeats."""
    result = rules_for(settings)
    for error in result.errors:
        print(f"rule problem: {error}", file=sys.stderr)
    patterns = [pattern for rule in result.rules if rule.enabled for pattern in rule.index]
    return list(dict.fromkeys(patterns))


def health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every enabled rule succeeded recently, else 1 with one line per rule."""
    max_age = timedelta(seconds=args.max_age or settings.health_max_age)
    rules, problems = select_rules([], settings)
    if not rules:
        print("unhealthy: no enabled rule", file=sys.stderr)
        return 1
    with Elastic(settings) as elastic:
        log = ExecutionStore(elastic, settings.execution_log_index)
        runs = [log.last_runs(rule) for rule in rules]
    lines = verdict.problems(runs, datetime.now(UTC), max_age)
    for line in lines:
        print(f"unhealthy: {line}")
    if lines or problems:
        return 1
    print(f"healthy: {len(rules)} rule(s) succeeded within {max_age.total_seconds():.0f} s")
    return 0


def status(args: argparse.Namespace, settings: Settings) -> int:
    """Print each enabled rule's lease holder and expiry, last execution and checkpoint."""
    rules, problems = select_rules([], settings)
    with Elastic(settings) as elastic:
        found = rule_status.rule_statuses(
            elastic, settings.execution_log_index, rules, datetime.now(UTC)
        )
    if args.json:
        for item in found:
            print(json.dumps(item.to_json()))
    else:
        print(rule_status.table(found))
    return 1 if problems else 0


def add_commands(commands: Commands) -> None:
    """Register `check`, `health` and `status`."""
    connection = commands.add_parser("check", help="check the connection to Elasticsearch")
    connection.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for Elasticsearch (default: DETECTOR_ES_READY_TIMEOUT)",
    )
    connection.set_defaults(handler=check)
    probe = commands.add_parser(
        "health", help="exit 0 if every enabled rule succeeded recently (container healthcheck)"
    )
    probe.add_argument(
        "--max-age",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="how recent the last success must be (default: DETECTOR_HEALTH_MAX_AGE)",
    )
    probe.set_defaults(handler=health)
    show = commands.add_parser(
        "status", help="each rule's lease holder and expiry, last execution and checkpoint"
    )
    show.add_argument("--json", action="store_true", help="print one JSON object per rule")
    show.set_defaults(handler=status)
