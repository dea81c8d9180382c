"""`detector check` and `health`: is the detector connected, allowed and keeping up."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from detector.cli.common import Commands, positive_seconds, select_rules

if TYPE_CHECKING:
    from detector.settings import Settings


def check(args: argparse.Namespace, settings: Settings) -> int:
    """Connect, print the cluster, and say which rule index patterns match anything."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.es import Elastic

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
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector.rules import rules_for

    result = rules_for(settings)
    for error in result.errors:
        print(f"rule problem: {error}", file=sys.stderr)
    patterns = [pattern for rule in result.rules if rule.enabled for pattern in rule.index]
    return list(dict.fromkeys(patterns))


def health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every enabled rule succeeded recently, else 1 with one line per rule."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector import health as verdict
    from detector.es import Elastic
    from detector.execution_store import ExecutionStore

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


def add_commands(commands: Commands) -> None:
    """Register `check` and `health`."""
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
