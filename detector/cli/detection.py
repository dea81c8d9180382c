"""`detector once`, `run` and `backfill`: running the rules now, on schedule, or over the past.

Argument parsing and output only; the work is in `detector.service.runner` and
`detector.service.serve`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from detector.cli.common import (
    NO_RULES,
    Bar,
    Commands,
    executions_at_debug,
    parse_time,
    say,
    select_rules,
    text,
    usage_error,
    validate_startup,
)

if TYPE_CHECKING:
    from detector.notify.routing import Routing
    from detector.results import ExecutionResult
    from detector.rules import Rule
    from detector.service.runner import Runner
    from detector.settings import Settings

# How far in the future a backfill may end or `once --at` may be (clock differences), beyond
# which it is a mistake.
FUTURE_SLACK = timedelta(minutes=1)
_log = logging.getLogger("detector.cli")


# --- once -----------------------------------------------------------------------------------


def once(args: argparse.Namespace, settings: Settings) -> int:
    """One execution of each selected rule at `--at` (default: now); logged unless dry."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.es.client import Elastic
    from detector.service import pool
    from detector.service.runner import ensure_indices
    from detector.service.serve import warn_unreadable

    startup = validate_startup(settings, args.rule, notifications=not args.dry_run)
    rules, problems, routing = startup.rules, startup.problems, startup.routing
    if not rules:
        say(f"error: {NO_RULES}", logging.ERROR)
        return max(problems, 1)
    now = args.at or datetime.now(UTC)
    if now > datetime.now(UTC) + FUTURE_SLACK:
        _log.warning(
            "--at %s is in the future: its window holds no event yet, and it moves no "
            "checkpoint (a manual execution)",
            text(now),
        )
    failed = False
    with Elastic(settings) as elastic:
        elastic.wait_ready()
        warn_unreadable(elastic, rules)
        if not args.dry_run:
            ensure_indices(elastic, settings)

    def execution(runner: Runner, rule: Rule) -> ExecutionResult:
        if args.dry_run:
            return runner.dry_run(rule, now)
        return runner.once(rule, now, manual=args.at is not None)

    for result in pool.run_rules(settings, rules, execution, routing=routing):
        failed |= not result.succeeded
        _print_result(result, args)
    if routing:
        _notify(settings, routing, [rule.rule_id for rule in rules])
    return max(problems, 1 if failed else 0)


def _notify(settings: Settings, routing: Routing, rule_ids: list[str]) -> None:
    """One delivery pass over the pending alerts of these rules, after the executions."""
    from detector.es.client import Elastic
    from detector.notify import notifier

    with Elastic(settings) as elastic:
        delivery = notifier.delivery(elastic, settings, routing)
        report = delivery.deliver(rule_ids, settings.notify_pass_seconds.total_seconds())
    for line in notifier.summary(report):
        say(line)


def _print_result(result: ExecutionResult, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(result.to_json(with_alerts=args.dry_run), default=str))
        return
    print(result.summary())
    for alert in result.alerts if args.dry_run else ():
        print(alert_line(alert))


def alert_line(alert: dict[str, Any]) -> str:
    """One alert as a readable line: the new term(s), when first seen, and the reason."""
    fields = alert["kibana"]["alert"]
    terms = ", ".join(str(value) for value in fields["new_terms"])
    return f"  - {terms} (first seen {alert['detector']['first_seen']}): {fields['reason']}"


# --- run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run every enabled rule on its own interval until SIGTERM or SIGINT, catching up."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.service import serve

    startup = validate_startup(settings)
    if not startup.rules:
        say(f"error: {NO_RULES}", logging.ERROR)
        return 1
    # A bad channel is a configuration error before anything starts; parsed once per process.
    assert startup.routing is not None  # validate_startup(notifications=True) parses it
    return serve(settings, startup.rules, startup.routing)


# --- backfill -------------------------------------------------------------------------------


