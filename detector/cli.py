"""The `detector` command: a thin shell over the library.

Exit codes: 0 success, 1 a runtime failure (Elasticsearch, a rule, an execution), 2 bad
configuration or usage. User mistakes print one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from detector import __version__
from detector.errors import ConfigError, DetectorError
from detector.es import Elastic
from detector.logs import configure_logging
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
    # Replaced by the patterns of the loaded rules once the rule loader lands.
    return ["filebeat-*", "logs-aws.cloudtrail*"]


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
