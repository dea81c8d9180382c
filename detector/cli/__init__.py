"""The `detector` command: a thin shell over the library.

One module per group of commands, by what users do with them: `detection` (once, run,
backfill), `rules` (rules check, rules list, rules diff, kql), `operations` (check, health,
status), `deployment` (setup, demo), `engineering` (preview), `investigation` (import
cloudtrail) and `notifications` (notify check, notify test); `common` holds what they share.

Exit codes: 0 success, 1 a runtime failure (Elasticsearch, a rule, an execution), 2 bad
configuration or usage. User mistakes print one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from detector import __version__
from detector.cli import (
    deployment,
    detection,
    engineering,
    investigation,
    notifications,
    operations,
    rules,
)
from detector.cli.common import Handler, say
from detector.errors import ConfigError, DetectorError, RuleError

if TYPE_CHECKING:
    from detector.settings import Settings

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Run Elastic new_terms detection rules against Elasticsearch.",
        epilog="Settings come from DETECTOR_* environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    operations.add_commands(commands)
    rules.add_commands(commands)
    detection.add_commands(commands)
    engineering.add_commands(commands)
    deployment.add_commands(commands)
    investigation.add_commands(commands)
    notifications.add_commands(commands)
    return parser


def _configuration_error(exc: ConfigError, logged: bool = True) -> int:
    """Say each problem (as log records in JSON mode, once logging is configured)."""
    for problem in exc.problems:
        line = f"configuration error: {problem}"
        if logged:
            say(line, logging.ERROR)
        else:  # the settings did not load: the log format is not known
            print(line, file=sys.stderr)
    return 2


# The exit code of a command killed by SIGPIPE (128 + 13), as `yes | head -1` gives.
BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `detector` command; returns the exit code."""
    try:
        try:
            code = _main(argv)
        finally:  # `--help` too: a reader gone while the output sat in the buffer shows here
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`detector rules list | head -1`): stop quietly, and point stdout
        # at /dev/null so that Python's own flush at exit does not fail again (the recipe of
        # the `signal` module's documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    if not getattr(args, "uses_settings", True):
        # `rules check` and `kql` read no setting: they start without pydantic (start-up).
        return _run(handler, args, None)
    # lazy: start-up (`--help`, `rules check` and `kql` need no pydantic)
    from detector.logs import configure_logging
    from detector.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        return _configuration_error(exc, logged=False)
    configure_logging(settings)
    return _run(handler, args, settings)


def _run(handler: Handler, args: argparse.Namespace, settings: Settings | None) -> int:
    try:
        return handler(args, settings)  # type: ignore[arg-type]  # None: `uses_settings=False`
    except ConfigError as exc:
        return _configuration_error(exc)
    except RuleError as exc:  # a rule given on the command line
        say(f"error: {exc}", logging.ERROR)
        return 2
    except DetectorError as exc:
        say(f"error: {exc}", logging.ERROR)
        return 1
    except KeyboardInterrupt:
        return 130