class ProgressBar(Bar):
    """The backfill's bar: executions done, alerts written and failures so far."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream, "backfill")
        self.failed = 0
        self.alerts = 0

    def __call__(self, done: int, total: int, result: ExecutionResult) -> None:
        self.failed += not result.succeeded
        self.alerts += result.alerts_written
        self.show(
            done,
            total,
            f"{result.rule_id} at {result.now:%Y-%m-%dT%H:%M}Z"
            f" - {self.alerts} alert(s), {self.failed} failed",
            rule_id=result.rule_id,
            alerts_written=self.alerts,
            failed=self.failed,
        )


def backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Replay the scheduled executions between --start and --end."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.es.client import Elastic
    from detector.schedule.catchup import backfill_plan
    from detector.service.runner import Runner, ensure_indices

    if args.end < args.start:
        return usage_error(f"--end {text(args.end)} is before --start {text(args.start)}")
    if args.end > datetime.now(UTC) + FUTURE_SLACK:
        return usage_error(f"--end {text(args.end)} is in the future")
    rules, problems = select_rules(args.rule, settings)
    if not rules:
        return usage_error("no rule to backfill")
    planned = len(backfill_plan(rules, args.start, args.end))
    say(
        f"backfill: {planned} execution(s) of {len(rules)} rule(s) from {text(args.start)} to "
        f"{text(args.end)}",
        executions=planned,
        rules=len(rules),
    )
    started = time.monotonic()
    with Elastic(settings) as elastic, executions_at_debug():
        elastic.wait_ready()
        ensure_indices(elastic, settings)
        runner = Runner.for_settings(elastic, settings)
        results = runner.backfill(rules, args.start, args.end, ProgressBar(sys.stderr))
    _report(results, args.json, time.monotonic() - started)
    failed = any(not result.succeeded for result in results)
    return max(problems, 1 if failed else 0)


def _report(results: list[ExecutionResult], as_json: bool, seconds: float) -> None:
    if as_json:
        for result in results:
            print(json.dumps(result.to_json(), default=str))
        return
    by_rule: dict[str, list[ExecutionResult]] = {}
    for result in results:
        by_rule.setdefault(result.rule_id, []).append(result)
    for rule_id, runs in by_rule.items():
        failures = [result for result in runs if not result.succeeded]
        print(
            f"{rule_id} ({runs[0].rule_name}): {len(runs)} execution(s) from "
            f"{text(runs[0].now)} to {text(runs[-1].now)}, {len(failures)} failed, "
            f"{sum(result.alerts_written for result in runs)} alert(s) written"
        )
        for failure in failures[:5]:
            print(f"  FAILED at {text(failure.now)}: {failure.error}")
    written = sum(result.alerts_written for result in results)
    failed = sum(not result.succeeded for result in results)
    print(
        f"backfill: {len(results)} execution(s), {failed} failed, {written} alert(s) written "
        f"in {seconds:.1f} s"
    )


# --- parsers --------------------------------------------------------------------------------


def _rule_option(parser: argparse.ArgumentParser, default_text: str) -> None:
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="ID_OR_PATH",
        help=f"a rule id among the loaded rules, or a rule TOML file (repeatable; default: "
        f"{default_text})",
    )


def add_commands(commands: Commands) -> None:
    """Register `once`, `run` and `backfill`."""
    single = commands.add_parser(
        "once",
        help="run the rules once and exit (1 if one failed)",
        description="One execution of each enabled rule (or of each --rule) at --at or now: "
        "alerts are written and the execution logged, unless --dry-run. Without --at it is a "
        "scheduled execution and moves the rule's checkpoint when that skips nothing.",
    )
    single.add_argument(
        "--at",
        type=parse_time,
        default=None,
        metavar="ISO8601",
        help="run as if it were this time (UTC unless an offset is given; default: now)",
    )
    _rule_option(single, "the enabled rules")
    single.add_argument(
        "--dry-run",
        action="store_true",
        help="write nothing; print the alerts instead (all their fields with --json)",
    )
    single.add_argument("--json", action="store_true", help="print one JSON object per execution")
    single.set_defaults(handler=once)
    scheduled = commands.add_parser(
        "run",
        help="run the enabled rules on their schedules",
        description="Run every enabled rule on its own interval until SIGTERM or SIGINT (the "
        "running executions finish first, then it exits 0). At start-up and after failures it "
        "first catches up the executions missed since each rule's checkpoint, oldest first, up "
        "to DETECTOR_MAX_CATCHUP; anything older is recorded as a gap. A window that fails "
        "DETECTOR_WINDOW_ATTEMPTS times is recorded as a failed window (with the backfill that "
        "covers it) and newer windows go on; a checkpoint ahead of the clock is not trusted. With "
        "DETECTOR_METRICS_PORT set it serves Prometheus metrics on that port (/metrics).",
    )
    scheduled.set_defaults(handler=run)
    replay = commands.add_parser(
        "backfill",
        help="replay the scheduled executions over a past range (as manual runs)",
        description="Run each rule's scheduled executions from --start to --end, oldest first, "
        "each with its own window and history, as manual executions (the checkpoint is left "
        "alone). Alerts that already exist are not written again. Progress on stderr, a "
        "summary on stdout.",
    )
    for flag in ("--start", "--end"):
        replay.add_argument(
            flag, type=parse_time, required=True, metavar="ISO8601", help="UTC unless an offset"
        )
    _rule_option(replay, "the enabled rules")
    replay.add_argument("--json", action="store_true", help="print one JSON object per execution")
    replay.set_defaults(handler=backfill)
