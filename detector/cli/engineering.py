"""`detector preview`: what a rule would have alerted over a past range, writing nothing.

(`rules diff`, two previews compared, is registered with the other `rules` commands.)
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from detector.cli.common import Commands, parse_time, select_rules, text, usage_error
from detector.errors import ConfigError

if TYPE_CHECKING:
    from detector.preview import Preview
    from detector.rules import Rule
    from detector.settings import Settings


def check_range(start: datetime, end: datetime) -> str | None:
    """What is wrong with a preview range (None: nothing)."""
    if end < start:
        return f"--end {text(end)} is before --start {text(start)}"
    if end > datetime.now(UTC):
        return f"--end {text(end)} is in the future (a preview looks at the past)"
    return None


def previews(
    rules: list[Rule], args: argparse.Namespace, settings: Settings, *, fresh: bool = False
) -> list[Preview]:
    """The preview of each rule over `--start`..`--end` (reads only); `fresh`: without the
    alerts already in DETECTOR_ALERTS_INDEX."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.es.client import Elastic
    from detector.preview import preview
    from detector.rules.exceptions import from_settings

    exceptions = from_settings(settings)
    with Elastic(settings) as elastic:
        elastic.wait_ready()
        return [
            preview(
                elastic,
                rule,
                args.start,
                args.end,
                exceptions=exceptions,
                baseline_mode=settings.baseline,
                alerts_index=None if fresh else settings.alerts_index,
            )
            for rule in rules
        ]


def preview_rule(args: argparse.Namespace, settings: Settings) -> int:
    """Print the would-be alerts of `--rule` over the range (JSON lines with `--json`)."""
    problem = check_range(args.start, args.end)
    if problem:
        return usage_error(problem)
    try:
        rules, _ = select_rules([args.rule], settings)
    except ConfigError as exc:
        return usage_error("; ".join(exc.problems))
    (found,) = previews(rules, args, settings, fresh=args.fresh)
    if args.json:
        for alert in found.alerts:
            print(json.dumps(alert.to_json()))
    else:
        print("\n".join(found.lines()))
    return 0


def range_options(parser: argparse.ArgumentParser) -> None:
    """`--start`, `--end` and `--json`."""
    for flag in ("--start", "--end"):
        parser.add_argument(
            flag, type=parse_time, required=True, metavar="ISO8601", help="UTC unless an offset"
        )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per would-be alert"
    )


def add_commands(commands: Commands) -> None:
    """Register `preview`."""
    parser = commands.add_parser(
        "preview",
        help="what a rule would have alerted over a past range (writes nothing)",
        description="The alerts the rule's executions from --start to --end would write (the "
        "executions a backfill of that range runs), with the execution that writes each, "
        "first seen, event count, actions and the overflow carried, and a summary per day. "
        "Nothing is written: no alert, execution document, checkpoint or notification.",
    )
    parser.add_argument(
        "--rule",
        required=True,
        metavar="ID_OR_PATH",
        help="a rule id among the loaded rules, or a rule TOML file",
    )
    range_options(parser)
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="ignore the alerts already in DETECTOR_ALERTS_INDEX (default: like a backfill, "
        "an alert already written is not listed again, nor its term within its episode)",
    )
    parser.set_defaults(handler=preview_rule)
